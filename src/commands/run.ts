import { NodeServices } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Command } from "effect/cli"
import { Config } from "../Config.ts"
import { DockerSidecar } from "../DockerSidecar.ts"
import { GitHubApp } from "../GitHubApp.ts"
import { Health } from "../Health.ts"
import * as Lifecycle from "../Lifecycle.ts"
import { Runner } from "../Runner.ts"
import { Secrets } from "../Secrets.ts"
import { Signals } from "../Signals.ts"

/** Everything `ghr run` needs, built from this process's environment. */
export const runLayer = (env: NodeJS.ProcessEnv) => {
  const config = Config.fromEnv(env).pipe(Layer.provide(Secrets.layer))
  const health = Layer.unwrap(Effect.map(Config, (settings) => Health.layer(settings.healthPort)))
  return Layer.mergeAll(GitHubApp.layer, DockerSidecar.layer, Runner.layer(env), health).pipe(
    Layer.provideMerge(Layer.mergeAll(config, Signals.layer, NodeServices.layer))
  )
}

export const runCommand = Command.make(
  "run",
  {},
  Effect.fn("command.run")(function*() {
    const exitCode = yield* Lifecycle.run.pipe(Effect.provide(runLayer(process.env)))
    // The runner's own exit code is ghr's: an ECS task stopped with the runner's verdict.
    process.exitCode = exitCode
  })
).pipe(
  Command.withDescription(
    "Start one ephemeral actions runner: load config, register with GitHub (JIT), wait for Docker, run the job, always deregister"
  )
)
