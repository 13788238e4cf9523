/**
 * GitHub App setup in one step: the least-privilege App manifest for a runner scope (`ghr app
 * manifest`), and the Secrets Manager JSON ghr reads (`ghr app secret`), with the private key
 * checked and the installation id found through the API.
 *
 * Pure decisions first (permissions, manifest, URLs, key inspection), then the `AppSetup` service.
 * Permissions: docs/…/choosing-permissions-for-a-github-app and ../shared/notes/github-api.md —
 * repository runners need Administration: write, organization runners Self-hosted runners: write,
 * both Metadata: read. No webhook: ghr's controller long-polls GitHub, nothing is delivered to it.
 */
import { createPrivateKey, createPublicKey, sign, verify } from "node:crypto"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { AuthError, ConfigError, type GitHubApiError, type SecretError } from "./Errors.ts"
import { type AppInfo, type InstallationInfo, makeAppJwtClient } from "./GitHubApp.ts"
import { Redaction } from "./Log.ts"
import { Secrets } from "./Secrets.ts"
import { apiUrlFor, normalizePem, pemProblem } from "./Settings.ts"

// =============================================================================================
// Permissions
// =============================================================================================

export type ScopeKind = "repo" | "org"
export type Access = "read" | "write"

export interface RequiredPermission {
  /** The REST/manifest name, e.g. `organization_self_hosted_runners`. */
  readonly key: string
  readonly access: Access
  /** Where it is in the App's settings page. */
  readonly label: string
}

/** The least the App needs for runners of this scope. */
export const requiredPermissions = (kind: ScopeKind): ReadonlyArray<RequiredPermission> =>
  kind === "repo"
    ? [
      { key: "administration", access: "write", label: "Repository permissions → Administration: Read and write" },
      { key: "metadata", access: "read", label: "Repository permissions → Metadata: Read-only" }
    ]
    : [
      { key: "organization_self_hosted_runners", access: "write", label: "Organization permissions → Self-hosted runners: Read and write" },
      { key: "metadata", access: "read", label: "Repository permissions → Metadata: Read-only" }
    ]

const grants = (has: string | undefined, needed: Access): boolean =>
  needed === "read" ? has === "read" || has === "write" || has === "admin" : has === "write" || has === "admin"

export interface PermissionCheck {
  readonly ok: boolean
  readonly missing: ReadonlyArray<RequiredPermission & { readonly granted: string | undefined }>
}

/** Which required permissions an installation (or App) lacks for the scope. Pure. */
export const checkPermissions = (kind: ScopeKind, granted: Readonly<Record<string, string>>): PermissionCheck => {
  const missing = requiredPermissions(kind)
    .filter((p) => !grants(granted[p.key], p.access))
    .map((p) => ({ ...p, granted: granted[p.key] }))
  return { ok: missing.length === 0, missing }
}

/** `key=access` list, sorted, for "what was seen". */
export const describeGranted = (granted: Readonly<Record<string, string>>): string => {
  const entries = Object.entries(granted).sort(([a], [b]) => a.localeCompare(b))
  return entries.length === 0 ? "no permissions" : entries.map(([k, v]) => `${k}=${v}`).join(", ")
}

// =============================================================================================
// Manifest and registration URLs
// =============================================================================================

/** GitHub rejects App names longer than this. */
export const maxAppNameLength = 34

export const defaultAppName = (owner: string, repo: string | undefined): string =>
  (repo === undefined ? `ghr-${owner}` : `ghr-${owner}-${repo}`).slice(0, maxAppNameLength).replace(/[-_.]+$/, "")

export const appNameProblem = (name: string): string | undefined => {
  if (name.trim() === "") return "must not be empty"
  if (name.length > maxAppNameLength) return `is ${name.length} characters; GitHub allows at most ${maxAppNameLength}`
  return undefined
}

export interface ManifestInput {
  readonly githubUrl: string
  readonly owner: string
  readonly repo?: string | undefined
  readonly name?: string | undefined
}

export interface AppManifest {
  readonly name: string
  readonly url: string
  readonly description: string
  readonly public: false
  readonly default_permissions: Readonly<Record<string, Access>>
  readonly default_events: ReadonlyArray<string>
  readonly hook_attributes: { readonly url: string; readonly active: false }
}

const trimSlash = (url: string) => url.replace(/\/+$/, "")

/**
 * The manifest (https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest):
 * private, least privilege for the scope, no events and an inactive webhook (the URL is required
 * by the manifest format; nothing is ever delivered to it).
 */
