/**
 * `ghr controller`: listens to the runner scale set's message queue and starts one ephemeral
 * runner task per assigned job (docs/controller.md).
 *
 *   scale set → session → long poll ⟲ (ack, acquire JobAvailable, start runners up to desired)
 *
 * Each runner gets a JIT config from the scale set and nothing else; when its task cannot be
 * started the runner is deleted again, so no registration is left behind. SIGTERM/SIGINT stops
 * polling and deletes the session; runner tasks keep running their jobs.
 */
import { Context, Duration, Effect, Layer, Option, Ref, Schedule } from "effect"
import { ActionsService, type JobItem, type JobMessage, type Statistics } from "./ActionsService.ts"
import { type ControllerSettings, resolveControllerSettings } from "./ControllerSettings.ts"
import { readSecretInputs } from "./Config.ts"
import { ConfigError, SecretError } from "./Errors.ts"
import * as Log from "./Log.ts"
import { runnerName } from "./RunnerName.ts"
import { desiredRunners, runnersToRemove, runnersToStart } from "./Scaling.ts"
import { Secrets } from "./Secrets.ts"
import { describeScope, type Env } from "./Settings.ts"
import { Signals } from "./Signals.ts"
import { TaskLauncher } from "./TaskLauncher.ts"

export class ControllerConfig extends Context.Service<ControllerConfig, ControllerSettings>()("ghr/ControllerConfig") {
  /** Reads the environment and, when named, the config secret and the App secret (required here). */
  static readonly fromEnv = (env: Env): Layer.Layer<ControllerConfig, ConfigError | SecretError, Secrets> =>
    Layer.effect(
      ControllerConfig,
      Effect.gen(function*() {
        const inputs = yield* readSecretInputs(env, { readAppSecret: true })
        const resolution = resolveControllerSettings(env, inputs, {
          arch: process.arch,
          stdoutIsTty: process.stdout.isTTY === true
        })
        if (resolution._tag === "invalid") return yield* new ConfigError({ problems: resolution.problems })
        return ControllerConfig.of(resolution.settings)
      })
    )
}

interface Tracked {
  /** Undefined for a runner adopted from a previous controller: only its task is known. */
  readonly runnerId: number | undefined
  readonly taskArn: string
  readonly busy: boolean
}

/** Give up on one runner start (JIT + RunTask + cleanup) after this long. */
const startTimeout = Duration.seconds(120)
const sessionCloseTimeout = Duration.seconds(20)
const startConcurrency = 4

