/**
 * The GitHub App: JWT and installation tokens through @octokit/auth-app, and the few REST calls
 * a runner lifecycle needs (https://docs.github.com/en/rest/actions/self-hosted-runners).
 */
import { createAppAuth } from "@octokit/auth-app"
import { request as octokitRequest } from "@octokit/request"
import { Clock, Context, Duration, Effect, Layer, Option, Redacted, Ref, Schedule, Schema, Semaphore } from "effect"
import { Config } from "./Config.ts"
import { AuthError, ConfigError, GitHubApiError } from "./Errors.ts"
import { type HttpFailure, isRetryable, retryDelayMs } from "./GitHubRetry.ts"
import * as Log from "./Log.ts"
import { Redaction } from "./Log.ts"
import { type AppCredentials, describeScope, type Settings } from "./Settings.ts"

export interface JitRunner {
  readonly runnerId: number
  readonly name: string
  readonly encodedJitConfig: Redacted.Redacted<string>
}

export interface RegisteredRunner {
  readonly id: number
  readonly name: string
  readonly status: string
  readonly busy: boolean
}

export type DeleteOutcome = "deleted" | "already-gone" | "busy"

export type GitHubError = AuthError | GitHubApiError | ConfigError

/** GET /app (App JWT): who the App is, and how far this machine's clock is from GitHub's. */
export interface AppInfo {
  readonly id: number
  readonly slug: string | undefined
  readonly name: string | undefined
  readonly clientId: string | undefined
  readonly owner: { readonly login: string; readonly type: string } | undefined
  readonly htmlUrl: string | undefined
  readonly permissions: Readonly<Record<string, string>>
  /** GitHub's clock minus ours, from the response's Date header; undefined without one. */
  readonly skewSeconds: number | undefined
}

/** GET /app/installations/{id} (App JWT): the account it is installed on and what it was granted. */
export interface InstallationInfo {
  readonly id: number
  readonly appId: number | undefined
  readonly account: { readonly login: string; readonly type: string }
  readonly permissions: Readonly<Record<string, string>>
  readonly repositorySelection: string | undefined
  readonly suspendedAt: string | undefined
  readonly htmlUrl: string | undefined
}

/** The `core` bucket of GET /rate_limit for the installation token. */
export interface RateLimitInfo {
  readonly limit: number
  readonly remaining: number
  readonly used: number
  /** Epoch seconds. */
  readonly reset: number
}

export interface RepositoryInfo {
  readonly fullName: string
  readonly archived: boolean
}

export class GitHubApp extends Context.Service<GitHubApp, {
  /** A cached installation token, minted again when less than five minutes of it remain. */
  readonly installationToken: Effect.Effect<Redacted.Redacted<string>, GitHubError>
  /** The id of the runner group named in RUNNER_GROUP (org scope); 1, the default group, otherwise. */
  readonly runnerGroupId: Effect.Effect<number, GitHubError>
  generateJitConfig(input: {
    readonly name: string
    readonly labels: ReadonlyArray<string>
    readonly runnerGroupId: number
    readonly workFolder: string
  }): Effect.Effect<JitRunner, GitHubError>
  readonly registrationToken: Effect.Effect<Redacted.Redacted<string>, GitHubError>
  readonly removeToken: Effect.Effect<Redacted.Redacted<string>, GitHubError>
  findRunner(name: string): Effect.Effect<Option.Option<RegisteredRunner>, GitHubError>
  deleteRunner(runnerId: number): Effect.Effect<DeleteOutcome, GitHubError>
  /** GET /app with the App JWT (re-signed with GitHub's time on a clock-skew rejection); for `ghr doctor`. */
  readonly app: Effect.Effect<AppInfo, GitHubError>
  /** GET /app/installations/{id} of the configured installation, with the App JWT. */
  readonly installation: Effect.Effect<InstallationInfo, GitHubError>
  /** GET /rate_limit with the installation token (the call itself does not count). */
  readonly rateLimit: Effect.Effect<RateLimitInfo, GitHubError>
  /** GET /repos/{owner}/{repo} with the installation token: an AuthError 404 when the installation cannot see it. */
  repository(owner: string, repo: string): Effect.Effect<RepositoryInfo, GitHubError>
}>()("ghr/GitHubApp") {
  static readonly layer = Layer.effect(
    GitHubApp,
    Effect.gen(function*() {
      const settings = yield* Config
      const redaction = yield* Redaction
      if (settings.app === undefined) return GitHubApp.of(withoutCredentials)
      return yield* make(settings, settings.app, redaction)
    })
  )
}

