/**
 * Starts, inspects and stops runner tasks on ECS (@aws-sdk/client-ecs with the SDK's standard
 * region, credential and endpoint resolution, AWS_ENDPOINT_URL included).
 *
 * A runner task gets exactly one thing from the controller: its JIT config, as the environment
 * override ACTIONS_RUNNER_INPUT_JITCONFIG of container `runner`. Every failure is logged as
 * `runtask.failed` (the stack's RunTaskErrors metric counts those lines).
 */
import { DescribeTasksCommand, ECSClient, ListTasksCommand, RunTaskCommand, type RunTaskCommandInput, type RunTaskCommandOutput, StopTaskCommand } from "@aws-sdk/client-ecs"
import { Context, Effect, Layer, Redacted, Runtime, Schema } from "effect"
import type { ControllerSettings } from "./ControllerSettings.ts"
import { ExitCode } from "./Errors.ts"
import * as Log from "./Log.ts"

export class RunTaskError extends Schema.TaggedError<RunTaskError>()("RunTaskError", {
  runnerName: Schema.String,
  detail: Schema.String
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.unexpected
  }
  override get message(): string {
    return `could not start a runner task for ${this.runnerName}: ${this.detail}`
  }
}

export class EcsError extends Schema.TaggedError<EcsError>()("EcsError", {
  operation: Schema.String,
  detail: Schema.String
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.unexpected
  }
  override get message(): string {
    return `${this.operation} failed: ${this.detail}`
  }
}

export interface LaunchedTask {
  readonly taskArn: string
  readonly capacityProvider: string
}

export interface TaskState {
  readonly taskArn: string
  readonly lastStatus: string
  readonly stoppedReason: string | undefined
  /** The `ghr:runner` tag: the runner this task runs. */
  readonly runnerName: string | undefined
}

export const runnerTag = "ghr:runner"

/** The container of the runner task definition that receives the JIT config. */
export const runnerContainer = "runner"
export const startedBy = "ghr-controller"

/** The part of the ECS client the launcher uses; tests may hand in their own. */
export interface EcsApi {
  runTask(input: RunTaskCommandInput): Promise<RunTaskCommandOutput>
  describeTasks(cluster: string, taskArns: ReadonlyArray<string>): Promise<ReadonlyArray<TaskState>>
  /** ARNs of tasks this controller started that ECS still wants running. */
  listTasks(cluster: string, startedBy: string): Promise<ReadonlyArray<string>>
  stopTask(cluster: string, taskArn: string, reason: string): Promise<void>
}

export const sdkEcsApi = (client: ECSClient = new ECSClient({ maxAttempts: 3 })): EcsApi => ({
  runTask: (input) => client.send(new RunTaskCommand(input)),
  describeTasks: async (cluster, taskArns) => {
    const out = await client.send(new DescribeTasksCommand({ cluster, tasks: [...taskArns], include: ["TAGS"] }))
    const states: Array<TaskState> = (out.tasks ?? []).map((t) => ({
      taskArn: t.taskArn ?? "",
      lastStatus: t.lastStatus ?? "UNKNOWN",
      stoppedReason: t.stoppedReason,
      runnerName: t.tags?.find((tag) => tag.key === runnerTag)?.value
    }))
    // A task ECS no longer knows (long stopped) is reported as a failure "MISSING".
    for (const f of out.failures ?? []) {
      if (f.arn !== undefined) states.push({ taskArn: f.arn, lastStatus: "STOPPED", stoppedReason: f.reason, runnerName: undefined })
    }
    return states
  },
  listTasks: async (cluster, by) => {
    const arns: Array<string> = []
    let nextToken: string | undefined
    for (let page = 0; page < 20; page++) {
      const out = await client.send(new ListTasksCommand({ cluster, startedBy: by, desiredStatus: "RUNNING", maxResults: 100, nextToken }))
      arns.push(...(out.taskArns ?? []))
      nextToken = out.nextToken
      if (nextToken === undefined) break
    }
    return arns
  },
  stopTask: async (cluster, taskArn, reason) => {
    await client.send(new StopTaskCommand({ cluster, task: taskArn, reason }))
  }
})

/** Spot has no capacity right now (RunTask failure reason or exception message). */
export const isCapacityShortage = (reason: string): boolean => /capacity/i.test(reason)

const describeError = (error: unknown): string => {
  const e = error as { name?: string; message?: string }
  return `${e.name ?? "Error"}: ${e.message ?? String(error)}`.replace(/\s+/g, " ").slice(0, 300)
}

/**
 * The RunTask input for one runner. On-demand Fargate is requested as launchType FARGATE (the
 * same capacity as the FARGATE provider, and what emulators support); Fargate Spot and
 * Managed Instances through the capacity provider strategy.
 */
