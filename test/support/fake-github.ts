/**
 * A fake GitHub REST API for the test suite and the local demo: the endpoints ghr uses, with the
 * status codes, error bodies and headers GitHub really returns (https://docs.github.com/rest).
 * `test/fake-github.test.ts` validates every response against GitHub's published OpenAPI
 * description (@octokit/openapi), so this file cannot silently drift from the real API.
 *
 * Served at the root of `url`, like a GHES API base; `/_fake/*` are test-only routes used by the
 * stand-in actions runner (test/fixtures/runner/*.sh) in place of the Actions service protocol.
 *
 * No timers: expiries are computed from the (skewed) clock when a credential is used, so
 * `stop()` leaves nothing running.
 */
import { createPublicKey, createVerify, randomBytes, type KeyObject } from "node:crypto"

export interface FakeApp {
  id: number
  clientId: string
  slug: string
  publicKeyPem: string
}

export interface FakeInstallation {
  id: number
  appId: number
  account: { login: string; type: "Organization" | "User" }
  /** e.g. `{ administration: "write", metadata: "read" }` or `{ organization_self_hosted_runners: "write", metadata: "read" }` */
  permissions: Record<string, "read" | "write">
  /** Repository names the installation can access. */
  repositories: "all" | string[]
}

export interface FakeOptions {
  apps: FakeApp[]
  installations: FakeInstallation[]
  /** Runner groups per organization; default `[{ id: 1, name: "Default" }]`. */
  runnerGroups?: Record<string, Array<{ id: number; name: string }>>
  /** Added to the server's clock: the `Date` header and every JWT / token expiry check use it. */
  clockSkewSeconds?: number
  /** Installation token lifetime, default 3600. */
  tokenTtlSeconds?: number
}

export interface RecordedCall {
  method: string
  path: string
  /** OpenAPI path template, e.g. "/repos/{owner}/{repo}/actions/runners/generate-jitconfig", or "/_fake/register"; "(unmatched)" for an unknown path. */
  route: string
  status: number
  /** Parsed JSON body (raw text when it is not JSON), undefined when empty. Values of `token` keys are redacted. */
  requestBody: unknown
  /** Values of `token` keys are redacted. */
  responseBody: unknown
  query: Record<string, string>
}

export interface FakeRunner {
  id: number
  name: string
  os: string
  status: "online" | "offline"
  busy: boolean
  labels: string[]
  /** "repo:owner/name" | "org:login" */
  scope: string
  runnerGroupId: number
  ephemeral: boolean
}

export interface FakeGitHub {
  /** http://127.0.0.1:<port> — the REST API at the root (like GHES's API base) and the /_fake/* routes. */
  url: string
  /** Every request, in order. Headers are never recorded; `token` values are redacted. */
  calls: RecordedCall[]
  runners(): FakeRunner[]
  /** Installation tokens minted since start (or the last reset()). */
  tokensIssued(): number
  /** Every credential value the fake has handed out (installation, registration and remove tokens), for redaction tests. */
  issuedSecrets(): string[]
  /** Serve `response` instead of the real handler for the next `times` (default 1) requests to `route` ("METHOD /openapi/path/{template}"). */
  failNext(route: string, response: { status: number; headers?: Record<string, string>; body?: unknown }, times?: number): void
  /** Every installation token issued so far becomes invalid (next use → 401 Bad credentials). */
  revokeTokens(): void
  /** Clears calls, runners, faults, rate-limit counters, repositories seen and the tokensIssued() count; keeps apps, installations and live tokens. */
  reset(): void
  stop(): Promise<void>
}

/** Every route the fake serves, as "METHOD /template" (the keys failNext accepts). */
export const fakeGitHubRoutes: ReadonlyArray<string> = [
  "GET /app",
  "GET /app/installations",
  "GET /app/installations/{installation_id}",
  "POST /app/installations/{installation_id}/access_tokens",
  "GET /repos/{owner}/{repo}/installation",
  "GET /orgs/{org}/installation",
  "GET /users/{username}/installation",
  "DELETE /installation/token",
  "GET /installation/repositories",
  "GET /rate_limit",
  "GET /repos/{owner}/{repo}",
  "POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig",
  "POST /orgs/{org}/actions/runners/generate-jitconfig",
  "POST /repos/{owner}/{repo}/actions/runners/registration-token",
  "POST /orgs/{org}/actions/runners/registration-token",
  "POST /repos/{owner}/{repo}/actions/runners/remove-token",
  "POST /orgs/{org}/actions/runners/remove-token",
  "GET /repos/{owner}/{repo}/actions/runners",
  "GET /orgs/{org}/actions/runners",
  "GET /repos/{owner}/{repo}/actions/runners/{runner_id}",
  "GET /orgs/{org}/actions/runners/{runner_id}",
  "DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}",
  "DELETE /orgs/{org}/actions/runners/{runner_id}",
  "GET /orgs/{org}/actions/runner-groups",
  "POST /_fake/register",
  "POST /_fake/unregister",
  "POST /_fake/runners/{runner_id}/status",
  "POST /_fake/runners/{runner_id}/complete"
]

// ---------------------------------------------------------------------------------------------
// GitHub's own error messages (as seen in real responses; @octokit/auth-app matches the three
// time-claim messages to retry with the server's Date header).

const MSG = {
  notFound: "Not Found",
  badCredentials: "Bad credentials",
  requiresAuth: "Requires authentication",
  jwtDecode: "A JSON web token could not be decoded",
  integrationNotFound: "Integration not found",
  iat: "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
  expPast: "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
  expTooFar: "'Expiration time' claim ('exp') is too far in the future",
  notAccessible: "Resource not accessible by integration",
  problemsParsingJson: "Problems parsing JSON"
} as const

const DOCS = "https://docs.github.com/rest"
const REDACTED = "[REDACTED]"
/** GitHub caps a JWT's lifetime at 10 minutes. */
const MAX_JWT_LIFETIME_SECONDS = 600
const REGISTRATION_TOKEN_TTL_SECONDS = 3600

// ---------------------------------------------------------------------------------------------

interface Reply {
  status: number
  body?: unknown
  headers?: Record<string, string>
}

interface TokenState {
  installationId: number
  expiresAtMs: number
  revoked: boolean
  permissions: Record<string, "read" | "write">
  repositories: "all" | string[]
}

interface RegistrationTokenState {
  kind: "registration" | "remove"
  scope: string
  expiresAtMs: number
}

interface AppState {
  app: FakeApp
  key: KeyObject
}

