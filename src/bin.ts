/**
 * Process wiring only: logger, error reporting and exit codes. The commands live in main.ts.
 * Expected failures print one clear message (no stack trace) and exit with their documented
 * code; anything else is a bug and prints the full cause.
 */
import { NodeServices } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer } from "effect"
import { CliError } from "effect/cli"
import { ExitCode, exitCodeFor, type GhrError } from "./Errors.ts"
import * as Log from "./Log.ts"
import { run } from "./main.ts"

const ghrErrorTags = new Set(["ConfigError", "SecretError", "AuthError", "GitHubApiError", "DockerNotReady", "RunnerError", "Terminated"])
const isGhrError = (error: unknown): error is GhrError =>
  typeof error === "object" && error !== null && ghrErrorTags.has((error as { _tag?: string })._tag ?? "")

const logFormat = process.env["LOG_FORMAT"] === "json" || process.env["LOG_FORMAT"] === "text"
  ? process.env["LOG_FORMAT"]
  : process.stdout.isTTY ? "text" : "json"
const logLevel = (["debug", "info", "warn", "error"] as const).find((l) => l === process.env["LOG_LEVEL"]?.toLowerCase()) ?? "info"

const report = (error: unknown): Effect.Effect<number> => {
  if (isGhrError(error)) {
    const code = exitCodeFor(error)
    const fields: Record<string, unknown> = { error: error._tag, exitCode: code }
    if (error._tag === "ConfigError") fields["problems"] = error.problems
    return Effect.as(Log.errorEvent("ghr.failed", error.message, fields), code)
  }
  if (CliError.isCliError(error)) return Effect.succeed(ExitCode.usage)
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
