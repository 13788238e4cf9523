/**
 * The runner scale set protocol of the GitHub Actions service (what ARC's listener and the official
 * Go client github.com/actions/scaleset speak): a registration token buys an admin token for the
 * Actions service, which manages the scale set, its message session, job acquisition and JIT
 * configs. See /docs/controller.md for the sequence.
 *
 * Every credential (registration token, admin token, queue token, JIT config) is registered with
 * `Redaction` the moment it is received; none is ever put into an error or a log field.
 */
import { hostname } from "node:os"
import { Clock, Context, Duration, Effect, Layer, Option, Redacted, Ref, Schedule, Schema, Semaphore } from "effect"
import { Config } from "./Config.ts"
import { AuthError, GitHubApiError } from "./Errors.ts"
import { GitHubApp, type GitHubError } from "./GitHubApp.ts"
import * as Log from "./Log.ts"
import { Redaction } from "./Log.ts"
import { registrationUrl } from "./Settings.ts"

// The Actions service failing, or answering what the protocol does not allow, is a GitHubApiError
// like any other GitHub failure (same fields, exit code 69): every method fails with GitHubError.


// --- Wire shapes (the fields ghr uses; the service sends more) -------------------------------

const Statistics = Schema.Struct({
  totalAvailableJobs: Schema.optional(Schema.Number),
  totalAcquiredJobs: Schema.optional(Schema.Number),
  totalAssignedJobs: Schema.optional(Schema.Number),
  totalRunningJobs: Schema.optional(Schema.Number),
  totalRegisteredRunners: Schema.optional(Schema.Number),
  totalBusyRunners: Schema.optional(Schema.Number),
  totalIdleRunners: Schema.optional(Schema.Number)
})
export type Statistics = typeof Statistics.Type

const ScaleSetBody = Schema.Struct({ id: Schema.Number, name: Schema.String, runnerGroupId: Schema.optional(Schema.Number) })
const ListOf = <S extends Schema.Top>(item: S) => Schema.Struct({ count: Schema.optional(Schema.Number), value: Schema.optional(Schema.NullOr(Schema.Array(item))) })
const RunnerGroupBody = Schema.Struct({ id: Schema.Number, name: Schema.String })
const RegistrationBody = Schema.Struct({ url: Schema.String, token: Schema.String })
const SessionBody = Schema.Struct({
  sessionId: Schema.String,
  messageQueueUrl: Schema.String,
  messageQueueAccessToken: Schema.String,
  statistics: Schema.optional(Schema.NullOr(Statistics))
})
const MessageBody = Schema.Struct({
  messageId: Schema.Number,
  messageType: Schema.String,
  body: Schema.optional(Schema.NullOr(Schema.String)),
  statistics: Schema.optional(Schema.NullOr(Statistics))
})
const JobItem = Schema.Struct({
  messageType: Schema.String,
  runnerRequestId: Schema.optional(Schema.Number),
  jobId: Schema.optional(Schema.String),
  jobDisplayName: Schema.optional(Schema.String),
  repositoryName: Schema.optional(Schema.String),
  ownerName: Schema.optional(Schema.String),
  workflowRunId: Schema.optional(Schema.Number),
  runnerId: Schema.optional(Schema.Number),
  runnerName: Schema.optional(Schema.String),
  result: Schema.optional(Schema.String)
})
export type JobItem = typeof JobItem.Type
const AcquiredBody = Schema.Struct({ value: Schema.optional(Schema.NullOr(Schema.Array(Schema.Number))) })
const JitBody = Schema.Struct({
  runner: Schema.Struct({ id: Schema.Number, name: Schema.String }),
  encodedJITConfig: Schema.String
})

export interface ScaleSet {
  readonly id: number
  readonly name: string
  readonly runnerGroupId: number
}

export interface SessionInfo {
  readonly sessionId: string
  readonly statistics: Statistics
}

export interface JobMessage {
  readonly messageId: number
  readonly messageType: string
  /** Absent when the service sent none: then nothing is known about the scale set's load. */
  readonly statistics: Statistics | undefined
  readonly items: ReadonlyArray<JobItem>
}

export interface ScaleSetRunner {
  readonly runnerId: number
  readonly name: string
  readonly encodedJitConfig: Redacted.Redacted<string>
}