/** In a runner task started with a JIT config there is, by design, no App key to call GitHub with. */
const noCredentials = new ConfigError({
  problems: [{
    setting: "GITHUB_APP_ID",
    problem: "no App credentials in this process (a JIT config was handed over); the controller owns GitHub calls"
  }]
})
const withoutCredentials = GitHubApp.of({
  installationToken: Effect.fail(noCredentials),
  runnerGroupId: Effect.fail(noCredentials),
  generateJitConfig: () => Effect.fail(noCredentials),
  registrationToken: Effect.fail(noCredentials),
  removeToken: Effect.fail(noCredentials),
  findRunner: () => Effect.fail(noCredentials),
  deleteRunner: () => Effect.fail(noCredentials),
  app: Effect.fail(noCredentials),
  installation: Effect.fail(noCredentials),
  rateLimit: Effect.fail(noCredentials),
  repository: () => Effect.fail(noCredentials)
})

/** GitHub's clock minus ours, from a response's Date header (second precision). */
export const clockSkewSeconds = (dateHeader: string | undefined, nowMs: number): number | undefined => {
  const github = dateHeader === undefined ? NaN : Date.parse(dateHeader)
  return Number.isNaN(github) ? undefined : Math.round((github - nowMs) / 1000)
}

/** Refresh this long before `expires_at` so a token never expires in the middle of a call. */
const tokenRefreshMarginMs = 5 * 60 * 1000
const requestTimeoutMs = 30_000

interface CachedToken {
  readonly token: Redacted.Redacted<string>
  readonly expiresAtMs: number
}

/** A failed call, before we decide whether it is the user's to fix or worth another try. */
class HttpCallFailure {
  readonly _tag = "HttpCallFailure"
  constructor(readonly failure: HttpFailure) {}
}

const lowerCaseHeaders = (headers: Headers | Record<string, unknown> | undefined): Record<string, string> => {
  const out: Record<string, string> = {}
  if (headers === undefined) return out
  if (headers instanceof Headers) {
    headers.forEach((value, key) => (out[key.toLowerCase()] = value))
    return out
  }
  for (const [key, value] of Object.entries(headers)) if (value !== undefined) out[key.toLowerCase()] = String(value)
  return out
}

/** @octokit/request errors carry status, headers and GitHub's JSON message; fetch errors carry a cause. */
const failureFromOctokit = (error: unknown): HttpFailure => {
  const e = error as { status?: number; response?: { headers?: Record<string, unknown>; data?: { message?: string } }; message?: string; cause?: { code?: string; message?: string } }
  // @octokit/request reports a network failure as status 500 without a response: that is "no response".
  const status = e.response !== undefined && typeof e.status === "number" ? e.status : undefined
  return {
    status,
    headers: lowerCaseHeaders(e.response?.headers),
    message: e.response?.data?.message ?? e.cause?.message ?? e.cause?.code ?? e.message ?? String(error)
  }
}

// --- App JWT calls: the App's identity and installations (ghr doctor, ghr app secret) -------------

const Account = Schema.Struct({
  login: Schema.optional(Schema.String),
  slug: Schema.optional(Schema.String),
  type: Schema.optional(Schema.String)
})
const Permissions = Schema.Record(Schema.String, Schema.String)
const AppBody = Schema.Struct({
  id: Schema.Number,
  slug: Schema.optional(Schema.String),
  name: Schema.optional(Schema.String),
  client_id: Schema.optional(Schema.String),
  owner: Schema.optional(Schema.NullOr(Account)),
  html_url: Schema.optional(Schema.String),
  permissions: Schema.optional(Permissions)
})
const InstallationBody = Schema.Struct({
  id: Schema.Number,
  app_id: Schema.optional(Schema.Number),
  account: Schema.optional(Schema.NullOr(Account)),
  permissions: Schema.optional(Permissions),
  repository_selection: Schema.optional(Schema.String),
  suspended_at: Schema.optional(Schema.NullOr(Schema.String)),
  html_url: Schema.optional(Schema.String)
})
const RateBucket = Schema.Struct({ limit: Schema.Number, remaining: Schema.Number, used: Schema.Number, reset: Schema.Number })
const RateLimitBody = Schema.Struct({ resources: Schema.Struct({ core: RateBucket }) })
const RepositoryBody = Schema.Struct({ full_name: Schema.String, archived: Schema.optional(Schema.Boolean) })