export const run = Effect.gen(function*() {
  const settings = yield* ControllerConfig
  const actions = yield* ActionsService
  const launcher = yield* TaskLauncher
  const signals = yield* Signals
  const bounds = { minRunners: settings.minRunners, maxRunners: settings.maxRunners }
  const runners = yield* Ref.make(new Map<string, Tracked>())
  const lastStats = yield* Ref.make<Statistics>({})

  yield* Log.event("controller.started", `controller for ${describeScope(settings.github.scope)} starting`, {
    cluster: settings.cluster,
    taskDefinition: settings.taskDefinition,
    capacityProvider: settings.capacityProvider,
    minRunners: settings.minRunners,
    maxRunners: settings.maxRunners
  })

  const deleteRunner = (name: string, runnerId: number | undefined, why: string) =>
    runnerId === undefined ? Effect.void : actions.deleteRunner(runnerId).pipe(
      Effect.tap((outcome) => Log.event("runner.deleted", `runner ${name} ${outcome === "busy" ? "is running a job; left alone" : "deleted"} (${why})`, { runner: name, runnerId, outcome })),
      Effect.catch((error) =>
        Log.errorEvent("runner.cleanup.failed", `could not delete runner ${name}: ${error.message}`, { runner: name, runnerId, error: error._tag })
      )
    )

  const startRunner = (scaleSetId: number) =>
    Effect.gen(function*() {
      const name = runnerName(settings.github.runner.namePrefix)
      const jit = yield* actions.generateJitConfig(scaleSetId, name, settings.github.runner.workDir).pipe(
        Effect.tapError((error) =>
          Log.errorEvent("registration.failed", `could not create runner ${name}: ${error.message}`, { runner: name, error: error._tag })
        ),
        Effect.option
      )
      if (Option.isNone(jit)) return
      const launched = yield* Effect.option(launcher.launch(name, jit.value.encodedJitConfig))
      if (Option.isNone(launched)) {
        // No task will ever run this runner: remove its registration now.
        yield* deleteRunner(name, jit.value.runnerId, "its task could not be started")
        return
      }
      yield* Ref.update(runners, (map) => new Map(map).set(name, { runnerId: jit.value.runnerId, taskArn: launched.value.taskArn, busy: false }))
    }).pipe(
      // A start that began finishes (or is cleaned up) even when a signal arrives meanwhile.
      Effect.timeoutOrElse({
        duration: startTimeout,
        orElse: () => Log.errorEvent("runner.start.timeout", "starting a runner took too long; giving up on it")
      }),
      Effect.uninterruptible
    )

  const scale = (scaleSetId: number, stats: Statistics) =>
    Effect.gen(function*() {
      yield* Ref.set(lastStats, stats)
      const desired = desiredRunners(bounds, stats.totalAssignedJobs ?? 0)
      const current = (yield* Ref.get(runners)).size
      const count = runnersToStart(bounds, desired, current)
      if (count === 0) return yield* scaleDown(desired)
      yield* Log.event("scale.up", `starting ${count} runner task(s)`, { desired, current, count, assignedJobs: stats.totalAssignedJobs ?? 0 })
      yield* Effect.forEach(Array.from({ length: count }), () => startRunner(scaleSetId), { concurrency: startConcurrency, discard: true })
    })

  /** Idle extras: delete the runner first, and stop its task only when the delete succeeded. */
  const scaleDown = (desired: number) =>
    Effect.gen(function*() {
      const map = yield* Ref.get(runners)
      const idle = [...map.entries()].filter(([, t]) => !t.busy && t.runnerId !== undefined).reverse()
      const count = runnersToRemove(desired, map.size, idle.length)
      if (count === 0) return
      yield* Log.event("scale.down", `removing ${count} idle runner(s)`, { desired, current: map.size, count })
      for (const [name, t] of idle.slice(0, count)) {
        if (t.runnerId === undefined) continue
        const outcome = yield* actions.deleteRunner(t.runnerId).pipe(
          Effect.catch((error) =>
            Effect.as(Log.errorEvent("runner.cleanup.failed", `could not delete runner ${name}: ${error.message}`, { runner: name, runnerId: t.runnerId, error: error._tag }), "failed" as const)
          )
        )
        if (outcome === "failed") continue
        if (outcome === "busy") {
          yield* Ref.update(runners, (m) => new Map(m).set(name, { ...t, busy: true }))
          yield* Log.event("runner.delete.busy", `runner ${name} took a job meanwhile; it stays`, { runner: name })
          continue
        }
        yield* Ref.update(runners, (m) => {
          const next = new Map(m)
          next.delete(name)
          return next
        })
        yield* Log.event("runner.deleted", `idle runner ${name} deleted (scaled down)`, { runner: name, runnerId: t.runnerId, outcome })
        if (outcome === "deleted") {
          yield* launcher.stop(t.taskArn, "ghr controller: idle runner scaled down").pipe(
            Effect.tap(() => Log.event("runner.task.stopping", `stopping the task of idle runner ${name}`, { runner: name, taskArn: t.taskArn })),
            Effect.catch((error) => Log.warnEvent("runner.task.stop.failed", `could not stop the task of ${name}: ${error.message}`, { runner: name, taskArn: t.taskArn }))
          )
        }
      }
    }).pipe(Effect.uninterruptible)

  const track = (item: JobItem) =>
    Effect.gen(function*() {
      const fields = { jobId: item.jobId, runnerRequestId: item.runnerRequestId, repository: item.repositoryName, workflowRunId: item.workflowRunId }
      switch (item.messageType) {
        case "JobAvailable":
          return yield* Log.event("job.queued", `job ${item.jobDisplayName ?? item.jobId ?? ""} is queued`, fields)
        case "JobAssigned":
          return yield* Log.event("job.assigned", `job ${item.jobDisplayName ?? item.jobId ?? ""} assigned to this scale set`, fields)
        case "JobStarted": {
          const name = item.runnerName
          if (name !== undefined) {
            yield* Ref.update(runners, (map) => {
              const tracked = map.get(name)
              return tracked === undefined ? map : new Map(map).set(name, { ...tracked, busy: true })
            })
          }
          return yield* Log.event("job.running", `job ${item.jobDisplayName ?? item.jobId ?? ""} runs on ${name ?? "a runner"}`, { ...fields, runner: name })
        }
        case "JobCompleted": {
          const name = item.runnerName
          if (name !== undefined) yield* Ref.update(runners, (map) => {
            const next = new Map(map)
            next.delete(name)
            return next
          })
          return yield* Log.event("job.finished", `job ${item.jobDisplayName ?? item.jobId ?? ""} finished: ${item.result ?? "unknown"}`, { ...fields, runner: name, result: item.result })
        }
        default:
          return yield* Log.event("job.message", `ignoring message ${item.messageType}`, fields)
      }
    })

  const handle = (scaleSetId: number, message: JobMessage) =>
    Effect.gen(function*() {
      yield* Effect.forEach(message.items, track, { discard: true })
      yield* actions.deleteMessage(message.messageId)
      const available = message.items.flatMap((i) => (i.messageType === "JobAvailable" && i.runnerRequestId !== undefined ? [i.runnerRequestId] : []))
      if (available.length > 0) {
        const acquired = yield* actions.acquireJobs(scaleSetId, available)
        yield* Log.event("jobs.acquired", `acquired ${acquired.length} of ${available.length} job(s)`, { requested: available.length, acquired: acquired.length })
      }
      if (message.statistics !== undefined) yield* scale(scaleSetId, message.statistics)
      yield* status
    })

  /** Tasks that stopped without a JobCompleted (crashed, never started, idle runner stopped) are forgotten, their runner deleted. */
  const reconcile = Effect.gen(function*() {
    const tracked = [...(yield* Ref.get(runners)).entries()]
    if (tracked.length === 0) return
    const states = yield* launcher.describe(tracked.map(([, t]) => t.taskArn))
    const stopped = new Set(states.filter((s) => s.lastStatus === "STOPPED" || s.lastStatus === "DELETED").map((s) => s.taskArn))
    for (const [name, t] of tracked) {
      if (!stopped.has(t.taskArn)) continue
      yield* Ref.update(runners, (map) => {
        const next = new Map(map)
        next.delete(name)
        return next
      })
      yield* Log.warnEvent("runner.task.stopped", `the task of runner ${name} stopped`, { runner: name, taskArn: t.taskArn })
      yield* deleteRunner(name, t.runnerId, "its task stopped")
    }
  }).pipe(Effect.catch((error) => Log.warnEvent("reconcile.failed", `could not check runner tasks: ${error.message}`)))

  const status = Effect.gen(function*() {
    const map = yield* Ref.get(runners)
    const stats = yield* Ref.get(lastStats)
    const busy = [...map.values()].filter((t) => t.busy).length
    yield* Log.event("runners.status", `${map.size} runner task(s) running`, {
      running: map.size,
      busy,
      idle: map.size - busy,
      desired: desiredRunners(bounds, stats.totalAssignedJobs ?? 0),
      assignedJobs: stats.totalAssignedJobs ?? 0,
      runningJobs: stats.totalRunningJobs ?? 0
    })
  })

  const scaleSet = yield* Effect.raceFirst(actions.ensureScaleSet, Effect.as(signals.received, undefined))
  if (scaleSet === undefined) {
    yield* Log.event("controller.stopped", "stopped before the scale set was ready")
    return
  }

  // Runner tasks a previous controller started keep their jobs and count towards the total.
  const prefix = `${settings.github.runner.namePrefix}-`
  const adopted = yield* launcher.running.pipe(
    Effect.map((states) => states.filter((s) => s.runnerName?.startsWith(prefix) === true)),
    Effect.catch((error) => Effect.as(Log.warnEvent("runners.adopt.failed", `could not list running runner tasks: ${error.message}`), []))
  )
  if (adopted.length > 0) {
    yield* Ref.set(runners, new Map(adopted.map((s) => [s.runnerName!, { runnerId: undefined, taskArn: s.taskArn, busy: true }])))
    yield* Log.event("runners.adopted", `${adopted.length} runner task(s) from a previous controller still run`, { count: adopted.length })
  }

  const serve = Effect.scoped(
    Effect.gen(function*() {
      // Registered before the session opens, so a signal during a (409-conflict) wait still closes
      // whatever was opened; closeSession does nothing when no session is open.
      yield* Effect.addFinalizer(() =>
        actions.closeSession.pipe(
          Effect.timeout(sessionCloseTimeout),
          Effect.catch((error) => Log.errorEvent("session.delete.failed", `could not delete the message session: ${String(error)}`))
        )
      )
      const session = yield* actions.openSession(scaleSet.id)
      yield* Effect.forkScoped(
        Effect.andThen(reconcile, status).pipe(
          Effect.repeat(Schedule.spaced(Duration.seconds(settings.statusIntervalSeconds))),
          Effect.delay(Duration.millis(10))
        )
      )
      yield* scale(scaleSet.id, session.statistics)
      let lastMessageId = 0
      for (;;) {
        const message = yield* actions.getMessage(lastMessageId, settings.maxRunners)
        if (Option.isNone(message)) continue
        yield* handle(scaleSet.id, message.value)
        lastMessageId = message.value.messageId
      }
    })
  )
  // Interrupting `serve` aborts the long poll, lets a runner start in progress finish (or clean
  // up), and closes its scope: the session is deleted. Runner tasks are not touched.
  const signal = yield* Effect.raceFirst(Effect.as(serve, undefined), signals.received)
  if (signal !== undefined) {
    yield* Log.event("controller.signal", `received ${signal}: stopped polling and closed the session; runner tasks keep their jobs`, { signal })
  }
  yield* status
  yield* Log.event("controller.stopped", "controller stopped")
})
