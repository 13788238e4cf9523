/**
 * Logging: one JSON object per line on stdout (CloudWatch-friendly) or short human lines on a
 * TTY, and redaction of every secret before anything is written.
 */
import { Context, Effect, Layer, Logger, References } from "effect"
import type { LogFormat, LogLevel } from "./Settings.ts"

/**
 * Token shapes GitHub documents (classic `gh?_` prefixes and fine-grained PATs), JWTs, and PEM
 * blocks. The App's own secrets are also registered by value, since a new token format
 * (rolled out in 2026) must not slip through a pattern.
 */
const secretPatterns: ReadonlyArray<RegExp> = [
  // A key's base64 body (raw newlines or JSON-escaped "\n"), with its END line when present.
  /-----BEGIN [A-Z ]*PRIVATE KEY-----(?:\\n|[\sA-Za-z0-9+/=])*(?:-----END [A-Z ]*PRIVATE KEY-----)?/g,
  /\bgh[pousr]_[A-Za-z0-9_]{16,}\b/g,
  /\bgithub_pat_[A-Za-z0-9_]{20,}\b/g,
  /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b/g
]

export const redactedMarker = "[REDACTED]"

/** Replaces every registered secret and every known secret shape in `text`. */
export const redactText = (text: string, secrets: Iterable<string>): string => {
  let out = text
  for (const secret of secrets) {
    if (secret.length >= 8) out = out.split(secret).join(redactedMarker)
  }
  for (const pattern of secretPatterns) out = out.replace(pattern, redactedMarker)
  return out
}

/** Secret values known at run time (installation token, JIT config, private key…). */
export class Redaction extends Context.Service<Redaction, {
  register(secret: string): Effect.Effect<void>
  redact(text: string): string
}>()("ghr/Redaction") {
  static readonly layer = Layer.sync(Redaction, () => {
    const secrets = new Set<string>()
    return Redaction.of({
      register: (secret) =>
        Effect.sync(() => {
          const trimmed = secret.trim()
          secrets.add(trimmed)
          // Escaped forms show up when a secret is embedded in JSON text.
          secrets.add(JSON.stringify(trimmed).slice(1, -1))
          // Output is logged line by line, so each line of a multi-line secret (a PEM body) is one too.
          for (const line of trimmed.split("\n")) if (line.trim().length >= 16) secrets.add(line.trim())
        }),
      redact: (text) => redactText(text, secrets)
    })
  })
}

const levelName = (label: string): string => {
  const lower = label.toLowerCase()
  return lower === "warning" ? "warn" : lower
}

const messageText = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => (typeof part === "string" ? part : JSON.stringify(part))).join(" ")
}

export interface LogRecord {
  readonly time: string
  readonly level: string
  readonly msg: string
  readonly [field: string]: unknown
}

export const formatRecord = (record: LogRecord, format: LogFormat): string => {
  if (format === "json") return JSON.stringify(record)
  const { time, level, msg, ...fields } = record
  // The event name and structured detail (lists of objects) are for machines; the message
  // already says it for a person.
  const isStructured = (value: unknown) => Array.isArray(value) && value.some((v) => typeof v === "object" && v !== null)
  const extras = Object.entries(fields)
    .filter(([key, value]) => key !== "event" && !isStructured(value))
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(" ")
  return `${time.slice(11, 19)} ${level.toUpperCase().padEnd(5)} ${msg}${extras === "" ? "" : `  ${extras}`}`
}

const toEffectLevel = {
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  error: "Error"
} as const

export interface LogOptions {
  readonly format: LogFormat
  readonly level: LogLevel
  /** Where lines go; stdout in production, a buffer in tests. */
  readonly write?: (line: string) => void
}

/** Replaces Effect's default logger with ours; needs `Redaction` so secrets never reach a line. */
export const layer = (options: LogOptions): Layer.Layer<never, never, Redaction> => {
  const write = options.write ?? ((line: string) => void process.stdout.write(line))
  return Layer.mergeAll(
    Logger.layer([
      Effect.map(Redaction, (redaction) =>
        Logger.make(({ date, fiber, logLevel, message }) => {
          const annotations = fiber.getRef(References.CurrentLogAnnotations)
          const record: LogRecord = {
            time: date.toISOString(),
            level: levelName(logLevel),
            msg: messageText(message),
            ...annotations
          }
          write(redaction.redact(formatRecord(record, options.format)) + "\n")
        }))
    ]),
    Layer.succeed(References.MinimumLogLevel, toEffectLevel[options.level])
  )
}

/** Logs a named lifecycle event with structured fields. */
export const event = (name: string, msg: string, fields: Record<string, unknown> = {}) =>
  Effect.logInfo(msg).pipe(Effect.annotateLogs({ event: name, ...fields }))

export const warnEvent = (name: string, msg: string, fields: Record<string, unknown> = {}) =>
  Effect.logWarning(msg).pipe(Effect.annotateLogs({ event: name, ...fields }))

export const errorEvent = (name: string, msg: string, fields: Record<string, unknown> = {}) =>
  Effect.logError(msg).pipe(Effect.annotateLogs({ event: name, ...fields }))