export const buildManifest = (input: ManifestInput): AppManifest => {
  const kind: ScopeKind = input.repo === undefined ? "org" : "repo"
  const homepage = `${trimSlash(input.githubUrl)}/${input.owner}${input.repo === undefined ? "" : `/${input.repo}`}`
  return {
    name: input.name ?? defaultAppName(input.owner, input.repo),
    url: homepage,
    description: kind === "repo"
      ? `Self-hosted GitHub Actions runners on Amazon ECS (ghr) for ${input.owner}/${input.repo}`
      : `Self-hosted GitHub Actions runners on Amazon ECS (ghr) for the ${input.owner} organization`,
    public: false,
    default_permissions: Object.fromEntries(requiredPermissions(kind).map((p) => [p.key, p.access])),
    default_events: [],
    hook_attributes: { url: homepage, active: false }
  }
}

/**
 * Where to register it. A private App can only be installed on the account that owns it, so it is
 * registered on the organization (or, with `personal`, on the signed-in user's account).
 */
export const registrationBaseUrl = (githubUrl: string, owner: string, personal: boolean): string =>
  personal ? `${trimSlash(githubUrl)}/settings/apps/new` : `${trimSlash(githubUrl)}/organizations/${owner}/settings/apps/new`

/**
 * A link that opens GitHub's registration form with the manifest's settings filled in
 * (https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-using-url-parameters).
 */
export const registrationUrl = (githubUrl: string, owner: string, personal: boolean, manifest: AppManifest): string => {
  const params = new URLSearchParams({
    name: manifest.name,
    description: manifest.description,
    url: manifest.url,
    public: "false",
    webhook_active: "false",
    ...manifest.default_permissions
  })
  return `${registrationBaseUrl(githubUrl, owner, personal)}?${params.toString()}`
}

/** The App's settings page, where permissions are changed and keys generated. */
export const appSettingsUrl = (
  githubUrl: string,
  app: Pick<AppInfo, "slug" | "owner"> | undefined,
  page: "" | "permissions" = ""
): string => {
  const base = trimSlash(githubUrl)
  if (app?.slug === undefined) return `${base}/settings/apps`
  const suffix = page === "" ? "" : `/${page}`
  return app.owner?.type === "Organization"
    ? `${base}/organizations/${app.owner.login}/settings/apps/${app.slug}${suffix}`
    : `${base}/settings/apps/${app.slug}${suffix}`
}

// =============================================================================================
// Private key
// =============================================================================================

export type KeyInspection =
  | { readonly ok: true; readonly bits: number | undefined; readonly format: "PKCS#1" | "PKCS#8" }
  | { readonly ok: false; readonly problem: string }

/** Parses, checks it is RSA, and signs and verifies a test message with it. Never puts the key in a message. */
export const inspectPrivateKey = (pemText: string): KeyInspection => {
  const pem = normalizePem(pemText)
  const problem = pemProblem(pem)
  if (problem !== undefined) return { ok: false, problem }
  try {
    const key = createPrivateKey(pem)
    const message = Buffer.from("ghr private key check")
    const signature = sign("sha256", message, key)
    if (!verify("sha256", message, createPublicKey(key), signature)) {
      return { ok: false, problem: "signs, but its own public key does not verify the signature: download a new private key" }
    }
    return {
      ok: true,
      bits: key.asymmetricKeyDetails?.modulusLength,
      format: /BEGIN RSA PRIVATE KEY/.test(pem) ? "PKCS#1" : "PKCS#8"
    }
  } catch {
    return { ok: false, problem: "could not sign with it (RS256): download a new private key from the App's settings page" }
  }
}

// =============================================================================================
// The App secret
// =============================================================================================

/** What `GHR_APP_SECRET` holds (docs/configuration.md). */
export const appSecretJson = (input: { readonly appId: number; readonly installationId: number; readonly privateKey: string }): string =>
  JSON.stringify({ app_id: input.appId, installation_id: input.installationId, private_key: normalizePem(input.privateKey) })

export interface AppIdentifier {
  readonly appId: number | undefined
  readonly clientId: string | undefined
}

/** `--app-id` accepts the numeric App ID or the client ID (both are on the App's settings page). */
export const parseAppIdentifier = (text: string): AppIdentifier | undefined => {
  const value = text.trim()
  if (/^[1-9][0-9]{0,15}$/.test(value)) return { appId: Number(value), clientId: undefined }
  if (/^[A-Za-z][A-Za-z0-9._-]{0,63}$/.test(value)) return { appId: undefined, clientId: value }
  return undefined
}