type Principal =
  | { kind: "app"; app: FakeApp }
  | { kind: "installation"; token: string; state: TokenState; installation: FakeInstallation }
  | { kind: "anonymous" }

type AuthMode = "jwt" | "installation" | "optional" | "none"

interface Ctx {
  params: Record<string, string>
  query: Record<string, string>
  body: unknown
  principal: Principal
  path: string
}

interface RouteDef {
  method: string
  template: string
  auth: AuthMode
  regex: RegExp
  handle: (ctx: Ctx) => Reply
}

const error = (status: number, message: string, extra: Record<string, unknown> = {}, headers?: Record<string, string>): Reply => ({
  status,
  body: { message, documentation_url: DOCS, status: String(status), ...extra },
  ...(headers === undefined ? {} : { headers })
})

const defaultMessage = (status: number): string =>
  ({
    400: "Bad Request",
    401: MSG.badCredentials,
    403: "Forbidden",
    404: MSG.notFound,
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Server Error",
    503: "Service Unavailable",
    504: "We couldn't respond to your request in time. Sorry about that. Please try resubmitting your request and contact us if the problem persists."
  })[status] ?? "Error"

const redact = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(redact)
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = k === "token" && typeof v === "string" ? REDACTED : redact(v)
    return out
  }
  return value
}

const compileTemplate = (template: string): RegExp => {
  const pattern = template
    .split("/")
    .map((segment) => {
      const param = /^\{(\w+)\}$/.exec(segment)
      if (param === null) return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
      const name = param[1]!
      return name.endsWith("_id") ? `(?<${name}>[0-9]+)` : `(?<${name}>[^/]+)`
    })
    .join("/")
  return new RegExp(`^${pattern}$`)
}

const randomAlnum = (length: number, alphabet: string): string => {
  const bytes = randomBytes(length)
  let out = ""
  for (let i = 0; i < length; i++) out += alphabet[bytes[i]! % alphabet.length]
  return out
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value)

const lower = (s: string): string => s.toLowerCase()

const isoSeconds = (ms: number): string => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z")

/** Read-only labels GitHub attaches itself; every other label is "custom". */
const readOnlyLabels = new Set(["self-hosted", "linux", "x64", "arm64", "arm", "windows", "macos"])

