/**
 * The official actions runner as a child process: `config.sh` for registration mode, `run.sh`
 * for the job. Credentials reach it only through the environment (never argv), and the
 * environment it inherits is scrubbed of every credential ghr itself used.
 */
import { accessSync, constants as fsConstants } from "node:fs"
import { constants as osConstants } from "node:os"
import { join } from "node:path"
import { Context, Duration, Effect, Fiber, Layer, Redacted, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import { Config } from "./Config.ts"
import { RunnerError } from "./Errors.ts"
import * as Log from "./Log.ts"
import { credentialVariables, type Env } from "./Settings.ts"
import { Signals, type StopSignal } from "./Signals.ts"

/** Variables through which the AWS SDK finds credentials; in a self-registering task they can read the App secret. */
export const awsCredentialVariables = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_SECURITY_TOKEN",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_ROLE_ARN",
  "AWS_PROFILE",
  "AWS_SHARED_CREDENTIALS_FILE"
] as const

/**
 * The environment the runner (and so every job) starts with: ghr's own environment minus every
 * credential. When ghr registered the runner itself with App credentials, the AWS credentials
 * that fetched them go too: a job must not be able to read the App secret with them. A runner
 * handed a JIT config by the controller keeps its task role, which by design cannot read it.
 */
export const runnerEnvironment = (env: Env, options: { readonly selfRegistered: boolean }): Record<string, string> => {
  const drop = new Set<string>([...credentialVariables, ...(options.selfRegistered ? awsCredentialVariables : [])])
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || drop.has(name)) continue
    if (name.startsWith("GHR_") || name.startsWith("GITHUB_APP_") || name.startsWith("ACTIONS_RUNNER_INPUT_")) continue
    out[name] = value
  }
  return out
}

export interface RegistrationArgs {
  readonly url: string
  readonly name: string
  readonly labels: ReadonlyArray<string>
  readonly group: string
  readonly workDir: string
  readonly ephemeral: boolean
  readonly disableUpdate: boolean
}

/** config.sh's flags; the token goes in ACTIONS_RUNNER_INPUT_TOKEN, which config.sh reads for --token. */
export const configArgs = (args: RegistrationArgs): Array<string> => [
  "--unattended",
  "--replace",
  "--url", args.url,
  "--name", args.name,
  "--labels", args.labels.join(","),
  "--runnergroup", args.group,
  "--work", args.workDir,
  ...(args.ephemeral ? ["--ephemeral"] : []),
  ...(args.disableUpdate ? ["--disableupdate"] : [])
]

export type RunOutcome =
  | { readonly _tag: "exited"; readonly exitCode: number }
  | { readonly _tag: "stopped"; readonly signal: StopSignal; readonly exitCode: number }

export type JobEvent =
  | { readonly event: "job.started"; readonly job: string }
  | { readonly event: "job.completed"; readonly job: string; readonly result: string }

/**
 * The actions runner announces jobs on its console ("<time>: Running job: build",
 * "<time>: Job build completed with result: Succeeded"); those lines become events that the
 * stack's metric filters count.
 */
export const jobEventOf = (line: string): JobEvent | undefined => {
  const started = /Running job: (.+?)\s*$/.exec(line)
  if (started !== null) return { event: "job.started", job: started[1]! }
  const completed = /Job (.+) completed with result: (\w+)/.exec(line)
  if (completed !== null) return { event: "job.completed", job: completed[1]!, result: completed[2]! }
  return undefined
}

/**
 * The platform reports a child killed by a signal as an error whose cause names the signal
 * ("… receipt of signal: 'SIGKILL'"); shells report that death as 128 + the signal's number.
 */
export const exitCodeFromSignalDeath = (error: unknown): number | undefined => {
  for (let current = error, depth = 0; current !== null && typeof current === "object" && depth < 5; depth++) {
    const { message, cause } = current as { message?: unknown; cause?: unknown }
    const name = typeof message === "string" ? /signal: '(\w+)'/.exec(message)?.[1] : undefined
    const number = name === undefined ? undefined : (osConstants.signals as Record<string, number>)[name]
    if (number !== undefined) return 128 + number
    current = cause
  }
  return undefined
}

