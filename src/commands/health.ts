import { Console, Effect } from "effect"
import { Command } from "effect/cli"
import { ExitCode } from "../Errors.ts"
import { probe } from "../Health.ts"

export const healthCommand = Command.make(
  "health",
  {},
  Effect.fn("command.health")(function*() {
    const setting = process.env["GHR_HEALTH_PORT"] ?? "8080"
    const port = Number(setting)
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      yield* Console.log(`no health endpoint to ask: GHR_HEALTH_PORT=${setting} (0 disables it)`)
      process.exitCode = ExitCode.unexpected
      return
    }
    const result = yield* probe(port).pipe(
      Effect.catch((error) => Effect.succeed({ ok: false, body: `no answer from 127.0.0.1:${port}/healthz: ${error}` }))
    )
    yield* Console.log(result.body)
    if (!result.ok) process.exitCode = ExitCode.unexpected
  })
).pipe(Command.withDescription("Exit 0 when the local `ghr run` is alive (for the ECS container health check), 1 otherwise"))
