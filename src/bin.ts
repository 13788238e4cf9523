/**
 * Process wiring only: logger, error reporting and exit codes. The commands live in main.ts.
 * Expected failures print one clear message (no stack trace) and exit with their documented
 * code; anything else is a bug and prints the full cause.
 */
import { NodeServices } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Runtime } from "effect"
import { CliError } from "effect/cli"
import { ExitCode } from "./Errors.ts"
import * as Log from "./Log.ts"
import { run } from "./main.ts"

/** Expected failures carry their exit code (Runtime.errorExitCode) and a message meant for the user. */
const exitCodeOf = (error: unknown): number | undefined => {
  const code = typeof error === "object" && error !== null ? (error as Record<PropertyKey, unknown>)[Runtime.errorExitCode] : undefined
  return typeof code === "number" ? code : undefined
}

const logFormat = process.env["LOG_FORMAT"] === "json" || process.env["LOG_FORMAT"] === "text"
  ? process.env["LOG_FORMAT"]
  : process.stdout.isTTY ? "text" : "json"
const logLevel = (["debug", "info", "warn", "error"] as const).find((l) => l === process.env["LOG_LEVEL"]?.toLowerCase()) ?? "info"

const report = (error: unknown): Effect.Effect<number> => {
  // The CLI already printed the usage problem with the command's help.
  if (CliError.isCliError(error)) return Effect.succeed(ExitCode.usage)
  const code = exitCodeOf(error)
  if (code !== undefined) {
    // Interactive commands' errors (deploy, app) were already shown by the CLI's renderer.
    if (CliError.userMessage in (error as object)) return Effect.succeed(code)
    const { _tag, message, problems } = error as { _tag?: string; message: string; problems?: unknown }
    return Effect.as(Log.errorEvent("ghr.failed", message, { error: _tag, exitCode: code, ...(problems === undefined ? {} : { problems }) }), code)
  }
  return Effect.as(Log.errorEvent("ghr.crashed", `unexpected error: ${String(error)}`), ExitCode.unexpected)
}

const main = run.pipe(
  Effect.as(-1),
  Effect.catchCause((cause) => {
    const failure = cause.reasons.find(Cause.isFailReason)
    if (failure !== undefined) return report(failure.error)
    if (Cause.hasInterruptsOnly(cause)) return Effect.succeed(ExitCode.sigterm)
    return Effect.as(Log.errorEvent("ghr.crashed", Cause.pretty(cause)), ExitCode.unexpected)
  }),
  Effect.provide(Layer.mergeAll(NodeServices.layer, Log.layer({ format: logFormat, level: logLevel }).pipe(Layer.provideMerge(Log.Redaction.layer))))
)

// No top-level await: the binary is compiled to bytecode, which needs a plain module body.
void Effect.runPromiseExit(main).then((exit) => {
  const code = Exit.isSuccess(exit) ? (exit.value === -1 ? Number(process.exitCode ?? 0) : exit.value) : ExitCode.unexpected
  // Let buffered log lines reach a pipe before the process ends.
  process.stdout.write("", () => process.exit(code))
})