export class Runner extends Context.Service<Runner, {
  /** Registers with config.sh (registration mode). */
  configure(args: RegistrationArgs, token: Redacted.Redacted<string>): Effect.Effect<void, RunnerError>
  /** Unregisters with `config.sh remove` (registration mode). */
  remove(token: Redacted.Redacted<string>): Effect.Effect<void, RunnerError>
  /** Runs run.sh until it exits; a SIGTERM/SIGINT to ghr is forwarded and its exit awaited. */
  run(jitConfig: Redacted.Redacted<string> | undefined): Effect.Effect<RunOutcome, RunnerError>
}>()("ghr/Runner") {
  static readonly layer = (processEnv: Env) =>
    Layer.effect(
      Runner,
      Effect.gen(function*() {
        const settings = yield* Config
        const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
        const signals = yield* Signals
        const redaction = yield* Log.Redaction
        const dir = settings.runner.dir
        const baseEnv = runnerEnvironment(processEnv, { selfRegistered: settings.app !== undefined })

        const script = (name: "run.sh" | "config.sh") =>
          Effect.try({
            try: () => {
              const path = join(dir, name)
              accessSync(path, fsConstants.X_OK)
              return path
            },
            catch: () =>
              new RunnerError({
                detail: `the actions runner's ${name} was not found (or is not executable) in RUNNER_DIR=${dir}`,
                fix: "use the ghr runner image, or set RUNNER_DIR to the directory where the actions runner release was unpacked"
              })
          })

        /** Every line the runner prints becomes a log record, so it is redacted and structured like ours. */
        const forwardOutput = (stream: Stream.Stream<Uint8Array, unknown>, source: "stdout" | "stderr") =>
          stream.pipe(
            Stream.decodeText(),
            Stream.splitLines,
            Stream.runForEach((line) => {
              if (line.trim() === "") return Effect.void
              const job = jobEventOf(line)
              const output = Effect.logInfo(line).pipe(Effect.annotateLogs({ event: "runner.output", source }))
              if (job === undefined) return output
              const { event, ...fields } = job
              return Effect.andThen(output, Log.event(event, event === "job.started" ? `job ${job.job} started` : `job ${job.job} completed`, fields))
            }),
            Effect.ignore
          )

        const spawnFailed = (name: string) => (cause: { message: string }) =>
          new RunnerError({
            detail: `could not start ${name}: ${redaction.redact(cause.message)}`,
            fix: `check that ${join(dir, name)} is the actions runner's script and that its dependencies are installed`
          })

        const runConfig = (args: Array<string>, token: Redacted.Redacted<string>, what: string) =>
          Effect.scoped(
            Effect.gen(function*() {
              const path = yield* script("config.sh")
              const handle = yield* spawner.spawn(
                ChildProcess.make(path, args, {
                  cwd: dir,
                  env: { ...baseEnv, ACTIONS_RUNNER_INPUT_TOKEN: token },
                  extendEnv: false,
                  detached: false
                })
              ).pipe(Effect.mapError(spawnFailed("config.sh")))
              const output = yield* Effect.forkChild(
                Effect.all([forwardOutput(handle.stdout, "stdout"), forwardOutput(handle.stderr, "stderr")], { concurrency: 2 })
              )
              const exitCode = yield* handle.exitCode.pipe(Effect.mapError(spawnFailed("config.sh")))
              yield* Fiber.join(output)
              if (exitCode !== 0) {
                return yield* new RunnerError({
                  detail: `config.sh ${what} exited with code ${exitCode}`,
                  fix: "read the runner's output above; a 404 from config.sh usually means the registration token expired (it lives one hour) or the URL is wrong"
                })
              }
            })
          )

        const configure = (args: RegistrationArgs, token: Redacted.Redacted<string>) =>
          runConfig(configArgs(args), token, "(registration)").pipe(
            Effect.tap(() => Log.event("runner.configured", `runner ${args.name} registered with config.sh`, { runnerName: args.name }))
          )

        const remove = (token: Redacted.Redacted<string>) => runConfig(["remove"], token, "remove")

        const run = (jitConfig: Redacted.Redacted<string> | undefined) =>
          Effect.scoped(
            Effect.gen(function*() {
              const path = yield* script("run.sh")
              const handle = yield* spawner.spawn(
                ChildProcess.make(path, [], {
                  cwd: dir,
                  env: jitConfig === undefined ? baseEnv : { ...baseEnv, ACTIONS_RUNNER_INPUT_JITCONFIG: jitConfig },
                  extendEnv: false,
                  // run.sh forwards signals to the listener and lets it cancel the job cleanly;
                  // signalling the whole group would kill job processes behind its back.
                  detached: false,
                  killSignal: "SIGTERM",
                  forceKillAfter: Duration.seconds(settings.runner.stopTimeoutSeconds)
                })
              ).pipe(Effect.mapError(spawnFailed("run.sh")))
              yield* Log.event("runner.started", "actions runner started", { pid: handle.pid })
              const output = yield* Effect.forkChild(
                Effect.all([forwardOutput(handle.stdout, "stdout"), forwardOutput(handle.stderr, "stderr")], { concurrency: 2 })
              )
              const exitCode = handle.exitCode.pipe(
                Effect.map(Number),
                Effect.catch((error) => {
                  const code = exitCodeFromSignalDeath(error)
                  return code === undefined ? Effect.fail(spawnFailed("run.sh")(error)) : Effect.succeed(code)
                })
              )
              const outcome = yield* Effect.raceFirst(
                Effect.map(exitCode, (code): RunOutcome => ({ _tag: "exited", exitCode: code })),
                Effect.gen(function*() {
                  const signal = yield* signals.received
                  yield* Log.event("runner.signal", `forwarding ${signal} to the runner; waiting up to ${settings.runner.stopTimeoutSeconds}s for it to stop`, { signal })
                  yield* handle.kill({ killSignal: signal, forceKillAfter: Duration.seconds(settings.runner.stopTimeoutSeconds) }).pipe(Effect.ignore)
                  return { _tag: "stopped", signal, exitCode: yield* exitCode } satisfies RunOutcome
                })
              )
              yield* Fiber.join(output)
              yield* Log.event("runner.exited", `actions runner exited with code ${outcome.exitCode}`, { exitCode: outcome.exitCode })
              return outcome
            })
          )

        return Runner.of({ configure, remove, run })
      })
    )
}