const decodeApp = Schema.decodeUnknownOption(AppBody)
const decodeInstallation = Schema.decodeUnknownOption(InstallationBody)
const decodeInstallations = Schema.decodeUnknownOption(Schema.Array(InstallationBody))
const decodeRateLimit = Schema.decodeUnknownOption(RateLimitBody)
const decodeRepository = Schema.decodeUnknownOption(RepositoryBody)

const accountOf = (account: typeof Account.Type | null | undefined) => ({
  login: account?.login ?? account?.slug ?? "",
  type: account?.type ?? (account?.slug !== undefined ? "Enterprise" : "")
})

const toInstallationInfo = (body: typeof InstallationBody.Type): InstallationInfo => ({
  id: body.id,
  appId: body.app_id,
  account: accountOf(body.account),
  permissions: body.permissions ?? {},
  repositorySelection: body.repository_selection,
  suspendedAt: body.suspended_at ?? undefined,
  htmlUrl: body.html_url
})

const unexpectedBody = (operation: string) =>
  new GitHubApiError({
    operation,
    detail: "GitHub answered with a body that is not what the REST API documents",
    fix: "check that GITHUB_API_URL points at the GitHub REST API (https://api.github.com, <ghes>/api/v3 or https://api.<x>.ghe.com)"
  })

/** Calls made with the App's JWT (not an installation token). */
export interface AppJwtClient {
  /** GET /app. */
  readonly app: Effect.Effect<AppInfo, AuthError | GitHubApiError>
  /** GET /app/installations/{id}; an AuthError 404 when this App has no such installation. */
  installation(installationId: number): Effect.Effect<InstallationInfo, AuthError | GitHubApiError>
  /**
   * The App's installation on an account: GET /repos/{owner}/{repo}/installation with a repository,
   * else GET /orgs/{owner}/installation and then GET /users/{owner}/installation. None when not installed.
   */
  findInstallation(target: { readonly owner: string; readonly repo?: string | undefined }): Effect.Effect<Option.Option<InstallationInfo>, AuthError | GitHubApiError>
  /** GET /app/installations (up to 1,000). */
  readonly installations: Effect.Effect<ReadonlyArray<InstallationInfo>, AuthError | GitHubApiError>
}

type OctokitRequest = typeof octokitRequest
type AppAuth = ReturnType<typeof createAppAuth>

