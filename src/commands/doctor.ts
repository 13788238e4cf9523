import { Console, Effect, Layer, References } from "effect"
import { Command, Flag } from "effect/cli"
import { Doctor, doctorExitCode, renderJson, renderTable } from "../Doctor.ts"
import { Redaction } from "../Log.ts"
import { Secrets } from "../Secrets.ts"

export const doctorCommand = Command.make(
  "doctor",
  {
    json: Flag.Boolean("json").pipe(
      Flag.withDescription("Print the report as JSON (shape: docs/doctor.md) instead of a table"),
      Flag.withDefault(false)
    )
  },
  Effect.fn("command.doctor")(
    function*({ json }) {
      const doctor = yield* Doctor
      const redaction = yield* Redaction
      const report = yield* doctor.diagnose(process.env)
      const text = json
        ? renderJson(report)
        : renderTable(report, {
          color: process.stdout.isTTY === true && process.env["NO_COLOR"] === undefined,
          width: process.stdout.columns ?? 120
        })
      // Everything printed goes through the same redaction as the logs: no secret reaches stdout.
      yield* Console.log(redaction.redact(text))
      process.exitCode = doctorExitCode(report)
    },
    // The report is the output; log lines (token minted, retries…) would only be noise in it.
    Effect.provideService(References.MinimumLogLevel, "None")
  )
).pipe(
  Command.withDescription(
    "Check configuration, secrets, the GitHub App (key, installation, permissions, clock), Docker, the ECS task and the runner files; exit 1 when a check fails"
  ),
  Command.withExamples([
    { command: "ghr doctor", description: "A table of every check, with the fix for each failure" },
    { command: "ghr doctor --json", description: "The same report for machines" }
  ]),
  Command.provide(Doctor.layer.pipe(Layer.provide(Secrets.layer)))
)
