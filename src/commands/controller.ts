import { Effect, Layer } from "effect"
import { Command } from "effect/cli"
import { ActionsService } from "../ActionsService.ts"
import { Config } from "../Config.ts"
import * as Controller from "../Controller.ts"
import { ControllerConfig } from "../Controller.ts"
import { GitHubApp } from "../GitHubApp.ts"
import { Secrets } from "../Secrets.ts"
import { Signals } from "../Signals.ts"
import { TaskLauncher } from "../TaskLauncher.ts"

/** Everything `ghr controller` needs, built from this process's environment. */
export const controllerLayer = (env: NodeJS.ProcessEnv) => {
  const config = ControllerConfig.fromEnv(env).pipe(Layer.provide(Secrets.layer))
  const github = Layer.effect(Config, Effect.map(ControllerConfig, (settings) => Config.of(settings.github)))
  const launcher = Layer.unwrap(Effect.map(ControllerConfig, (settings) => TaskLauncher.layer(settings)))
  const actions = ActionsService.layer().pipe(Layer.provide(GitHubApp.layer))
  return Layer.mergeAll(actions, launcher, Signals.layer).pipe(
    Layer.provideMerge(github),
    Layer.provideMerge(config)
  )
}

export const controllerCommand = Command.make(
  "controller",
  {},
  Effect.fn("command.controller")(function*() {
    yield* Controller.run.pipe(Effect.provide(controllerLayer(process.env)))
  })
).pipe(
  Command.withDescription(
    "Listen to the runner scale set and start one ephemeral runner task on ECS per assigned job (holds the App key; runner tasks get only a JIT config)"
  )
)