const jwtClient = (auth: AppAuth, request: OctokitRequest, options: { readonly apiUrl: string; readonly appLabel: string; readonly maxRetries: number }): AppJwtClient => {
  const { apiUrl, appLabel, maxRetries } = options
  const schedule = Schedule.exponential(Duration.millis(500)).pipe(
    Schedule.setInputType<HttpCallFailure>(),
    Schedule.modifyDelay(({ input, duration }) =>
      Effect.map(Clock.currentTimeMillis, (now) => Duration.millis(retryDelayMs(input.failure, Duration.toMillis(duration), now)))
    ),
    Schedule.upTo({ times: maxRetries })
  )

  /** Through auth.hook, like the token minting: a JWT rejected for clock skew is signed again with GitHub's Date. */
  const get = (route: string, parameters: Record<string, unknown> = {}) =>
    Effect.retry(
      Effect.tryPromise({
        try: () => auth.hook(request, route, parameters),
        catch: (error) => new HttpCallFailure(failureFromOctokit(error))
      }),
      { schedule, while: (error: HttpCallFailure) => isRetryable(error.failure) }
    ).pipe(
      Effect.flatMap((response) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const headers = lowerCaseHeaders(response.headers as Record<string, unknown>)
          return { data: response.data as unknown, headers, skewSeconds: clockSkewSeconds(headers["date"], now) }
        })
      )
    )

  const failed = (operation: string, failure: HttpFailure, notFound?: AuthError) => {
    if (failure.status === 401) {
      return new AuthError({
        status: 401,
        detail: `${operation}: GitHub rejected the ${appLabel} JWT (${failure.message})`,
        fix: /integration not found/i.test(failure.message)
          ? "no GitHub App has this ID: check GITHUB_APP_ID / GITHUB_APP_CLIENT_ID against the App's settings page (App ID and Client ID are shown under General)"
          : "the private key does not belong to this App, or it was deleted: generate a new private key on the App's settings page (General → Private keys) and check GITHUB_APP_ID / GITHUB_APP_CLIENT_ID; also check this machine's clock"
      })
    }
    if (failure.status === 404 && notFound !== undefined) return notFound
    if (failure.status === 403 && !isRetryable(failure)) {
      return new AuthError({ status: 403, detail: `${operation}: ${failure.message}`, fix: "check that the App is not suspended and is allowed on this account" })
    }
    return new GitHubApiError({
      operation,
      status: failure.status,
      detail: failure.status === undefined
        ? `could not reach ${apiUrl} (${failure.message}) after ${maxRetries + 1} attempts`
        : `${failure.message} (after ${maxRetries + 1} attempts)`,
      fix: failure.status === undefined
        ? "check GITHUB_URL / GITHUB_API_URL and that this machine can reach GitHub"
        : "GitHub is failing or rate limiting this App; wait and retry"
    })
  }

  const decoded = <A, B>(operation: string, decode: (u: unknown) => Option.Option<A>, f: (a: A) => B) => (data: unknown) =>
    Option.match(decode(data), { onNone: () => Effect.fail(unexpectedBody(operation)), onSome: (a) => Effect.succeed(f(a)) })

  const app = Effect.gen(function*() {
    const operation = "reading the App (GET /app)"
    const response = yield* get("GET /app").pipe(Effect.mapError(({ failure }) => failed(operation, failure)))
    return yield* decoded(operation, decodeApp, (body): AppInfo => ({
      id: body.id,
      slug: body.slug,
      name: body.name,
      clientId: body.client_id,
      owner: body.owner === null || body.owner === undefined ? undefined : accountOf(body.owner),
      htmlUrl: body.html_url,
      permissions: body.permissions ?? {},
      skewSeconds: response.skewSeconds
    }))(response.data)
  })

  const installation = (installationId: number) => {
    const operation = `reading installation ${installationId} (GET /app/installations/${installationId})`
    return get("GET /app/installations/{installation_id}", { installation_id: installationId }).pipe(
      Effect.mapError(({ failure }) =>
        failed(operation, failure, new AuthError({
          status: 404,
          detail: `${appLabel} has no installation ${installationId}`,
          fix: "check GITHUB_APP_INSTALLATION_ID (the number at the end of the installation's settings URL, …/settings/installations/<id>), or install the App on the account; `ghr app secret` finds the id for an owner"
        }))
      ),
      Effect.flatMap((response) => decoded(operation, decodeInstallation, toInstallationInfo)(response.data))
    )
  }

  const lookup = (route: string, parameters: Record<string, unknown>, operation: string) =>
    get(route, parameters).pipe(
      Effect.flatMap((response) => decoded(operation, decodeInstallation, (body) => Option.some(toInstallationInfo(body)))(response.data)),
      Effect.catch((error) =>
        error instanceof HttpCallFailure
          ? error.failure.status === 404 ? Effect.succeed(Option.none<InstallationInfo>()) : Effect.fail(failed(operation, error.failure))
          : Effect.fail(error)
      )
    )

  const findInstallation = (target: { readonly owner: string; readonly repo?: string | undefined }) => {
    if (target.repo !== undefined) {
      return lookup("GET /repos/{owner}/{repo}/installation", { owner: target.owner, repo: target.repo }, `finding the installation on ${target.owner}/${target.repo}`)
    }
    return lookup("GET /orgs/{org}/installation", { org: target.owner }, `finding the installation on organization ${target.owner}`).pipe(
      Effect.flatMap((found) =>
        Option.isSome(found)
          ? Effect.succeed(found)
          : lookup("GET /users/{username}/installation", { username: target.owner }, `finding the installation on user ${target.owner}`)
      )
    )
  }

  const installations = Effect.gen(function*() {
    const operation = "listing the App's installations (GET /app/installations)"
    const all: Array<InstallationInfo> = []
    for (let page = 1; page <= 10; page++) {
      const response = yield* get("GET /app/installations", { per_page: 100, page }).pipe(Effect.mapError(({ failure }) => failed(operation, failure)))
      const items = yield* decoded(operation, decodeInstallations, (list) => list.map(toInstallationInfo))(response.data)
      all.push(...items)
      if (items.length < 100) break
    }
    return all
  })

  return { app, installation, findInstallation, installations }
}