export interface SecretRequest {
  readonly app: AppIdentifier
  /** PEM text as read from the key file. */
  readonly privateKey: Redacted.Redacted<string>
  readonly owner: string | undefined
  readonly repo: string | undefined
  readonly apiUrl: string
  /** Store the JSON in this Secrets Manager secret instead of returning it for printing. */
  readonly put: string | undefined
}

export interface SecretOutcome {
  readonly app: AppInfo
  readonly installation: InstallationInfo
  /** The JSON to print; undefined when it was stored (`put`). */
  readonly json: Redacted.Redacted<string> | undefined
  readonly storedArn: string | undefined
  /** Permissions the installation lacks for the scope implied by owner/repo (warnings, not errors). */
  readonly missing: ReadonlyArray<RequiredPermission>
}

const problem = (setting: string, text: string) => new ConfigError({ problems: [{ setting, problem: text }] })

export class AppSetup extends Context.Service<AppSetup, {
  /** Validates the key against the App, finds the installation, and returns or stores the App secret JSON. */
  secret(request: SecretRequest): Effect.Effect<SecretOutcome, ConfigError | AuthError | GitHubApiError | SecretError>
}>()("ghr/AppSetup") {
  static readonly layer = Layer.effect(
    AppSetup,
    Effect.gen(function*() {
      const secrets = yield* Secrets
      const redaction = yield* Redaction

      const secret = Effect.fn("AppSetup.secret")(function*(request: SecretRequest) {
        const pem = normalizePem(Redacted.value(request.privateKey))
        yield* redaction.register(pem)
        const inspection = inspectPrivateKey(pem)
        if (!inspection.ok) return yield* problem("--key", inspection.problem)
        if (request.repo !== undefined && request.owner === undefined) {
          return yield* problem("--repo", "needs --owner (the repository's owner)")
        }

        const client = makeAppJwtClient({
          apiUrl: request.apiUrl,
          appId: request.app.appId,
          clientId: request.app.clientId,
          privateKey: Redacted.make(pem),
          maxRetries: 2
        })
        const app = yield* client.app
        const installation = yield* findInstallation(client, app, request)

        const kind: ScopeKind = request.repo !== undefined || installation.account.type === "User" ? "repo" : "org"
        const missing = checkPermissions(kind, installation.permissions).missing
        const json = appSecretJson({ appId: app.id, installationId: installation.id, privateKey: pem })
        if (request.put !== undefined) {
          const stored = yield* secrets.putString(request.put, json)
          return { app, installation, json: undefined, storedArn: stored.arn, missing }
        }
        return { app, installation, json: Redacted.make(json), storedArn: undefined, missing }
      })

      return AppSetup.of({ secret })
    })
  )
}

const findInstallation = Effect.fnUntraced(function*(
  client: ReturnType<typeof makeAppJwtClient>,
  app: AppInfo,
  request: SecretRequest
) {
  const installUrl = `${app.htmlUrl ?? "the App's public page"}/installations/new`
  if (request.owner !== undefined) {
    const found = yield* client.findInstallation({ owner: request.owner, repo: request.repo })
    if (Option.isSome(found)) return found.value
    const where = request.repo === undefined ? request.owner : `${request.owner}/${request.repo}`
    return yield* new AuthError({
      status: 404,
      detail: `App ${app.slug ?? app.id} is not installed on ${where}`,
      fix: `install it on ${request.owner}${request.repo === undefined ? "" : ` (with access to ${request.repo})`}: ${installUrl}`
    })
  }
  const all = yield* client.installations
  if (all.length === 1) return all[0]!
  if (all.length === 0) {
    return yield* new AuthError({
      status: 404,
      detail: `App ${app.slug ?? app.id} is not installed on any account`,
      fix: `install it on the organization or user that owns the runners: ${installUrl}`
    })
  }
  return yield* problem(
    "--owner",
    `the App is installed on ${all.length} accounts (${all.map((i) => i.account.login).join(", ")}); pass --owner to choose one`
  )
})

/** The API base for `--github-url`/`--api-url`, validated like the settings. */
export const apiBaseFor = (githubUrl: string, apiUrl: string | undefined): string | ConfigError => {
  const check = (setting: string, value: string) =>
    /^https?:\/\/[^\s/?#]+(?:\/[^\s?#]*)?$/.test(value) ? undefined : problem(setting, `expected an http(s) URL, got "${value}"`)
  const bad = check("--github-url", githubUrl) ?? (apiUrl === undefined ? undefined : check("--api-url", apiUrl))
  if (bad !== undefined) return bad
  return apiUrl === undefined ? apiUrlFor(githubUrl) : trimSlash(apiUrl)
}