export const runTaskInput = (settings: ControllerSettings, runnerName: string, jitConfig: string, provider: string): RunTaskCommandInput => ({
  cluster: settings.cluster,
  taskDefinition: settings.taskDefinition,
  count: 1,
  startedBy,
  ...(provider === "FARGATE"
    ? { launchType: "FARGATE" as const }
    : { capacityProviderStrategy: [{ capacityProvider: provider, weight: 1 }] }),
  networkConfiguration: {
    awsvpcConfiguration: {
      subnets: [...settings.subnets],
      securityGroups: [...settings.securityGroups],
      assignPublicIp: settings.assignPublicIp
    }
  },
  overrides: {
    containerOverrides: [{ name: runnerContainer, environment: [{ name: "ACTIONS_RUNNER_INPUT_JITCONFIG", value: jitConfig }] }]
  },
  tags: [{ key: runnerTag, value: runnerName }]
})

export class TaskLauncher extends Context.Service<TaskLauncher, {
  launch(runnerName: string, jitConfig: Redacted.Redacted<string>): Effect.Effect<LaunchedTask, RunTaskError>
  describe(taskArns: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<TaskState>, EcsError>
  /** Runner tasks a previous controller started that still run (adopted after a restart). */
  readonly running: Effect.Effect<ReadonlyArray<TaskState>, EcsError>
  stop(taskArn: string, reason: string): Effect.Effect<void, EcsError>
}>()("ghr/TaskLauncher") {
  static readonly layer = (settings: ControllerSettings, api: EcsApi = sdkEcsApi()) =>
    Layer.succeed(TaskLauncher, makeLauncher(settings, api))
}

export const makeLauncher = (settings: ControllerSettings, api: EcsApi): TaskLauncher["Service"] => {
  type Attempt = { readonly ok: true; readonly taskArn: string } | { readonly ok: false; readonly reason: string }

  const attempt = (runnerName: string, jitConfig: string, provider: string) =>
    Effect.tryPromise({
      try: () => api.runTask(runTaskInput(settings, runnerName, jitConfig, provider)),
      catch: (error) => describeError(error)
    }).pipe(
      Effect.map((out): Attempt => {
        const arn = out.tasks?.[0]?.taskArn
        if (arn !== undefined) return { ok: true, taskArn: arn }
        const failure = out.failures?.[0]
        return { ok: false, reason: failure === undefined ? "RunTask started no task" : `${failure.reason ?? "failure"}${failure.detail ? ` (${failure.detail})` : ""}` }
      }),
      Effect.catch((reason: string) => Effect.succeed<Attempt>({ ok: false, reason }))
    )

  const launch = Effect.fn("TaskLauncher.launch")(function*(runnerName: string, jitConfig: Redacted.Redacted<string>) {
    const provider = settings.capacityProvider
    let result = yield* attempt(runnerName, Redacted.value(jitConfig), provider)
    let used = provider
    if (!result.ok && provider === "FARGATE_SPOT" && isCapacityShortage(result.reason)) {
      yield* Log.warnEvent("runtask.spot.unavailable", "Fargate Spot has no capacity; starting the runner on on-demand Fargate", { runner: runnerName, reason: result.reason })
      used = "FARGATE"
      result = yield* attempt(runnerName, Redacted.value(jitConfig), used)
    }
    if (!result.ok) {
      yield* Log.errorEvent("runtask.failed", `RunTask failed for runner ${runnerName}: ${result.reason}`, {
        runner: runnerName,
        capacityProvider: used,
        reason: result.reason
      })
      return yield* new RunTaskError({ runnerName, detail: result.reason })
    }
    yield* Log.event("runner.launched", `runner task started for ${runnerName}`, { runner: runnerName, taskArn: result.taskArn, capacityProvider: used })
    return { taskArn: result.taskArn, capacityProvider: used } satisfies LaunchedTask
  })

  const describe = (taskArns: ReadonlyArray<string>) =>
    taskArns.length === 0
      ? Effect.succeed<ReadonlyArray<TaskState>>([])
      : Effect.forEach(chunks(taskArns, 100), (chunk) =>
        Effect.tryPromise({
          try: () => api.describeTasks(settings.cluster, chunk),
          catch: (error) => new EcsError({ operation: "DescribeTasks", detail: describeError(error) })
        })).pipe(Effect.map((lists) => lists.flat()))

  const stop = (taskArn: string, reason: string) =>
    Effect.tryPromise({
      try: () => api.stopTask(settings.cluster, taskArn, reason.slice(0, 255)),
      catch: (error) => new EcsError({ operation: `StopTask ${taskArn}`, detail: describeError(error) })
    })

  const running = Effect.tryPromise({
    try: () => api.listTasks(settings.cluster, startedBy),
    catch: (error) => new EcsError({ operation: "ListTasks", detail: describeError(error) })
  }).pipe(
    Effect.flatMap(describe),
    Effect.map((states) => states.filter((s) => s.lastStatus !== "STOPPED" && s.lastStatus !== "DELETED"))
  )

  return TaskLauncher.of({ launch, describe, running, stop })
}

const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}