/** A client for the App-JWT calls alone: no installation is needed (used by `ghr app secret`). */
export const makeAppJwtClient = (options: {
  readonly apiUrl: string
  readonly appId: number | undefined
  readonly clientId: string | undefined
  readonly privateKey: Redacted.Redacted<string>
  readonly maxRetries: number
}): AppJwtClient => {
  const fetchImpl = (input: string | URL | Request, init?: RequestInit) =>
    fetch(input, { ...init, signal: AbortSignal.timeout(requestTimeoutMs) })
  const request = octokitRequest.defaults({ baseUrl: options.apiUrl, request: { fetch: fetchImpl } })
  const silent = () => undefined
  const auth = createAppAuth({
    appId: options.appId ?? options.clientId ?? "",
    privateKey: Redacted.value(options.privateKey),
    request,
    log: { debug: silent, info: silent, warn: silent, error: silent }
  })
  const appLabel = options.appId !== undefined ? `App ${options.appId}` : `App ${options.clientId}`
  return jwtClient(auth, request, { apiUrl: options.apiUrl, appLabel, maxRetries: options.maxRetries })
}

const make = Effect.fnUntraced(function*(settings: Settings, app: AppCredentials, redaction: Redaction["Service"]) {
  const fetchImpl = (input: string | URL | Request, init?: RequestInit) =>
    fetch(input, { ...init, signal: AbortSignal.timeout(requestTimeoutMs) })
  const request = octokitRequest.defaults({ baseUrl: settings.apiUrl, request: { fetch: fetchImpl } })
  const silent = () => undefined
  const auth = createAppAuth({
    appId: app.appId ?? app.clientId ?? "",
    privateKey: Redacted.value(app.privateKey),
    installationId: app.installationId,
    request,
    // auth-app would print to the console; clock skew is reported in our own log below.
    log: { debug: silent, info: silent, warn: silent, error: silent }
  })
  yield* redaction.register(Redacted.value(app.privateKey))

  const appLabel = app.appId !== undefined ? `App ${app.appId}` : `App ${app.clientId}`
  const apiHost = new URL(settings.apiUrl).host
  const retrySchedule = Schedule.exponential(Duration.millis(500)).pipe(
    Schedule.setInputType<HttpCallFailure>(),
    Schedule.modifyDelay(({ input, duration }) =>
      Effect.map(Clock.currentTimeMillis, (now) => Duration.millis(retryDelayMs(input.failure, Duration.toMillis(duration), now)))
    ),
    Schedule.upTo({ times: settings.apiMaxRetries }),
    // Effect.retry consults the schedule before its `while`, so only announce retries that happen.
    Schedule.tap(({ input, duration }) =>
      isRetryable(input.failure)
        ? Log.warnEvent("github.retry", `GitHub API call failed (${input.failure.status ?? "no response"}: ${input.failure.message}); retrying`, {
          status: input.failure.status,
          delayMs: Duration.toMillis(duration)
        })
        : Effect.void
    )
  )
  const withRetries = <A>(effect: Effect.Effect<A, HttpCallFailure>) =>
    Effect.retry(effect, { schedule: retrySchedule, while: (error: HttpCallFailure) => isRetryable(error.failure) })

  const unreachable = (operation: string, failure: HttpFailure) =>
    new GitHubApiError({
      operation,
      status: failure.status,
      detail: failure.status === undefined
        ? `could not reach ${settings.apiUrl} (${failure.message}) after ${settings.apiMaxRetries + 1} attempts`
        : `${failure.message} (after ${settings.apiMaxRetries + 1} attempts)`,
      fix: failure.status === undefined
        ? "check GITHUB_URL / GITHUB_API_URL and that the task can reach the internet (public IP or NAT gateway)"
        : "GitHub is failing or rate limiting this App; wait and retry, and see docs/troubleshooting.md"
    })

  // --- Installation token ------------------------------------------------------------------
  const cache = yield* Ref.make(Option.none<CachedToken>())
  const mintLock = yield* Semaphore.make(1)

  const mint = Effect.gen(function*() {
    // Through auth.hook rather than auth({type: "installation"}): the hook signs the App JWT and,
    // when GitHub rejects it for clock skew, signs again shifted by GitHub's Date header.
    const response = yield* withRetries(
      Effect.tryPromise({
        try: () =>
          auth.hook(request, "POST /app/installations/{installation_id}/access_tokens", { installation_id: app.installationId }),
        catch: (error) => new HttpCallFailure(failureFromOctokit(error))
      })
    ).pipe(Effect.mapError(({ failure }) => mintError(failure)))
    const { token: value, expires_at: expiresAt } = response.data as { token: string; expires_at: string }
    yield* redaction.register(value)
    const cached: CachedToken = { token: Redacted.make(value, { label: "installation token" }), expiresAtMs: Date.parse(expiresAt) }
    yield* Ref.set(cache, Option.some(cached))
    yield* Log.event("github.token", "installation token minted", { installationId: app.installationId, expiresAt })
    const skewSeconds = clockSkewSeconds(response.headers.date, yield* Clock.currentTimeMillis)
    if (skewSeconds !== undefined && Math.abs(skewSeconds) > 30) {
      yield* Log.warnEvent("clock.skew", `this machine's clock differs from GitHub's by ${skewSeconds}s; App JWTs are rejected beyond a few minutes — sync the clock (NTP)`, { skewSeconds })
    }
    return cached
  })

  const mintError = (failure: HttpFailure) => {
    const operation = `minting an installation token for installation ${app.installationId}`
    switch (failure.status) {
      case 401:
        return new AuthError({
          status: 401,
          detail: `GitHub rejected the ${appLabel} JWT (${failure.message})`,
          fix: "check that GITHUB_APP_ID / GITHUB_APP_CLIENT_ID belong to the App whose private key is configured, that the key was not revoked, and that this machine's clock is correct"
        })
      case 403:
        return new AuthError({
          status: 403,
          detail: `GitHub refused an installation token for installation ${app.installationId} (${failure.message})`,
          fix: "check that the installation is not suspended and that the App is allowed on this account"
        })
      case 404:
        return new AuthError({
          status: 404,
          detail: `installation ${app.installationId} was not found for ${appLabel}`,
          fix: `check GITHUB_APP_INSTALLATION_ID (the number at the end of https://github.com/settings/installations/<id> or the org's installations page) and that the App is installed on ${describeScope(settings.scope)}`
        })
      default:
        return unreachable(operation, failure)
    }
  }

  const installationToken = mintLock.withPermits(1)(
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const cached = yield* Ref.get(cache)
      if (Option.isSome(cached) && cached.value.expiresAtMs - now > tokenRefreshMarginMs) return cached.value.token
      return (yield* mint).token
    })
  )

  // --- REST --------------------------------------------------------------------------------
  const scopePath = settings.scope.kind === "repo"
    ? `/repos/${settings.scope.owner}/${settings.scope.repo}`
    : `/orgs/${settings.scope.org}`
  const neededPermission = settings.scope.kind === "repo"
    ? "Repository permissions → Administration: Read and write"
    : "Organization permissions → Self-hosted runners: Read and write"

  const send = (method: string, path: string, token: Redacted.Redacted<string>, body: unknown) =>
    Effect.tryPromise({
      try: async () => {
        const response = await fetchImpl(`${settings.apiUrl}${path}`, {
          method,
          headers: {
            accept: "application/vnd.github+json",
            authorization: `Bearer ${Redacted.value(token)}`,
            "x-github-api-version": "2022-11-28",
            "user-agent": "ghr",
            ...(body === undefined ? {} : { "content-type": "application/json" })
          },
          body: body === undefined ? undefined : JSON.stringify(body)
        })
        const text = await response.text()
        let json: unknown = undefined
        try {
          json = text === "" ? undefined : JSON.parse(text)
        } catch {
          json = undefined
        }
        return { status: response.status, headers: lowerCaseHeaders(response.headers), json }
      },
      catch: (error) => new HttpCallFailure(failureFromOctokit(error))
    }).pipe(
      Effect.flatMap((response) => {
        if (response.status < 400) return Effect.succeed(response)
        const message = (response.json as { message?: string } | undefined)?.message ?? `HTTP ${response.status}`
        return Effect.fail(new HttpCallFailure({ status: response.status, headers: response.headers, message }))
      })
    )

  /**
   * One REST call with the installation token: retried on 5xx/429/secondary limits, minted again
   * once on 401 (a token can be revoked before it expires), and 4xx mapped to what to fix.
   */
  const call = (operation: string, method: string, path: string, body?: unknown, accept: ReadonlyArray<number> = []) => {
    const attempt = Effect.gen(function*() {
      const token = yield* installationToken
      return yield* withRetries(send(method, path, token, body)).pipe(
        Effect.catch((error) =>
          accept.includes(error.failure.status ?? -1)
            ? Effect.succeed({ status: error.failure.status ?? 0, headers: error.failure.headers, json: undefined as unknown })
            : Effect.fail(error)
        )
      )
    })
    return attempt.pipe(
      Effect.catch((error) => {
        if (!(error instanceof HttpCallFailure) || error.failure.status !== 401) return Effect.fail(error)
        return Log.warnEvent("github.token.rejected", "installation token rejected (401); minting a new one").pipe(
          Effect.andThen(Ref.set(cache, Option.none())),
          Effect.andThen(attempt)
        )
      }),
      Effect.catch((error) =>
        error instanceof HttpCallFailure ? Effect.fail(restError(operation, error.failure)) : Effect.fail(error)
      )
    )
  }

  const restError = (operation: string, failure: HttpFailure) => {
    switch (failure.status) {
      case 401:
        return new AuthError({
          status: 401,
          detail: `${operation}: GitHub rejected a freshly minted installation token (${failure.message})`,
          fix: "the installation may have been suspended or the App's key revoked; check the App's installation settings"
        })
      case 403:
        if (isRetryable(failure)) return unreachable(operation, failure)
        return new AuthError({
          status: 403,
          detail: `${operation}: ${failure.message}${failure.headers["x-accepted-github-permissions"] ? ` (GitHub needs ${failure.headers["x-accepted-github-permissions"]})` : ""}`,
          fix: `grant the App "${neededPermission}" in its settings (https://${apiHost === "api.github.com" ? "github.com" : apiHost}/settings/apps), then approve the new permissions on the installation`
        })
      case 404:
        return new AuthError({
          status: 404,
          detail: `${operation}: ${describeScope(settings.scope)} was not found or is not accessible to installation ${app.installationId}`,
          fix: settings.scope.kind === "repo"
            ? "check GITHUB_OWNER and GITHUB_REPOSITORY, and that the App installation includes this repository (installation settings → Repository access)"
            : "check GITHUB_OWNER, and that the App is installed on this organization"
        })
      default:
        if (failure.status !== undefined && failure.status < 500 && failure.status !== 429) {
          return new GitHubApiError({
            operation,
            status: failure.status,
            detail: failure.message,
            fix: "check the runner settings (labels, group, name prefix) against the message above"
          })
        }
        return unreachable(operation, failure)
    }
  }

  const groupCache = yield* Ref.make(Option.none<number>())
  const runnerGroupId = Effect.gen(function*() {
    if (settings.scope.kind === "repo" || settings.runner.group.toLowerCase() === "default") return 1
    const cached = yield* Ref.get(groupCache)
    if (Option.isSome(cached)) return cached.value
    const wanted = settings.runner.group
    const names: Array<string> = []
    for (let page = 1; page <= 10; page++) {
      const response = yield* call(
        `looking up runner group "${wanted}"`,
        "GET",
        `/orgs/${settings.scope.org}/actions/runner-groups?per_page=100&page=${page}`
      )
      const groups = (response.json as { runner_groups?: Array<{ id: number; name: string }> }).runner_groups ?? []
      const found = groups.find((g) => g.name.toLowerCase() === wanted.toLowerCase())
      if (found !== undefined) {
        yield* Ref.set(groupCache, Option.some(found.id))
        return found.id
      }
      names.push(...groups.map((g) => g.name))
      if (groups.length < 100) break
    }
    return yield* new ConfigError({
      problems: [{
        setting: "RUNNER_GROUP",
        problem: `no runner group named "${wanted}" in organization ${settings.scope.org} (existing: ${names.join(", ") || "none"}); create it under Settings → Actions → Runner groups or fix the name`
      }]
    })
  })

  const generateJitConfig = Effect.fn("GitHubApp.generateJitConfig")(function*(input: {
    readonly name: string
    readonly labels: ReadonlyArray<string>
    readonly runnerGroupId: number
    readonly workFolder: string
  }) {
    const response = yield* call(`generating a JIT runner config for ${describeScope(settings.scope)}`, "POST", `${scopePath}/actions/runners/generate-jitconfig`, {
      name: input.name,
      runner_group_id: input.runnerGroupId,
      labels: input.labels,
      work_folder: input.workFolder
    })
    const json = response.json as { runner: { id: number; name: string }; encoded_jit_config: string }
    yield* redaction.register(json.encoded_jit_config)
    return {
      runnerId: json.runner.id,
      name: json.runner.name,
      encodedJitConfig: Redacted.make(json.encoded_jit_config, { label: "JIT config" })
    } satisfies JitRunner
  })

  const runnerToken = (kind: "registration-token" | "remove-token") =>
    call(`creating a runner ${kind.replace("-", " ")}`, "POST", `${scopePath}/actions/runners/${kind}`).pipe(
      Effect.flatMap((response) => {
        const token = (response.json as { token: string }).token
        return Effect.as(redaction.register(token), Redacted.make(token, { label: kind }))
      })
    )

  const findRunner = Effect.fn("GitHubApp.findRunner")(function*(name: string) {
    const response = yield* call("looking up the runner", "GET", `${scopePath}/actions/runners?name=${encodeURIComponent(name)}&per_page=100`)
    const runners = (response.json as { runners?: Array<RegisteredRunner> }).runners ?? []
    return Option.fromNullishOr(runners.find((r) => r.name === name))
  })

  const deleteRunner = Effect.fn("GitHubApp.deleteRunner")(function*(runnerId: number) {
    const response = yield* call(`deleting runner ${runnerId}`, "DELETE", `${scopePath}/actions/runners/${runnerId}`, undefined, [404, 422])
    const outcome: DeleteOutcome = response.status === 404 ? "already-gone" : response.status === 422 ? "busy" : "deleted"
    return outcome
  })

  // --- Diagnosis (ghr doctor) -------------------------------------------------------------
  const jwt = jwtClient(auth, request, { apiUrl: settings.apiUrl, appLabel, maxRetries: settings.apiMaxRetries })

  const rateLimit = call("reading the installation's rate limit", "GET", "/rate_limit").pipe(
    Effect.flatMap((response) =>
      Option.match(decodeRateLimit(response.json), {
        onNone: () => Effect.fail(unexpectedBody("reading the installation's rate limit")),
        onSome: (body): Effect.Effect<RateLimitInfo> => Effect.succeed(body.resources.core)
      })
    )
  )

  const repository = (owner: string, repo: string) =>
    call(`reading repository ${owner}/${repo}`, "GET", `/repos/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}`).pipe(
      Effect.flatMap((response) =>
        Option.match(decodeRepository(response.json), {
          onNone: () => Effect.fail(unexpectedBody(`reading repository ${owner}/${repo}`)),
          onSome: (body): Effect.Effect<RepositoryInfo> => Effect.succeed({ fullName: body.full_name, archived: body.archived ?? false })
        })
      )
    )

  return GitHubApp.of({
    installationToken,
    runnerGroupId,
    generateJitConfig,
    registrationToken: runnerToken("registration-token"),
    removeToken: runnerToken("remove-token"),
    findRunner,
    deleteRunner,
    app: jwt.app,
    installation: jwt.installation(app.installationId),
    rateLimit,
    repository
  })
})