export type RunnerDeleteOutcome = "deleted" | "already-gone" | "busy"

export class ActionsService extends Context.Service<ActionsService, {
  /** The scale set named RUNNER_NAME_PREFIX in RUNNER_GROUP, created when missing. */
  readonly ensureScaleSet: Effect.Effect<ScaleSet, GitHubError>
  /** Opens the message session (one per scale set: a 409 conflict is waited out, bounded). */
  openSession(scaleSetId: number): Effect.Effect<SessionInfo, GitHubError>
  /** Long-polls the session's queue: None when nothing arrived (202). */
  getMessage(lastMessageId: number, maxCapacity: number): Effect.Effect<Option.Option<JobMessage>, GitHubError>
  deleteMessage(messageId: number): Effect.Effect<void, GitHubError>
  acquireJobs(scaleSetId: number, runnerRequestIds: ReadonlyArray<number>): Effect.Effect<ReadonlyArray<number>, GitHubError>
  generateJitConfig(scaleSetId: number, name: string, workFolder: string): Effect.Effect<ScaleSetRunner, GitHubError>
  deleteRunner(runnerId: number): Effect.Effect<RunnerDeleteOutcome, GitHubError>
  /** Deletes the open session, if any. */
  readonly closeSession: Effect.Effect<void, GitHubError>
}>()("ghr/ActionsService") {
  static readonly layer = (options: ActionsServiceOptions = {}) => Layer.effect(ActionsService, make(options))
}

export interface ActionsServiceOptions {
  /** Wait between attempts when another session holds the scale set (default 30 s). */
  readonly sessionConflictDelay?: Duration.Input
  /** Attempts after a 409 session conflict (default 10). */
  readonly sessionConflictRetries?: number
  /** First delay of the exponential retry on 5xx/429/no response (default 500 ms). */
  readonly retryBase?: Duration.Input
}

const apiVersion = "6.0-preview"
/** The service holds a long poll for about 50 s; give up on a silent connection well after that. */
const longPollTimeoutMs = 90_000
const requestTimeoutMs = 30_000
/** Register again when less than this is left of the admin token. */
const adminRefreshMarginMs = 60_000

interface Failure {
  readonly status: number | undefined
  readonly message: string
  readonly typeName: string | undefined
}

/** A failed call, before it is mapped to an error for the user. */
class CallFailure {
  readonly _tag = "CallFailure"
  constructor(readonly failure: Failure) {}
}

interface Response {
  readonly status: number
  readonly json: unknown
}

/** The service may prefix JSON with a UTF-8 byte order mark. */
export const parseJson = (text: string): unknown => {
  const clean = text.replace(/^\uFEFF/, "").trim()
  return clean === "" ? undefined : JSON.parse(clean)
}

/** The `exp` claim of a JWT in milliseconds, or undefined when the token is not a JWT. */
export const jwtExpiryMs = (token: string): number | undefined => {
  const payload = token.split(".")[1]
  if (payload === undefined) return undefined
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { exp?: unknown }
    return typeof claims.exp === "number" ? claims.exp * 1000 : undefined
  } catch {
    return undefined
  }
}

const withApiVersion = (url: string): string => `${url}${url.includes("?") ? "&" : "?"}api-version=${apiVersion}`

const isRetryable = (f: Failure) => f.status === undefined || f.status >= 500 || f.status === 429

interface AdminConnection {
  readonly url: string
  readonly token: string
  readonly expiresAtMs: number
}

interface OpenSession {
  readonly scaleSetId: number
  readonly sessionId: string
  readonly queueUrl: string
  readonly queueToken: string
}

