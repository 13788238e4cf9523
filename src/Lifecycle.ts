/**
 * `ghr run`: one ephemeral runner from start to cleanup.
 *
 *   config loaded → Docker ready → (JIT config | registration) → runner runs → runner deleted
 *
 * Docker is awaited before registering so that a task whose sidecar never comes up leaves no
 * runner behind. Every runner ghr registers is deleted by a finalizer of the scope that
 * registered it, so success, failure, a signal and a crash all end the same way.
 */
import { Duration, Effect, Option, Redacted, Schedule } from "effect"
import { Config } from "./Config.ts"
import { DockerSidecar } from "./DockerSidecar.ts"
import { Terminated } from "./Errors.ts"
import { GitHubApp } from "./GitHubApp.ts"
import { Health } from "./Health.ts"
import * as Log from "./Log.ts"
import { Runner } from "./Runner.ts"
import { runnerName } from "./RunnerName.ts"
import { describeScope, registrationUrl } from "./Settings.ts"
import { Signals } from "./Signals.ts"

/** Runs `effect` unless a stop signal arrives first; before the runner starts, a signal means "abort". */
const unlessStopped = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const signals = yield* Signals
    return yield* Effect.raceFirst(
      effect,
      Effect.flatMap(signals.received, (signal) => Effect.fail(new Terminated({ signal })))
    )
  })

export const run = Effect.gen(function*() {
  const settings = yield* Config
  const health = yield* Health
  const docker = yield* DockerSidecar
  const github = yield* GitHubApp
  const runner = yield* Runner
  if (settings.jitConfig !== undefined) yield* (yield* Log.Redaction).register(Redacted.value(settings.jitConfig))

  yield* Log.event("config.loaded", `configuration loaded for ${describeScope(settings.scope)}`, {
    scope: settings.scope.kind,
    mode: settings.jitConfig !== undefined ? "jit-handed-over" : settings.runner.mode,
    labels: settings.runner.labels,
    dockerMode: settings.docker.mode,
    apiUrl: settings.apiUrl
  })

  yield* health.setPhase("waiting-docker")
  yield* unlessStopped(docker.waitUntilReady)

  // What run.sh is started with: a JIT config, or nothing when config.sh registered the runner.
  let jitConfig: Redacted.Redacted<string> | undefined
  if (settings.jitConfig !== undefined) {
    // The controller registered this runner and owns its cleanup; this task holds no App key.
    jitConfig = settings.jitConfig
  } else if (settings.runner.mode === "jit") {
    const name = runnerName(settings.runner.namePrefix)
    const groupId = yield* unlessStopped(github.runnerGroupId).pipe(Effect.tapError(registrationFailed))
    // acquireRelease: once GitHub has created the runner its deletion is registered, even when a
    // signal arrives while the call is in flight.
    const jit = yield* unlessStopped(
      Effect.acquireRelease(
        github.generateJitConfig({ name, labels: settings.runner.labels, runnerGroupId: groupId, workFolder: settings.runner.workDir }),
        (registered) => deleteRunner(registered.runnerId, registered.name)
      )
    ).pipe(Effect.tapError(registrationFailed))
    yield* Log.event("runner.registered", `runner ${jit.name} registered (id ${jit.runnerId})`, { runnerId: jit.runnerId, runnerName: jit.name })
    jitConfig = jit.encodedJitConfig
  } else {
    const name = runnerName(settings.runner.namePrefix)
    const token = yield* unlessStopped(github.registrationToken).pipe(Effect.tapError(registrationFailed))
    yield* Effect.addFinalizer(() => unregister(name))
    yield* unlessStopped(
      runner.configure({
        url: registrationUrl(settings),
        name,
        labels: settings.runner.labels,
        group: settings.runner.group,
        workDir: settings.runner.workDir,
        ephemeral: settings.runner.ephemeral,
        disableUpdate: settings.runner.disableUpdate
      }, token)
    ).pipe(Effect.tapError(registrationFailed))
  }
  yield* health.setPhase("registered")
  yield* health.setPhase("running")
  const outcome = yield* runner.run(jitConfig)
  yield* health.setPhase("draining")
  return outcome.exitCode
}).pipe(Effect.scoped)

/** Counted by the stack's RegistrationErrors metric; the error itself is reported once, at exit. */
const registrationFailed = (error: { readonly _tag: string }) =>
  error._tag === "Terminated" ? Effect.void : Log.errorEvent("registration.failed", "runner registration failed", { error: error._tag })

const busyRetrySchedule = Schedule.spaced(Duration.seconds(2)).pipe(Schedule.upTo({ times: 5 }))

/** After run.sh exits: an ephemeral runner that finished its job is already gone (404 is success). */
const deleteRunner = (runnerId: number, name: string) =>
  Effect.gen(function*() {
    const github = yield* GitHubApp
    // GitHub refuses to delete a runner it still sees running a job (422) until the runner's
    // cancellation reaches it; a few seconds usually suffice.
    const outcome = yield* github.deleteRunner(runnerId).pipe(
      Effect.repeat({ schedule: busyRetrySchedule, while: (o) => o === "busy" })
    )
    if (outcome === "busy") {
      yield* Log.warnEvent("runner.delete.busy", `runner ${name} is still marked busy; GitHub removes an ephemeral runner when its job ends`, { runnerId })
    } else {
      yield* Log.event("runner.deleted", outcome === "deleted" ? `runner ${name} deleted` : `runner ${name} was already removed by GitHub`, {
        runnerId,
        outcome
      })
    }
  }).pipe(Effect.catch((error) => cleanupFailed(name, error.message)))

/** Registration mode: `config.sh remove` (also cleans the runner's local files), then make sure via REST. */
const unregister = (name: string) =>
  Effect.gen(function*() {
    const github = yield* GitHubApp
    const runner = yield* Runner
    const token = yield* github.removeToken
    yield* runner.remove(token).pipe(
      Effect.catch((error) => Log.warnEvent("runner.remove.failed", `config.sh remove failed (${error.detail}); deleting through the API`))
    )
    const registered = yield* github.findRunner(name)
    if (Option.isSome(registered)) yield* deleteRunner(registered.value.id, name)
    else yield* Log.event("runner.deleted", `runner ${name} unregistered`, { runnerName: name })
  }).pipe(Effect.catch((error) => cleanupFailed(name, error.message)))

const cleanupFailed = (name: string, message: string) =>
  Log.errorEvent(
    "runner.cleanup.failed",
    `could not delete runner ${name}: ${message}. Delete it by hand under Settings → Actions → Runners if it is still listed`,
    { runnerName: name }
  )