export const startFakeGitHub = async (options: FakeOptions): Promise<FakeGitHub> => {
  const skewMs = (options.clockSkewSeconds ?? 0) * 1000
  const tokenTtlMs = (options.tokenTtlSeconds ?? 3600) * 1000
  const nowMs = (): number => Date.now() + skewMs
  const nowSeconds = (): number => Math.floor(nowMs() / 1000)

  const apps: AppState[] = options.apps.map((app) => ({ app, key: createPublicKey(app.publicKeyPem) }))
  const installations = options.installations
  const groupsFor = (org: string): Array<{ id: number; name: string }> => {
    const entry = Object.entries(options.runnerGroups ?? {}).find(([k]) => lower(k) === lower(org))
    return entry?.[1] ?? [{ id: 1, name: "Default" }]
  }

  const calls: RecordedCall[] = []
  const runners = new Map<number, FakeRunner>()
  const tokens = new Map<string, TokenState>()
  const registrationTokens = new Map<string, RegistrationTokenState>()
  const faults = new Map<string, Array<{ response: Reply; remaining: number }>>()
  const rateBuckets = new Map<string, { limit: number; used: number; resetAt: number }>()
  let nextRunnerId = 1
  let issued = 0
  const labelIds = new Map<string, number>()
  const accountIds = new Map<string, number>()
  const repoIds = new Map<string, number>()
  const seenRepos = new Map<string, Set<string>>()

  let url = ""

  // --- JSON shapes -------------------------------------------------------------------------

  const accountId = (login: string): number => {
    const key = lower(login)
    let id = accountIds.get(key)
    if (id === undefined) {
      id = 1000 + accountIds.size
      accountIds.set(key, id)
    }
    return id
  }

  const nodeId = (prefix: string, id: number): string => `${prefix}_kgDO${Buffer.from(String(id)).toString("base64url")}`

  const userJson = (login: string, type: "Organization" | "User" | "Bot") => {
    const id = accountId(login)
    const api = `${url}/users/${login}`
    return {
      login,
      id,
      node_id: nodeId(type === "Organization" ? "O" : "U", id),
      avatar_url: `${url}/avatars/u/${id}?v=4`,
      gravatar_id: "",
      url: api,
      html_url: `${url}/${login}`,
      followers_url: `${api}/followers`,
      following_url: `${api}/following{/other_user}`,
      gists_url: `${api}/gists{/gist_id}`,
      starred_url: `${api}/starred{/owner}{/repo}`,
      subscriptions_url: `${api}/subscriptions`,
      organizations_url: `${api}/orgs`,
      repos_url: `${api}/repos`,
      events_url: `${api}/events{/privacy}`,
      received_events_url: `${api}/received_events`,
      type,
      user_view_type: "public",
      site_admin: false
    }
  }

  const repoId = (owner: string, repo: string): number => {
    const key = `${lower(owner)}/${lower(repo)}`
    let id = repoIds.get(key)
    if (id === undefined) {
      id = 100000 + repoIds.size
      repoIds.set(key, id)
    }
    return id
  }

  const repositoryJson = (installation: FakeInstallation, repo: string) => {
    const owner = installation.account.login
    const id = repoId(owner, repo)
    const full = `${owner}/${repo}`
    const api = `${url}/repos/${full}`
    const created = "2024-01-01T00:00:00Z"
    return {
      id,
      node_id: nodeId("R", id),
      name: repo,
      full_name: full,
      private: true,
      owner: userJson(owner, installation.account.type),
      html_url: `${url}/${full}`,
      description: null,
      fork: false,
      url: api,
      archive_url: `${api}/{archive_format}{/ref}`,
      assignees_url: `${api}/assignees{/user}`,
      blobs_url: `${api}/git/blobs{/sha}`,
      branches_url: `${api}/branches{/branch}`,
      collaborators_url: `${api}/collaborators{/collaborator}`,
      comments_url: `${api}/comments{/number}`,
      commits_url: `${api}/commits{/sha}`,
      compare_url: `${api}/compare/{base}...{head}`,
      contents_url: `${api}/contents/{+path}`,
      contributors_url: `${api}/contributors`,
      deployments_url: `${api}/deployments`,
      downloads_url: `${api}/downloads`,
      events_url: `${api}/events`,
      forks_url: `${api}/forks`,
      git_commits_url: `${api}/git/commits{/sha}`,
      git_refs_url: `${api}/git/refs{/sha}`,
      git_tags_url: `${api}/git/tags{/sha}`,
      git_url: `git://127.0.0.1/${full}.git`,
      issue_comment_url: `${api}/issues/comments{/number}`,
      issue_events_url: `${api}/issues/events{/number}`,
      issues_url: `${api}/issues{/number}`,
      keys_url: `${api}/keys{/key_id}`,
      labels_url: `${api}/labels{/name}`,
      languages_url: `${api}/languages`,
      merges_url: `${api}/merges`,
      milestones_url: `${api}/milestones{/number}`,
      notifications_url: `${api}/notifications{?since,all,participating}`,
      pulls_url: `${api}/pulls{/number}`,
      releases_url: `${api}/releases{/id}`,
      ssh_url: `git@127.0.0.1:${full}.git`,
      stargazers_url: `${api}/stargazers`,
      statuses_url: `${api}/statuses/{sha}`,
      subscribers_url: `${api}/subscribers`,
      subscription_url: `${api}/subscription`,
      tags_url: `${api}/tags`,
      teams_url: `${api}/teams`,
      trees_url: `${api}/git/trees{/sha}`,
      clone_url: `${url}/${full}.git`,
      mirror_url: null,
      hooks_url: `${api}/hooks`,
      svn_url: `${url}/${full}`,
      homepage: null,
      language: null,
      forks_count: 0,
      forks: 0,
      stargazers_count: 0,
      watchers_count: 0,
      watchers: 0,
      size: 0,
      default_branch: "main",
      open_issues_count: 0,
      open_issues: 0,
      is_template: false,
      topics: [],
      has_issues: true,
      has_projects: false,
      has_wiki: false,
      has_pages: false,
      has_downloads: true,
      has_discussions: false,
      archived: false,
      disabled: false,
      visibility: "private",
      pushed_at: created,
      created_at: created,
      updated_at: created,
      license: null,
      allow_forking: false,
      web_commit_signoff_required: false
    }
  }

  const fullRepositoryJson = (installation: FakeInstallation, repo: string) => ({
    ...repositoryJson(installation, repo),
    network_count: 0,
    subscribers_count: 0,
    permissions: { admin: false, maintain: false, push: false, triage: false, pull: true }
  })

  const appOf = (appId: number): FakeApp | undefined => apps.find((a) => a.app.id === appId)?.app

  const installationJson = (installation: FakeInstallation) => {
    const app = appOf(installation.appId)
    return {
      id: installation.id,
      client_id: app?.clientId ?? "",
      account: userJson(installation.account.login, installation.account.type),
      repository_selection: installation.repositories === "all" ? ("all" as const) : ("selected" as const),
      access_tokens_url: `${url}/app/installations/${installation.id}/access_tokens`,
      repositories_url: `${url}/installation/repositories`,
      html_url: `${url}/${installation.account.type === "Organization" ? `organizations/${installation.account.login}/` : ""}settings/installations/${installation.id}`,
      app_id: installation.appId,
      app_slug: app?.slug ?? "",
      target_id: accountId(installation.account.login),
      target_type: installation.account.type,
      permissions: installation.permissions,
      events: [] as string[],
      created_at: "2024-01-01T00:00:00Z",
      updated_at: "2024-01-01T00:00:00Z",
      single_file_name: null,
      has_multiple_single_files: false,
      single_file_paths: [] as string[],
      suspended_by: null,
      suspended_at: null
    }
  }

  const appJson = (app: FakeApp) => {
    const mine = installations.filter((i) => i.appId === app.id)
    const permissions: Record<string, string> = { metadata: "read" }
    for (const inst of mine) {
      for (const [k, v] of Object.entries(inst.permissions)) if (permissions[k] !== "write") permissions[k] = v
    }
    return {
      id: app.id,
      slug: app.slug,
      node_id: nodeId("A", app.id),
      client_id: app.clientId,
      owner: userJson(mine[0]?.account.login ?? "app-owner", mine[0]?.account.type ?? "User"),
      name: app.slug,
      description: null,
      external_url: `${url}/apps/${app.slug}`,
      html_url: `${url}/apps/${app.slug}`,
      created_at: "2024-01-01T00:00:00Z",
      updated_at: "2024-01-01T00:00:00Z",
      permissions,
      events: [] as string[],
      installations_count: mine.length
    }
  }

  const labelJson = (name: string) => {
    const key = lower(name)
    let id = labelIds.get(key)
    if (id === undefined) {
      id = labelIds.size + 1
      labelIds.set(key, id)
    }
    return { id, name, type: readOnlyLabels.has(key) ? ("read-only" as const) : ("custom" as const) }
  }

  const runnerJson = (r: FakeRunner) => ({
    id: r.id,
    name: r.name,
    os: r.os,
    status: r.status,
    busy: r.busy,
    ephemeral: r.ephemeral,
    runner_group_id: r.runnerGroupId,
    labels: r.labels.map(labelJson)
  })

  // --- Rate limit headers --------------------------------------------------------------------

  const bucketKey = (authorization: string | null): { key: string; limit: number } => {
    const credential = /^(?:bearer|token)\s+(\S+)$/i.exec(authorization ?? "")?.[1]
    if (credential === undefined) return { key: "anonymous", limit: 60 }
    const token = tokens.get(credential)
    if (token !== undefined) return { key: `installation:${token.installationId}`, limit: 5000 }
    return { key: "app", limit: 5000 }
  }

  const rateHeaders = (authorization: string | null, count: boolean): Record<string, string> => {
    const { key, limit } = bucketKey(authorization)
    let bucket = rateBuckets.get(key)
    if (bucket === undefined || bucket.resetAt <= nowSeconds()) {
      bucket = { limit, used: 0, resetAt: nowSeconds() + 3600 }
      rateBuckets.set(key, bucket)
    }
    if (count) bucket.used = Math.min(bucket.limit, bucket.used + 1)
    return {
      "x-ratelimit-limit": String(bucket.limit),
      "x-ratelimit-remaining": String(bucket.limit - bucket.used),
      "x-ratelimit-reset": String(bucket.resetAt),
      "x-ratelimit-used": String(bucket.used),
      "x-ratelimit-resource": "core"
    }
  }

  const rateLimitBody = (authorization: string | null) => {
    const headers = rateHeaders(authorization, false)
    const core = {
      limit: Number(headers["x-ratelimit-limit"]),
      remaining: Number(headers["x-ratelimit-remaining"]),
      reset: Number(headers["x-ratelimit-reset"]),
      used: Number(headers["x-ratelimit-used"])
    }
    const reset = nowSeconds() + 3600
    const other = (limit: number, seconds = 3600) => ({ limit, remaining: limit, reset: nowSeconds() + seconds, used: 0 })
    return {
      resources: {
        core,
        search: other(30, 60),
        graphql: { ...other(5000), reset },
        integration_manifest: other(5000),
        actions_runner_registration: other(10000),
        code_search: other(10, 60)
      },
      rate: core
    }
  }

  // --- Authentication ----------------------------------------------------------------------

  const verifyJwt = (jwt: string): Principal | Reply => {
    const parts = jwt.split(".")
    if (parts.length !== 3) return error(401, MSG.jwtDecode)
    let header: unknown
    let payload: unknown
    try {
      header = JSON.parse(Buffer.from(parts[0]!, "base64url").toString("utf8"))
      payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"))
    } catch {
      return error(401, MSG.jwtDecode)
    }
    if (!isObject(header) || header["alg"] !== "RS256" || !isObject(payload)) return error(401, MSG.jwtDecode)
    const iss = payload["iss"]
    const found =
      typeof iss === "number" || (typeof iss === "string" && /^[0-9]+$/.test(iss))
        ? apps.find((a) => a.app.id === Number(iss))
        : typeof iss === "string"
          ? apps.find((a) => a.app.clientId === iss)
          : undefined
    if (found === undefined) return error(401, MSG.integrationNotFound)
    const verifier = createVerify("RSA-SHA256")
    verifier.update(`${parts[0]}.${parts[1]}`)
    let valid = false
    try {
      valid = verifier.verify(found.key, Buffer.from(parts[2]!, "base64url"))
    } catch {
      valid = false
    }
    if (!valid) return error(401, MSG.jwtDecode)
    const now = nowSeconds()
    const iat = payload["iat"]
    const exp = payload["exp"]
    if (typeof iat !== "number" || !Number.isInteger(iat) || iat > now) return error(401, MSG.iat)
    if (typeof exp !== "number" || exp <= now) return error(401, MSG.expPast)
    if (exp - iat > MAX_JWT_LIFETIME_SECONDS) return error(401, MSG.expTooFar)
    return { kind: "app", app: found.app }
  }

  const authenticate = (authorization: string | null, mode: AuthMode): Principal | Reply => {
    if (mode === "none") return { kind: "anonymous" }
    const match = /^(bearer|token)\s+(\S+)\s*$/i.exec(authorization ?? "")
    if (match === null) {
      if (mode === "optional") return { kind: "anonymous" }
      return authorization === null || authorization === "" ? error(401, MSG.requiresAuth) : error(401, MSG.badCredentials)
    }
    const credential = match[2]!
    const looksLikeJwt = credential.split(".").length === 3
    if (mode === "jwt") {
      // An installation token (or anything else) where a JWT is required cannot be decoded as one.
      return looksLikeJwt ? verifyJwt(credential) : error(401, MSG.jwtDecode)
    }
    if (looksLikeJwt) {
      const principal = verifyJwt(credential)
      if ("status" in principal) return principal
      return mode === "optional" ? principal : error(403, MSG.notAccessible)
    }
    const state = tokens.get(credential)
    if (state === undefined || state.revoked || state.expiresAtMs <= nowMs()) return error(401, MSG.badCredentials)
    const installation = installations.find((i) => i.id === state.installationId)
    if (installation === undefined) return error(401, MSG.badCredentials)
    return { kind: "installation", token: credential, state, installation }
  }

  // --- Access checks (installation tokens) -------------------------------------------------

  type Access<T> = { ok: T } | { reply: Reply }

  const canonicalRepo = (installation: FakeInstallation, repos: "all" | string[], repo: string): string | undefined => {
    if (repos === "all") {
      const listed = installation.repositories === "all" ? undefined : installation.repositories.find((r) => lower(r) === lower(repo))
      return listed ?? repo
    }
    return repos.find((r) => lower(r) === lower(repo))
  }

  const repoAccess = (ctx: Ctx): Access<{ installation: FakeInstallation; repo: string; scope: string }> => {
    const p = ctx.principal
    if (p.kind !== "installation") return { reply: error(404, MSG.notFound) }
    const owner = ctx.params["owner"]!
    if (lower(p.installation.account.login) !== lower(owner)) return { reply: error(404, MSG.notFound) }
    const repo = canonicalRepo(p.installation, p.state.repositories, ctx.params["repo"]!)
    if (repo === undefined) return { reply: error(404, MSG.notFound) }
    const seen = seenRepos.get(lower(owner)) ?? new Set<string>()
    seen.add(repo)
    seenRepos.set(lower(owner), seen)
    return { ok: { installation: p.installation, repo, scope: `repo:${p.installation.account.login}/${repo}` } }
  }

  const orgAccess = (ctx: Ctx): Access<{ installation: FakeInstallation; org: string; scope: string }> => {
    const p = ctx.principal
    if (p.kind !== "installation") return { reply: error(404, MSG.notFound) }
    const org = ctx.params["org"]!
    if (p.installation.account.type !== "Organization" || lower(p.installation.account.login) !== lower(org)) {
      return { reply: error(404, MSG.notFound) }
    }
    return { ok: { installation: p.installation, org: p.installation.account.login, scope: `org:${p.installation.account.login}` } }
  }

  const permitted = (ctx: Ctx, permission: string, level: "read" | "write"): Reply | undefined => {
    const p = ctx.principal
    const has = p.kind === "installation" ? p.state.permissions[permission] : undefined
    const ok = level === "read" ? has === "read" || has === "write" : has === "write"
    return ok ? undefined : error(403, MSG.notAccessible, {}, { "x-accepted-github-permissions": `${permission}=${level}` })
  }

  /** Scope + permission for runner routes: repo routes need Administration, org routes Self-hosted runners. */
  const runnerScope = (ctx: Ctx, level: "read" | "write"): Access<{ scope: string; org: string | undefined }> => {
    if (ctx.params["repo"] !== undefined) {
      const access = repoAccess(ctx)
      if ("reply" in access) return access
      const denied = permitted(ctx, "administration", level)
      return denied === undefined ? { ok: { scope: access.ok.scope, org: undefined } } : { reply: denied }
    }
    const access = orgAccess(ctx)
    if ("reply" in access) return access
    const denied = permitted(ctx, "organization_self_hosted_runners", level)
    return denied === undefined ? { ok: { scope: access.ok.scope, org: access.ok.org } } : { reply: denied }
  }

  const paginate = <T>(ctx: Ctx, items: T[]): { page: T[]; link: Record<string, string> } => {
    const perPage = Math.min(100, Math.max(1, Number.parseInt(ctx.query["per_page"] ?? "30", 10) || 30))
    const pageNo = Math.max(1, Number.parseInt(ctx.query["page"] ?? "1", 10) || 1)
    const last = Math.max(1, Math.ceil(items.length / perPage))
    const links: string[] = []
    const pageUrl = (n: number) => {
      const q = new URLSearchParams({ ...ctx.query, per_page: String(perPage), page: String(n) })
      return `<${url}${ctx.path}?${q.toString()}>`
    }
    if (pageNo > 1) links.push(`${pageUrl(pageNo - 1)}; rel="prev"`, `${pageUrl(1)}; rel="first"`)
    if (pageNo < last) links.push(`${pageUrl(pageNo + 1)}; rel="next"`, `${pageUrl(last)}; rel="last"`)
    return {
      page: items.slice((pageNo - 1) * perPage, pageNo * perPage),
      link: links.length === 0 ? {} : { link: links.join(", ") }
    }
  }

  const runnersIn = (scope: string): FakeRunner[] =>
    [...runners.values()].filter((r) => r.scope === scope).sort((a, b) => a.id - b.id)

  const newRegistrationToken = (kind: "registration" | "remove", scope: string): Reply => {
    const token = randomAlnum(29, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    const expiresAtMs = nowMs() + REGISTRATION_TOKEN_TTL_SECONDS * 1000
    registrationTokens.set(token, { kind, scope, expiresAtMs })
    return { status: 201, body: { token, expires_at: new Date(expiresAtMs).toISOString() } }
  }

  const validationError = (message: string): Reply => error(422, message)

  /** GitHub validates request bodies against a JSON schema and words failures like this. */
  const validateJitBody = (body: unknown): Reply | { name: string; groupId: number; labels: string[] } => {
    if (!isObject(body)) return validationError(`Invalid request.\n\nFor 'links/0/schema', ${JSON.stringify(body ?? null)} is not an object.`)
    const missing = ["name", "runner_group_id", "labels"].filter((k) => body[k] === undefined)
    if (missing.length > 0) {
      const list = missing.map((k) => `"${k}"`).join(", ")
      return validationError(`Invalid request.\n\n${list} ${missing.length === 1 ? "wasn't" : "weren't"} supplied.`)
    }
    const { name, runner_group_id: groupId, labels, work_folder: workFolder } = body
    if (typeof name !== "string") return validationError(`Invalid request.\n\nFor 'properties/name', ${JSON.stringify(name)} is not a string.`)
    if (typeof groupId !== "number" || !Number.isInteger(groupId)) {
      return validationError(`Invalid request.\n\nFor 'properties/runner_group_id', ${JSON.stringify(groupId)} is not an integer.`)
    }
    if (!Array.isArray(labels) || labels.some((l) => typeof l !== "string")) {
      return validationError(`Invalid request.\n\nFor 'properties/labels', ${JSON.stringify(labels)} is not an array of strings.`)
    }
    if (labels.length < 1 || labels.length > 100) {
      return validationError(`Invalid request.\n\nFor 'properties/labels', ${JSON.stringify(labels)} must contain between 1 and 100 items.`)
    }
    if (workFolder !== undefined && typeof workFolder !== "string") {
      return validationError(`Invalid request.\n\nFor 'properties/work_folder', ${JSON.stringify(workFolder)} is not a string.`)
    }
    if (name.trim() === "") return validationError("Invalid request.\n\nThe runner name must not be empty.")
    return { name, groupId, labels: labels as string[] }
  }

  // --- Handlers ----------------------------------------------------------------------------

  const app = (ctx: Ctx): FakeApp => (ctx.principal as { kind: "app"; app: FakeApp }).app

  const handlers: Record<string, { auth: AuthMode; handle: (ctx: Ctx) => Reply }> = {
    "GET /app": { auth: "jwt", handle: (ctx) => ({ status: 200, body: appJson(app(ctx)) }) },

    "GET /app/installations": {
      auth: "jwt",
      handle: (ctx) => {
        const mine = installations.filter((i) => i.appId === app(ctx).id).map(installationJson)
        const { page, link } = paginate(ctx, mine)
        return { status: 200, body: page, headers: link }
      }
    },

    "GET /app/installations/{installation_id}": {
      auth: "jwt",
      handle: (ctx) => {
        const inst = installations.find((i) => i.id === Number(ctx.params["installation_id"]) && i.appId === app(ctx).id)
        return inst === undefined ? error(404, MSG.notFound) : { status: 200, body: installationJson(inst) }
      }
    },

    "POST /app/installations/{installation_id}/access_tokens": {
      auth: "jwt",
      handle: (ctx) => {
        const inst = installations.find((i) => i.id === Number(ctx.params["installation_id"]) && i.appId === app(ctx).id)
        if (inst === undefined) return error(404, MSG.notFound)
        const body = ctx.body === undefined ? {} : ctx.body
        if (!isObject(body)) return validationError(`Invalid request.\n\nFor 'links/0/schema', ${JSON.stringify(body)} is not an object.`)
        let permissions: Record<string, "read" | "write"> = { ...inst.permissions }
        if (body["permissions"] !== undefined) {
          const requested = body["permissions"]
          if (!isObject(requested)) return validationError("Invalid request.\n\nFor 'properties/permissions', the value is not an object.")
          for (const [k, v] of Object.entries(requested)) {
            const has = inst.permissions[k]
            const ok = (v === "read" && (has === "read" || has === "write")) || (v === "write" && has === "write")
            if (!ok) return validationError("The permissions requested are not granted to this installation.")
          }
          permissions = requested as Record<string, "read" | "write">
        }
        let repositories: "all" | string[] = inst.repositories
        const names: string[] = []
        const notAccessible = "There is at least one repository that does not exist or is not accessible to the parent installation."
        if (body["repositories"] !== undefined) {
          const requested = body["repositories"]
          if (!Array.isArray(requested) || requested.some((r) => typeof r !== "string")) {
            return validationError("Invalid request.\n\nFor 'properties/repositories', the value is not an array of strings.")
          }
          for (const r of requested as string[]) {
            const canonical = canonicalRepo(inst, inst.repositories, r)
            if (canonical === undefined) return validationError(notAccessible)
            names.push(canonical)
          }
        }
        if (body["repository_ids"] !== undefined) {
          const requested = body["repository_ids"]
          if (!Array.isArray(requested) || requested.some((r) => typeof r !== "number")) {
            return validationError("Invalid request.\n\nFor 'properties/repository_ids', the value is not an array of integers.")
          }
          for (const id of requested as number[]) {
            const entry = [...repoIds.entries()].find(([, v]) => v === id)
            const [owner, name] = entry?.[0].split("/") ?? []
            if (owner !== lower(inst.account.login) || name === undefined) return validationError(notAccessible)
            const canonical = canonicalRepo(inst, inst.repositories, name)
            if (canonical === undefined) return validationError(notAccessible)
            names.push(canonical)
          }
        }
        if (body["repositories"] !== undefined || body["repository_ids"] !== undefined) repositories = [...new Set(names)]
        const token = `ghs_${randomAlnum(36, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")}`
        const expiresAtMs = nowMs() + tokenTtlMs
        tokens.set(token, { installationId: inst.id, expiresAtMs, revoked: false, permissions, repositories })
        issued++
        return {
          status: 201,
          body: {
            token,
            expires_at: isoSeconds(expiresAtMs),
            permissions,
            repository_selection: repositories === "all" ? "all" : "selected",
            ...(repositories !== "all" && repositories !== inst.repositories
              ? { repositories: repositories.map((r) => repositoryJson(inst, r)) }
              : {})
          }
        }
      }
    },

    "GET /repos/{owner}/{repo}/installation": {
      auth: "jwt",
      handle: (ctx) => {
        const owner = lower(ctx.params["owner"]!)
        const inst = installations.find(
          (i) =>
            i.appId === app(ctx).id &&
            lower(i.account.login) === owner &&
            canonicalRepo(i, i.repositories, ctx.params["repo"]!) !== undefined
        )
        return inst === undefined ? error(404, MSG.notFound) : { status: 200, body: installationJson(inst) }
      }
    },

    "GET /orgs/{org}/installation": {
      auth: "jwt",
      handle: (ctx) => {
        const inst = installations.find(
          (i) => i.appId === app(ctx).id && i.account.type === "Organization" && lower(i.account.login) === lower(ctx.params["org"]!)
        )
        return inst === undefined ? error(404, MSG.notFound) : { status: 200, body: installationJson(inst) }
      }
    },

    "GET /users/{username}/installation": {
      auth: "jwt",
      handle: (ctx) => {
        const inst = installations.find((i) => i.appId === app(ctx).id && lower(i.account.login) === lower(ctx.params["username"]!))
        return inst === undefined ? error(404, MSG.notFound) : { status: 200, body: installationJson(inst) }
      }
    },

    "DELETE /installation/token": {
      auth: "installation",
      handle: (ctx) => {
        if (ctx.principal.kind === "installation") ctx.principal.state.revoked = true
        return { status: 204 }
      }
    },

    "GET /installation/repositories": {
      auth: "installation",
      handle: (ctx) => {
        const p = ctx.principal
        if (p.kind !== "installation") return error(403, MSG.notAccessible)
        const names =
          p.state.repositories === "all"
            ? [...(seenRepos.get(lower(p.installation.account.login)) ?? [])]
            : p.state.repositories
        const repos = [...names].sort().map((r) => repositoryJson(p.installation, r))
        const { page, link } = paginate(ctx, repos)
        return {
          status: 200,
          body: { total_count: repos.length, repositories: page, repository_selection: p.state.repositories === "all" ? "all" : "selected" },
          headers: link
        }
      }
    },

    "GET /rate_limit": { auth: "optional", handle: () => ({ status: 200, body: undefined }) /* filled in by the dispatcher */ },

    "GET /repos/{owner}/{repo}": {
      auth: "installation",
      handle: (ctx) => {
        const access = repoAccess(ctx)
        if ("reply" in access) return access.reply
        const denied = permitted(ctx, "metadata", "read")
        if (denied !== undefined) return denied
        return { status: 200, body: fullRepositoryJson(access.ok.installation, access.ok.repo) }
      }
    },

    "POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig": { auth: "installation", handle: (ctx) => generateJit(ctx) },
    "POST /orgs/{org}/actions/runners/generate-jitconfig": { auth: "installation", handle: (ctx) => generateJit(ctx) },

    "POST /repos/{owner}/{repo}/actions/runners/registration-token": { auth: "installation", handle: (ctx) => registrationToken(ctx, "registration") },
    "POST /orgs/{org}/actions/runners/registration-token": { auth: "installation", handle: (ctx) => registrationToken(ctx, "registration") },
    "POST /repos/{owner}/{repo}/actions/runners/remove-token": { auth: "installation", handle: (ctx) => registrationToken(ctx, "remove") },
    "POST /orgs/{org}/actions/runners/remove-token": { auth: "installation", handle: (ctx) => registrationToken(ctx, "remove") },

    "GET /repos/{owner}/{repo}/actions/runners": { auth: "installation", handle: (ctx) => listRunners(ctx) },
    "GET /orgs/{org}/actions/runners": { auth: "installation", handle: (ctx) => listRunners(ctx) },
    "GET /repos/{owner}/{repo}/actions/runners/{runner_id}": { auth: "installation", handle: (ctx) => getRunner(ctx) },
    "GET /orgs/{org}/actions/runners/{runner_id}": { auth: "installation", handle: (ctx) => getRunner(ctx) },
    "DELETE /repos/{owner}/{repo}/actions/runners/{runner_id}": { auth: "installation", handle: (ctx) => deleteRunner(ctx) },
    "DELETE /orgs/{org}/actions/runners/{runner_id}": { auth: "installation", handle: (ctx) => deleteRunner(ctx) },

    "GET /orgs/{org}/actions/runner-groups": {
      auth: "installation",
      handle: (ctx) => {
        const access = runnerScope(ctx, "read")
        if ("reply" in access) return access.reply
        const org = access.ok.org!
        const groups = groupsFor(org).map((g) => ({
          id: g.id,
          name: g.name,
          visibility: "all",
          default: g.id === 1,
          runners_url: `${url}/orgs/${org}/actions/runner-groups/${g.id}/runners`,
          hosted_runners_url: `${url}/orgs/${org}/actions/runner-groups/${g.id}/hosted-runners`,
          inherited: false,
          allows_public_repositories: false,
          restricted_to_workflows: false,
          selected_workflows: [] as string[],
          workflow_restrictions_read_only: false
        }))
        const { page, link } = paginate(ctx, groups)
        return { status: 200, body: { total_count: groups.length, runner_groups: page }, headers: link }
      }
    },

    // --- Test-only routes for the stand-in runner ------------------------------------------

    "POST /_fake/register": { auth: "none", handle: (ctx) => fakeRegister(ctx) },
    "POST /_fake/unregister": { auth: "none", handle: (ctx) => fakeUnregister(ctx) },
    "POST /_fake/runners/{runner_id}/status": {
      auth: "none",
      handle: (ctx) => {
        const runner = runners.get(Number(ctx.params["runner_id"]))
        if (runner === undefined) return error(404, MSG.notFound)
        const body = isObject(ctx.body) ? ctx.body : {}
        if (body["status"] === "online" || body["status"] === "offline") runner.status = body["status"]
        if (typeof body["busy"] === "boolean") runner.busy = body["busy"]
        return { status: 200, body: { ...runner } }
      }
    },
    "POST /_fake/runners/{runner_id}/complete": {
      auth: "none",
      handle: (ctx) => {
        const runner = runners.get(Number(ctx.params["runner_id"]))
        if (runner === undefined) return error(404, MSG.notFound)
        runner.busy = false
        // GitHub removes an ephemeral runner once it has finished its one job.
        if (runner.ephemeral) runners.delete(runner.id)
        return { status: 200, body: { id: runner.id, deleted: runner.ephemeral } }
      }
    }
  }

  function generateJit(ctx: Ctx): Reply {
    const access = runnerScope(ctx, "write")
    if ("reply" in access) return access.reply
    const valid = validateJitBody(ctx.body)
    if ("status" in valid) return valid
    const groups = access.ok.org === undefined ? [{ id: 1, name: "Default" }] : groupsFor(access.ok.org)
    if (!groups.some((g) => g.id === valid.groupId)) {
      return validationError(`Invalid request.\n\nRunner group ${valid.groupId} does not exist.`)
    }
    if (runnersIn(access.ok.scope).some((r) => lower(r.name) === lower(valid.name))) {
      return error(409, `Already exists - A runner with the name ${valid.name} already exists.`)
    }
    const runner: FakeRunner = {
      id: nextRunnerId++,
      name: valid.name,
      os: "linux",
      status: "offline",
      busy: false,
      labels: [...valid.labels],
      scope: access.ok.scope,
      runnerGroupId: valid.groupId,
      ephemeral: true
    }
    runners.set(runner.id, runner)
    // Real JIT configs are base64 of a JSON map of the runner's .runner/.credentials files. Only
    // our stand-in runner (test/fixtures/runner/run.sh) reads this config, so it is one JSON line.
    const encoded = Buffer.from(JSON.stringify({ runner_id: runner.id, name: runner.name, server: url })).toString("base64")
    return { status: 201, body: { runner: runnerJson(runner), encoded_jit_config: encoded } }
  }

  function registrationToken(ctx: Ctx, kind: "registration" | "remove"): Reply {
    const access = runnerScope(ctx, "write")
    if ("reply" in access) return access.reply
    return newRegistrationToken(kind, access.ok.scope)
  }

  function listRunners(ctx: Ctx): Reply {
    const access = runnerScope(ctx, "read")
    if ("reply" in access) return access.reply
    const name = ctx.query["name"]
    const all = runnersIn(access.ok.scope).filter((r) => name === undefined || r.name === name)
    const { page, link } = paginate(ctx, all)
    return { status: 200, body: { total_count: all.length, runners: page.map(runnerJson) }, headers: link }
  }

  function getRunner(ctx: Ctx): Reply {
    const access = runnerScope(ctx, "read")
    if ("reply" in access) return access.reply
    const runner = runners.get(Number(ctx.params["runner_id"]))
    if (runner === undefined || runner.scope !== access.ok.scope) return error(404, MSG.notFound)
    return { status: 200, body: runnerJson(runner) }
  }

  function deleteRunner(ctx: Ctx): Reply {
    const access = runnerScope(ctx, "write")
    if ("reply" in access) return access.reply
    const runner = runners.get(Number(ctx.params["runner_id"]))
    if (runner === undefined || runner.scope !== access.ok.scope) return error(404, MSG.notFound)
    if (runner.busy) return validationError(`Bad request - Runner "${runner.name}" is still running a job`)
    runners.delete(runner.id)
    return { status: 204 }
  }

  /** Mirrors `config.sh`: a registration token for the URL's repo/org creates a runner. */
  function fakeRegister(ctx: Ctx): Reply {
    const body = isObject(ctx.body) ? ctx.body : {}
    const token = typeof body["token"] === "string" ? body["token"] : ""
    const target = typeof body["url"] === "string" ? body["url"] : ""
    let segments: string[] = []
    try {
      segments = new URL(target).pathname.split("/").filter((s) => s !== "")
    } catch {
      return error(400, `Invalid url: ${target}`)
    }
    const state = registrationTokens.get(token)
    // An unknown or expired registration token surfaces as a bare 404, as with the real config.sh.
    if (state === undefined || state.kind !== "registration" || state.expiresAtMs <= nowMs()) return error(404, MSG.notFound)
    const [owner, repo] = state.scope.startsWith("repo:") ? state.scope.slice(5).split("/") : [state.scope.slice(4), undefined]
    const matches =
      segments.length === (repo === undefined ? 1 : 2) &&
      lower(segments[0]!) === lower(owner!) &&
      (repo === undefined || lower(segments[1]!) === lower(repo))
    if (!matches) return error(404, MSG.notFound)
    const name = typeof body["name"] === "string" && body["name"] !== "" ? body["name"] : `runner-${nextRunnerId}`
    const labels = Array.isArray(body["labels"]) ? body["labels"].filter((l): l is string => typeof l === "string") : []
    let groupId = 1
    if (typeof body["runnerGroup"] === "string" && body["runnerGroup"] !== "" && repo === undefined) {
      const group = groupsFor(owner!).find((g) => lower(g.name) === lower(body["runnerGroup"] as string))
      if (group === undefined) return error(404, `Could not find any self-hosted runner group named "${body["runnerGroup"]}".`)
      groupId = group.id
    }
    const existing = runnersIn(state.scope).find((r) => lower(r.name) === lower(name))
    if (existing !== undefined) {
      if (body["replace"] !== true) return error(409, `A runner exists with the same name ${name}.`)
      runners.delete(existing.id)
    }
    const runner: FakeRunner = {
      id: nextRunnerId++,
      name,
      os: "linux",
      status: "offline",
      busy: false,
      labels: ["self-hosted", "Linux", "X64", ...labels.filter((l) => !["self-hosted", "linux", "x64"].includes(lower(l)))],
      scope: state.scope,
      runnerGroupId: groupId,
      ephemeral: body["ephemeral"] === true
    }
    runners.set(runner.id, runner)
    return { status: 200, body: { id: runner.id, name: runner.name } }
  }

  /** Mirrors `config.sh remove`: a remove token deletes the named runner in its scope (204), or 200 `{deleted: false}` when there is none. */
  function fakeUnregister(ctx: Ctx): Reply {
    const body = isObject(ctx.body) ? ctx.body : {}
    const state = registrationTokens.get(typeof body["token"] === "string" ? body["token"] : "")
    if (state === undefined || state.kind !== "remove" || state.expiresAtMs <= nowMs()) return error(404, MSG.notFound)
    const name = typeof body["name"] === "string" ? body["name"] : ""
    const runner = runnersIn(state.scope).find((r) => lower(r.name) === lower(name))
    // Already gone (e.g. deleted through the API): the real config.sh says so and carries on.
    if (runner === undefined) return { status: 200, body: { deleted: false } }
    if (runner.busy) return error(422, `Bad request - Runner "${runner.name}" is still running a job`)
    runners.delete(runner.id)
    return { status: 204 }
  }

  const routes: RouteDef[] = fakeGitHubRoutes.map((key) => {
    const [method, template] = key.split(" ") as [string, string]
    const h = handlers[key]
    if (h === undefined) throw new Error(`fake-github: no handler for ${key}`)
    return { method, template, auth: h.auth, regex: compileTemplate(template), handle: h.handle }
  })

  // --- Dispatcher --------------------------------------------------------------------------

  const respond = (reply: Reply, authorization: string | null, count: boolean): Response => {
    const headers = new Headers({
      date: new Date(nowMs()).toUTCString(),
      "content-type": "application/json; charset=utf-8",
      "x-github-media-type": "github.v3; format=json",
      "x-github-api-version-selected": "2022-11-28",
      "x-github-request-id": randomAlnum(16, "0123456789ABCDEF"),
      ...rateHeaders(authorization, count)
    })
    for (const [k, v] of Object.entries(reply.headers ?? {})) headers.set(k, v)
    const text = reply.status === 204 || reply.status === 304 || reply.body === undefined ? null : JSON.stringify(reply.body)
    return new Response(text, { status: reply.status, headers })
  }

  const handle = async (req: Request): Promise<Response> => {
    const requestUrl = new URL(req.url)
    const path = requestUrl.pathname.length > 1 ? requestUrl.pathname.replace(/\/+$/, "") : requestUrl.pathname
    const query: Record<string, string> = {}
    for (const [k, v] of requestUrl.searchParams) query[k] = v
    const method = req.method.toUpperCase()
    const authorization = req.headers.get("authorization")

    const text = await req.text()
    let body: unknown = undefined
    let unparseable = false
    if (text !== "") {
      try {
        body = JSON.parse(text)
      } catch {
        body = text
        unparseable = true
      }
    }

    let route: RouteDef | undefined
    let params: Record<string, string> = {}
    for (const r of routes) {
      if (r.method !== method) continue
      const m = r.regex.exec(path)
      if (m === null) continue
      route = r
      params = Object.fromEntries(Object.entries(m.groups ?? {}).map(([k, v]) => [k, decodeURIComponent(v)]))
      break
    }

    let reply: Reply
    const routeKey = route === undefined ? undefined : `${route.method} ${route.template}`
    const queue = routeKey === undefined ? undefined : faults.get(routeKey)
    const fault = queue?.[0]
    const counted = route !== undefined && route.template !== "/rate_limit" && route.auth !== "none"
    if (route === undefined) {
      reply = error(404, MSG.notFound)
    } else if (fault !== undefined) {
      fault.remaining--
      if (fault.remaining <= 0) queue!.shift()
      reply = fault.response
    } else if (unparseable && route.auth !== "none") {
      reply = error(400, MSG.problemsParsingJson)
    } else {
      const principal = authenticate(authorization, route.auth)
      if ("status" in principal) {
        reply = principal
      } else if (route.template === "/rate_limit") {
        reply = { status: 200, body: rateLimitBody(authorization) }
      } else {
        reply = route.handle({ params, query, body, principal, path })
      }
    }

    const response = respond(reply, authorization, counted)
    calls.push({
      method,
      path,
      route: route?.template ?? "(unmatched)",
      status: reply.status,
      requestBody: redact(body),
      responseBody: reply.status === 204 ? undefined : redact(reply.body === undefined ? undefined : JSON.parse(JSON.stringify(reply.body))),
      query
    })
    return response
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) =>
      handle(req).catch((cause: unknown) => {
        // A bug in the fake must fail loudly in the test that hit it, not hang it.
        const message = cause instanceof Error ? cause.stack ?? cause.message : String(cause)
        return new Response(JSON.stringify({ message: `fake-github internal error: ${message}` }), {
          status: 500,
          headers: { "content-type": "application/json; charset=utf-8" }
        })
      })
  })
  url = `http://127.0.0.1:${server.port}`

  const routeKeys = new Set(fakeGitHubRoutes)

  return {
    url,
    calls,
    runners: () => [...runners.values()].sort((a, b) => a.id - b.id).map((r) => ({ ...r, labels: [...r.labels] })),
    tokensIssued: () => issued,
    issuedSecrets: () => [...tokens.keys(), ...registrationTokens.keys()],
    failNext: (route, response, times = 1) => {
      if (!routeKeys.has(route)) {
        throw new Error(`fake-github: failNext: unknown route "${route}" (expected one of: ${fakeGitHubRoutes.join(", ")})`)
      }
      const reply: Reply = {
        status: response.status,
        body:
          response.body !== undefined || response.status === 204
            ? response.body
            : { message: defaultMessage(response.status), documentation_url: DOCS, status: String(response.status) },
        ...(response.headers === undefined ? {} : { headers: response.headers })
      }
      const queue = faults.get(route) ?? []
      queue.push({ response: reply, remaining: Math.max(1, times) })
      faults.set(route, queue)
    },
    revokeTokens: () => {
      for (const state of tokens.values()) state.revoked = true
    },
    reset: () => {
      calls.length = 0
      runners.clear()
      faults.clear()
      rateBuckets.clear()
      seenRepos.clear()
      issued = 0
    },
    stop: async () => {
      await server.stop(true)
    }
  }
}