const make = (options: ActionsServiceOptions) =>
  Effect.gen(function*() {
    const settings = yield* Config
    const github = yield* GitHubApp
    const redaction = yield* Redaction
    const maxRetries = settings.apiMaxRetries

    const retrySchedule = Schedule.exponential(options.retryBase ?? Duration.millis(500)).pipe(
      Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(30)))),
      Schedule.upTo({ times: maxRetries })
    )

    const send = (method: string, url: string, headers: Record<string, string>, body: unknown, timeoutMs: number) =>
      Effect.tryPromise({
        try: async (signal): Promise<Response> => {
          const response = await fetch(url, {
            method,
            headers: {
              accept: "application/json",
              "user-agent": "ghr",
              ...(body === undefined ? {} : { "content-type": "application/json; charset=utf-8" }),
              ...headers
            },
            body: body === undefined ? undefined : JSON.stringify(body),
            signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])
          })
          const text = await response.text()
          let json: unknown
          try {
            json = parseJson(text)
          } catch {
            json = undefined
          }
          return { status: response.status, json }
        },
        catch: (error) => {
          const e = error as { name?: string; message?: string; cause?: { code?: string } }
          return new CallFailure({ status: undefined, message: e.cause?.code ?? e.message ?? String(error), typeName: undefined })
        }
      }).pipe(
        Effect.flatMap((response) => {
          if (response.status < 400) return Effect.succeed(response)
          const err = response.json as { message?: unknown; typeName?: unknown } | undefined
          const typeName = typeof err?.typeName === "string" ? err.typeName.split(",")[0]!.split(".").pop() : undefined
          const message = typeof err?.message === "string" ? err.message : `HTTP ${response.status}`
          return Effect.fail(new CallFailure({ status: response.status, message, typeName }))
        })
      )

    const retried = <A>(effect: Effect.Effect<A, CallFailure>, alsoRetry: (f: Failure) => boolean = () => false) =>
      Effect.retry(effect, {
        schedule: retrySchedule,
        while: (e: CallFailure) => isRetryable(e.failure) || alsoRetry(e.failure)
      })

    const serviceError = (operation: string, f: Failure) =>
      new GitHubApiError({
        operation,
        status: f.status,
        detail: f.status === undefined
          ? `no response from the Actions service (${f.message}) after ${maxRetries + 1} attempts`
          : `${f.typeName === undefined ? "" : `${f.typeName}: `}${f.message}`,
        fix: f.status === undefined || f.status >= 500 || f.status === 429
          ? "the Actions service is unreachable or failing; check this task's route to the internet and https://www.githubstatus.com"
          : "check RUNNER_GROUP, RUNNER_NAME_PREFIX and RUNNER_LABELS against the message, and the App's runner permissions"
      })

    const decode = <S extends Schema.Top>(operation: string, schema: S) => (json: unknown) =>
      Option.match(Schema.decodeUnknownOption(schema as unknown as Schema.Decoder<S["Type"]>)(json), {
        onNone: () =>
          Effect.fail(new GitHubApiError({
            operation,
            detail: "the Actions service answered with a body the scale set protocol does not describe",
            fix: "check GITHUB_URL / GITHUB_API_URL; the runner scale set API may have changed — report it"
          })),
        onSome: (value: S["Type"]) => Effect.succeed(value)
      })

    // --- Admin connection (POST {api}/actions/runner-registration) -----------------------------
    const connection = yield* Ref.make(Option.none<AdminConnection>())
    const registerLock = yield* Semaphore.make(1)

    const register = Effect.gen(function*() {
      const operation = "registering with the Actions service (POST /actions/runner-registration)"
      const registrationToken = yield* github.registrationToken
      const response = yield* retried(
        send("POST", `${settings.apiUrl}/actions/runner-registration`, {
          authorization: `RemoteAuth ${Redacted.value(registrationToken)}`
        }, { url: registrationUrl(settings), runner_event: "register" }, requestTimeoutMs),
        // A new registration token can take a moment to be accepted everywhere.
        (f) => f.status === 401 || f.status === 403
      ).pipe(
        Effect.mapError(({ failure }) =>
          failure.status === 401 || failure.status === 403 || failure.status === 404
            ? new AuthError({
              status: failure.status,
              detail: `${operation}: ${failure.message}`,
              fix: `check that the App is installed on ${registrationUrl(settings)} with the runner permissions, and that GITHUB_URL names that GitHub`
            })
            : serviceError(operation, failure)
        )
      )
      const body = yield* decode(operation, RegistrationBody)(response.json)
      yield* redaction.register(body.token)
      const now = yield* Clock.currentTimeMillis
      const admin: AdminConnection = {
        url: body.url.endsWith("/") ? body.url : `${body.url}/`,
        token: body.token,
        expiresAtMs: jwtExpiryMs(body.token) ?? now + 50 * 60_000
      }
      yield* Ref.set(connection, Option.some(admin))
      yield* Log.event("actions.registered", "connected to the Actions service", { expiresAt: new Date(admin.expiresAtMs).toISOString() })
      return admin
    })

    const admin = registerLock.withPermits(1)(
      Effect.gen(function*() {
        const current = yield* Ref.get(connection)
        const now = yield* Clock.currentTimeMillis
        if (Option.isSome(current) && current.value.expiresAtMs - now > adminRefreshMarginMs) return current.value
        return yield* register
      })
    )

    /** One call with the admin token: retried on 5xx/429, registered again once on 401. */
    const call = (operation: string, method: string, path: string, body?: unknown, accept: ReadonlyArray<number> = []) => {
      const attempt = Effect.gen(function*() {
        const conn = yield* admin
        return yield* retried(send(method, withApiVersion(`${conn.url}${path}`), { authorization: `Bearer ${conn.token}` }, body, requestTimeoutMs))
      })
      const tolerate = (e: CallFailure) =>
        accept.includes(e.failure.status ?? -1)
          ? Effect.succeed<Response | CallFailure>(e)
          : Effect.fail(e)
      return attempt.pipe(
        Effect.catchIf(
          (e): e is CallFailure => e instanceof CallFailure && e.failure.status === 401,
          () =>
            Log.warnEvent("actions.token.rejected", "the Actions service rejected the admin token (401); registering again").pipe(
              Effect.andThen(Ref.set(connection, Option.none())),
              Effect.andThen(attempt)
            )
        ),
        Effect.map((r): Response | CallFailure => r),
        Effect.catchIf((e): e is CallFailure => e instanceof CallFailure, tolerate),
        Effect.mapError((e) => (e instanceof CallFailure ? serviceError(operation, e.failure) : e))
      )
    }
    const ok = (r: Response | CallFailure): Response => (r instanceof CallFailure ? { status: r.failure.status ?? 0, json: undefined } : r)

    // --- Scale set -----------------------------------------------------------------------------
    const scaleSetName = settings.runner.namePrefix
    const runnerGroupId = Effect.gen(function*() {
      const group = settings.runner.group
      if (group.toLowerCase() === "default") return 1
      const operation = `looking up runner group "${group}"`
      const response = ok(yield* call(operation, "GET", `_apis/runtime/runnergroups/?groupName=${encodeURIComponent(group)}`))
      const list = yield* decode(operation, ListOf(RunnerGroupBody))(response.json)
      const found = (list.value ?? []).find((g) => g.name.toLowerCase() === group.toLowerCase())
      if (found === undefined) {
        return yield* new GitHubApiError({
          operation,
          detail: `no runner group named "${group}"`,
          fix: "create it under the organization's Settings → Actions → Runner groups, or fix RUNNER_GROUP"
        })
      }
      return found.id
    })

    const ensureScaleSet = Effect.gen(function*() {
      const groupId = yield* runnerGroupId
      const operation = `finding runner scale set "${scaleSetName}"`
      const listed = ok(yield* call(operation, "GET", `_apis/runtime/runnerscalesets?runnerGroupId=${groupId}&name=${encodeURIComponent(scaleSetName)}`))
      const list = yield* decode(operation, ListOf(ScaleSetBody))(listed.json)
      const existing = (list.value ?? []).find((s) => s.name === scaleSetName)
      if (existing !== undefined) {
        yield* Log.event("scaleset.found", `using runner scale set "${scaleSetName}"`, { scaleSetId: existing.id, runnerGroupId: groupId })
        return { id: existing.id, name: existing.name, runnerGroupId: groupId } satisfies ScaleSet
      }
      const labels = [...new Set([scaleSetName, ...settings.runner.labels])].map((name) => ({ name, type: "System" }))
      const createOp = `creating runner scale set "${scaleSetName}"`
      const created = ok(yield* call(createOp, "POST", "_apis/runtime/runnerscalesets", {
        name: scaleSetName,
        runnerGroupId: groupId,
        labels,
        RunnerSetting: { disableUpdate: settings.runner.disableUpdate }
      }))
      const body = yield* decode(createOp, ScaleSetBody)(created.json)
      yield* Log.event("scaleset.created", `created runner scale set "${scaleSetName}"`, { scaleSetId: body.id, runnerGroupId: groupId })
      return { id: body.id, name: body.name, runnerGroupId: groupId } satisfies ScaleSet
    })

    // --- Session and messages --------------------------------------------------------------------
    const session = yield* Ref.make(Option.none<OpenSession>())

    const toSession = (scaleSetId: number, body: typeof SessionBody.Type): Effect.Effect<OpenSession> =>
      Effect.as(redaction.register(body.messageQueueAccessToken), {
        scaleSetId,
        sessionId: body.sessionId,
        queueUrl: body.messageQueueUrl,
        queueToken: body.messageQueueAccessToken
      })

    const conflictSchedule = Schedule.spaced(options.sessionConflictDelay ?? Duration.seconds(30)).pipe(
      Schedule.upTo({ times: options.sessionConflictRetries ?? 10 })
    )

    const openSession = Effect.fn("ActionsService.openSession")(function*(scaleSetId: number) {
      const operation = `opening a message session on scale set ${scaleSetId}`
      const response = yield* call(operation, "POST", `_apis/runtime/runnerscalesets/${scaleSetId}/sessions`, { ownerName: hostname() }, [409]).pipe(
        Effect.flatMap((r) =>
          r instanceof CallFailure
            ? Effect.fail(r)
            : Effect.succeed(r)
        ),
        Effect.tapError((e) =>
          e instanceof CallFailure
            ? Log.warnEvent("session.conflict", "another listener holds this scale set's session; waiting for it to end", { scaleSetId })
            : Effect.void
        ),
        Effect.retry({ schedule: conflictSchedule, while: (e) => e instanceof CallFailure }),
        Effect.mapError((e) =>
          e instanceof CallFailure
            ? new GitHubApiError({
              operation,
              status: 409,
              detail: "another listener still holds the scale set's message session",
              fix: "make sure only one ghr controller (or ARC listener) serves this scale set; a stale session expires after a few minutes"
            })
            : e
        )
      )
      const body = yield* decode(operation, SessionBody)(response.json)
      const open = yield* toSession(scaleSetId, body)
      yield* Ref.set(session, Option.some(open))
      yield* Log.event("session.opened", "message session opened", { scaleSetId })
      return { sessionId: body.sessionId, statistics: body.statistics ?? {} } satisfies SessionInfo
    })

    const current = Effect.flatMap(Ref.get(session), (s) =>
      Option.match(s, {
        onNone: () => Effect.fail(new GitHubApiError({ operation: "using the message session", detail: "no session is open", fix: "this is a bug in ghr" })),
        onSome: Effect.succeed
      }))

    const refreshSession = Effect.gen(function*() {
      const open = yield* current
      const operation = "refreshing the message session"
      const response = ok(yield* call(operation, "PATCH", `_apis/runtime/runnerscalesets/${open.scaleSetId}/sessions/${open.sessionId}`))
      const refreshed = yield* toSession(open.scaleSetId, yield* decode(operation, SessionBody)(response.json))
      yield* Ref.set(session, Option.some(refreshed))
      yield* Log.event("session.refreshed", "message queue token refreshed")
      return refreshed
    })

    /** A call with the queue token: retried on 5xx/429, and once with a refreshed session on 401. */
    const queueCall = (operation: string, request: (open: OpenSession) => Effect.Effect<Response, CallFailure>) => {
      const attempt = Effect.flatMap(current, (open) => retried(request(open)))
      return attempt.pipe(
        Effect.catchIf(
          (e): e is CallFailure => e instanceof CallFailure && e.failure.status === 401,
          () => Effect.andThen(refreshSession, attempt)
        ),
        Effect.mapError((e) => (e instanceof CallFailure ? serviceError(operation, e.failure) : e))
      )
    }

    const getMessage = Effect.fn("ActionsService.getMessage")(function*(lastMessageId: number, maxCapacity: number) {
      const operation = "polling the scale set's messages"
      const response = yield* queueCall(operation, (open) => {
        const url = new URL(open.queueUrl)
        if (lastMessageId > 0) url.searchParams.set("lastMessageId", String(lastMessageId))
        return send("GET", url.toString(), {
          authorization: `Bearer ${open.queueToken}`,
          accept: `application/json; api-version=${apiVersion}`,
          "x-scalesetmaxcapacity": String(maxCapacity)
        }, undefined, longPollTimeoutMs)
      })
      if (response.status === 202 || response.json === undefined) return Option.none<JobMessage>()
      const message = yield* decode(operation, MessageBody)(response.json)
      let items: ReadonlyArray<JobItem> = []
      if (message.messageType === "RunnerScaleSetJobMessages" && message.body) {
        let parsed: unknown
        try {
          parsed = parseJson(message.body)
        } catch {
          parsed = undefined
        }
        items = yield* decode(operation, Schema.Array(JobItem))(parsed)
      }
      return Option.some<JobMessage>({
        messageId: message.messageId,
        messageType: message.messageType,
        statistics: message.statistics ?? undefined,
        items
      })
    })

    const deleteMessage = Effect.fn("ActionsService.deleteMessage")(function*(messageId: number) {
      yield* queueCall("acknowledging a message", (open) => {
        const url = new URL(open.queueUrl)
        url.pathname = `${url.pathname.replace(/\/+$/, "")}/${messageId}`
        return send("DELETE", url.toString(), {
          authorization: `Bearer ${open.queueToken}`,
          accept: `application/json; api-version=${apiVersion}`
        }, undefined, requestTimeoutMs)
      })
    })

    const acquireJobs = Effect.fn("ActionsService.acquireJobs")(function*(scaleSetId: number, runnerRequestIds: ReadonlyArray<number>) {
      if (runnerRequestIds.length === 0) return []
      const operation = `acquiring ${runnerRequestIds.length} job(s)`
      const conn = yield* admin
      const response = yield* queueCall(operation, (open) =>
        send("POST", withApiVersion(`${conn.url}_apis/runtime/runnerscalesets/${scaleSetId}/acquirejobs`), {
          authorization: `Bearer ${open.queueToken}`
        }, runnerRequestIds, requestTimeoutMs))
      const body = yield* decode(operation, AcquiredBody)(response.json ?? {})
      return body.value ?? []
    })

    const generateJitConfig = Effect.fn("ActionsService.generateJitConfig")(function*(scaleSetId: number, name: string, workFolder: string) {
      const operation = `generating a JIT config for runner ${name}`
      const response = ok(yield* call(operation, "POST", `_apis/runtime/runnerscalesets/${scaleSetId}/generatejitconfig`, { name, workFolder }))
      const body = yield* decode(operation, JitBody)(response.json)
      yield* redaction.register(body.encodedJITConfig)
      return {
        runnerId: body.runner.id,
        name: body.runner.name,
        encodedJitConfig: Redacted.make(body.encodedJITConfig, { label: "JIT config" })
      } satisfies ScaleSetRunner
    })

    const deleteRunner = Effect.fn("ActionsService.deleteRunner")(function*(runnerId: number) {
      const result = yield* call(`deleting runner ${runnerId}`, "DELETE", `_apis/distributedtask/pools/0/agents/${runnerId}`, undefined, [400, 404])
      if (!(result instanceof CallFailure)) return "deleted" as RunnerDeleteOutcome
      if (result.failure.status === 404) return "already-gone" as RunnerDeleteOutcome
      if (result.failure.typeName === "JobStillRunningException") return "busy" as RunnerDeleteOutcome
      return yield* serviceError(`deleting runner ${runnerId}`, result.failure)
    })

    const closeSession = Effect.gen(function*() {
      const open = yield* Ref.get(session)
      if (Option.isNone(open)) return
      yield* call("deleting the message session", "DELETE", `_apis/runtime/runnerscalesets/${open.value.scaleSetId}/sessions/${open.value.sessionId}`, undefined, [404])
      yield* Ref.set(session, Option.none())
      yield* Log.event("session.deleted", "message session deleted", { scaleSetId: open.value.scaleSetId })
    })

    return ActionsService.of({
      ensureScaleSet,
      openSession,
      getMessage,
      deleteMessage,
      acquireJobs,
      generateJitConfig,
      deleteRunner,
      closeSession
    })
  })
