/**
 * Pure configuration decisions: which settings exist, what each accepts, how the environment,
 * the optional config secret and the optional App secret merge, and every problem found at once.
 * No I/O here — `Config.ts` gathers the inputs and calls `resolveSettings`.
 */
import { createPrivateKey } from "node:crypto"
import { Option, Redacted, Schema } from "effect"
import type { ConfigProblem } from "./Errors.ts"

export type Scope =
  | { readonly kind: "repo"; readonly owner: string; readonly repo: string }
  | { readonly kind: "org"; readonly org: string }

export interface AppCredentials {
  readonly appId: number | undefined
  readonly clientId: string | undefined
  readonly installationId: number
  readonly privateKey: Redacted.Redacted<string>
}

export type LogFormat = "json" | "text"
export type LogLevel = "debug" | "info" | "warn" | "error"

export interface Settings {
  readonly scope: Scope
  readonly githubUrl: string
  readonly apiUrl: string
  /** Absent when a controller handed over a JIT config: the runner task then holds no App key. */
  readonly app: AppCredentials | undefined
  readonly jitConfig: Redacted.Redacted<string> | undefined
  readonly runner: {
    readonly labels: ReadonlyArray<string>
    readonly group: string
    readonly namePrefix: string
    readonly workDir: string
    readonly dir: string
    readonly mode: "jit" | "registration"
    readonly ephemeral: boolean
    readonly disableUpdate: boolean
    readonly stopTimeoutSeconds: number
  }
  readonly docker: {
    readonly mode: "dind" | "none"
    readonly host: string
    readonly waitSeconds: number
  }
  readonly log: { readonly level: LogLevel; readonly format: LogFormat }
  readonly healthPort: number
  readonly apiMaxRetries: number
}

/** Settings the JSON config secret (`GHR_CONFIG_SECRET`) may carry, as snake_case of the variable. */
export const configSecretSettings = [
  "GITHUB_OWNER",
  "GITHUB_REPOSITORY",
  "GITHUB_URL",
  "GITHUB_API_URL",
  "RUNNER_LABELS",
  "RUNNER_GROUP",
  "RUNNER_NAME_PREFIX",
  "RUNNER_WORK_DIR",
  "RUNNER_DIR",
  "RUNNER_MODE",
  "RUNNER_EPHEMERAL",
  "RUNNER_DISABLE_UPDATE",
  "RUNNER_STOP_TIMEOUT_SECONDS",
  "DOCKER_MODE",
  "DOCKER_HOST",
  "DOCKER_WAIT_SECONDS",
  "LOG_LEVEL",
  "LOG_FORMAT",
  "GHR_HEALTH_PORT",
  "GITHUB_API_MAX_RETRIES"
] as const

/** Every variable that carries a credential: scrubbed from the runner's environment, never logged. */
export const credentialVariables = [
  "GITHUB_APP_ID",
  "GITHUB_APP_CLIENT_ID",
  "GITHUB_APP_INSTALLATION_ID",
  "GITHUB_APP_PRIVATE_KEY",
  "GHR_APP_SECRET",
  "GHR_CONFIG_SECRET",
  "GHR_JITCONFIG",
  "ACTIONS_RUNNER_INPUT_JITCONFIG",
  "ACTIONS_RUNNER_INPUT_TOKEN",
  "GITHUB_TOKEN",
  "GH_TOKEN"
] as const

export const runnerNameSuffixLength = 12
export const runnerNameMaxLength = 64
export const maxNamePrefixLength = runnerNameMaxLength - 1 - runnerNameSuffixLength

export const defaultLabels = (arch: string): ReadonlyArray<string> => [
  "self-hosted",
  "linux",
  arch === "arm64" ? "arm64" : "x64"
]

export type Env = Readonly<Record<string, string | undefined>>

/** Owner logins: letters, digits and single hyphens, at most 39 characters (GitHub's own rule). */
const OwnerLogin = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/))
const RepositoryName = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9._-]{1,100}$/))
const PositiveIntString = Schema.String.check(Schema.isPattern(/^[1-9][0-9]{0,15}$/))
const NonNegativeIntString = Schema.String.check(Schema.isPattern(/^(0|[1-9][0-9]{0,9})$/))
const Label = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$/))
const NamePrefix = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9._-]*$/))
const ClientId = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9._-]{1,64}$/))
const BooleanText = Schema.Literals(["true", "false", "1", "0", "yes", "no"])
const HttpUrl = Schema.String.check(Schema.isPattern(/^https?:\/\/[^\s/?#]+(?:\/[^\s?#]*)?$/))

const matches = (schema: Schema.Decoder<unknown>, value: string): boolean =>
  Option.isSome(Schema.decodeUnknownOption(schema)(value))

const trimSlash = (url: string): string => url.replace(/\/+$/, "")

/** github.com → api.github.com; `<x>.ghe.com` → api.<x>.ghe.com; any other host is GHES → /api/v3. */
export const apiUrlFor = (githubUrl: string): string => {
  const url = new URL(githubUrl)
  if (url.hostname === "github.com") return "https://api.github.com"
  if (url.hostname.endsWith(".ghe.com")) return `${url.protocol}//api.${url.hostname}`
  return `${trimSlash(url.origin + url.pathname)}/api/v3`
}

/** Private keys stored in env vars often arrive with literal `\n`; accept both shapes. */
export const normalizePem = (text: string): string => text.replace(/\\n/g, "\n").trim() + "\n"

/** Checks that text is a PEM RSA private key, without ever putting the key into the message. */
export const pemProblem = (pem: string): string | undefined => {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    return "is not a PEM private key (expected text starting with -----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----, as downloaded from the GitHub App's settings page)"
  }
  try {
    const key = createPrivateKey(pem)
    if (key.asymmetricKeyType !== "rsa") {
      return `is a ${key.asymmetricKeyType ?? "non-RSA"} key; GitHub App keys are RSA — download a new private key from the App's settings page`
    }
    return undefined
  } catch {
    return "is a malformed PEM private key (it could not be parsed); paste the whole .pem file GitHub generated, including the BEGIN/END lines"
  }
}

/** Flattens a JSON secret value to the string form an environment variable would have. */
const secretValueText = (value: unknown): string | undefined => {
  if (value === null || value === undefined) return undefined
  if (Array.isArray(value)) return value.map(String).join(",")
  if (typeof value === "object") return undefined
  return String(value)
}

export interface SecretInputs {
  /** Parsed JSON object of `GHR_CONFIG_SECRET`, when configured. */
  readonly configSecret?: Readonly<Record<string, unknown>> | undefined
  /** Parsed JSON object of `GHR_APP_SECRET`, when configured. */
  readonly appSecret?: Readonly<Record<string, unknown>> | undefined
}

export type Resolution =
  | { readonly _tag: "ok"; readonly settings: Settings }
  | { readonly _tag: "invalid"; readonly problems: ReadonlyArray<ConfigProblem> }

const appSecretKeys = {
  GITHUB_APP_ID: "app_id",
  GITHUB_APP_CLIENT_ID: "client_id",
  GITHUB_APP_INSTALLATION_ID: "installation_id",
  GITHUB_APP_PRIVATE_KEY: "private_key"
} as const

/** What the App secret looks like, for messages that tell the user how to fix it. */
export const appSecretExample =
  '{"app_id": 123, "installation_id": 456, "private_key": "-----BEGIN RSA PRIVATE KEY-----\\n…"}'

const appSecretRequirements = [
  { keys: ["app_id", "client_id"], env: ["GITHUB_APP_ID", "GITHUB_APP_CLIENT_ID"] },
  { keys: ["installation_id"], env: ["GITHUB_APP_INSTALLATION_ID"] },
  { keys: ["private_key"], env: ["GITHUB_APP_PRIVATE_KEY"] }
] as const

/** The App secret's keys that neither the secret nor an explicit variable provides. */
export const missingAppSecretKeys = (secret: Readonly<Record<string, unknown>>, env: Env): ReadonlyArray<string> =>
  appSecretRequirements
    .filter(({ keys, env: vars }) =>
      keys.every((key) => secret[key] === undefined || secret[key] === null || secret[key] === "") &&
      vars.every((name) => !env[name])
    )
    .map(({ keys }) => keys.join(" or "))

export interface ResolveOptions {
  readonly arch: string
  readonly stdoutIsTty: boolean
}

/**
 * Merges explicit environment (wins), the config secret, the App secret and defaults, and
 * validates the result, collecting every problem rather than stopping at the first.
 */
export const resolveSettings = (env: Env, secrets: SecretInputs, options: ResolveOptions): Resolution => {
  const problems: Array<ConfigProblem> = []
  const problem = (setting: string, text: string) => problems.push({ setting, problem: text })

  for (const key of Object.keys(secrets.configSecret ?? {})) {
    if (!(configSecretSettings as ReadonlyArray<string>).includes(key.toUpperCase())) {
      problem("GHR_CONFIG_SECRET", `unknown key "${key}" (allowed: ${configSecretSettings.map((s) => s.toLowerCase()).join(", ")})`)
    }
  }

  const read = (name: string): string | undefined => {
    const fromEnv = env[name]
    if (fromEnv !== undefined && fromEnv.trim() !== "") return fromEnv.trim()
    if ((configSecretSettings as ReadonlyArray<string>).includes(name)) {
      const fromSecret = secretValueText(secrets.configSecret?.[name.toLowerCase()])
      if (fromSecret !== undefined && fromSecret.trim() !== "") return fromSecret.trim()
    }
    if (name in appSecretKeys) {
      const fromSecret = secretValueText(secrets.appSecret?.[appSecretKeys[name as keyof typeof appSecretKeys]])
      if (fromSecret !== undefined && fromSecret.trim() !== "") return fromSecret.trim()
    }
    return undefined
  }

  const choice = <const A extends string>(name: string, allowed: ReadonlyArray<A>, fallback: A): A => {
    const value = read(name)
    if (value === undefined) return fallback
    const lower = value.toLowerCase()
    if ((allowed as ReadonlyArray<string>).includes(lower)) return lower as A
    problem(name, `expected one of ${allowed.join(", ")}, got "${value}"`)
    return fallback
  }

  const bool = (name: string, fallback: boolean): boolean => {
    const value = read(name)
    if (value === undefined) return fallback
    if (!matches(BooleanText, value.toLowerCase())) {
      problem(name, `expected true or false, got "${value}"`)
      return fallback
    }
    return ["true", "1", "yes"].includes(value.toLowerCase())
  }

  const int = (name: string, fallback: number, min: number, max: number): number => {
    const value = read(name)
    if (value === undefined) return fallback
    if (!matches(NonNegativeIntString, value) || Number(value) < min || Number(value) > max) {
      problem(name, `expected a whole number from ${min} to ${max}, got "${value}"`)
      return fallback
    }
    return Number(value)
  }

  const url = (name: string, fallback: string | undefined): string | undefined => {
    const value = read(name)
    if (value === undefined) return fallback
    if (!matches(HttpUrl, value)) {
      problem(name, `expected an http(s) URL such as https://github.com or https://ghes.example.com, got "${value}"`)
      return fallback
    }
    return trimSlash(value)
  }

  // --- GitHub target -------------------------------------------------------------------------
  const owner = read("GITHUB_OWNER")
  if (owner === undefined) {
    problem("GITHUB_OWNER", "is required: the organization or user that owns the runners (e.g. GITHUB_OWNER=my-org)")
  } else if (!matches(OwnerLogin, owner)) {
    problem("GITHUB_OWNER", `"${owner}" is not a GitHub login (letters, digits and single hyphens, at most 39 characters)`)
  }
  const repository = read("GITHUB_REPOSITORY")
  if (repository !== undefined && !matches(RepositoryName, repository)) {
    problem(
      "GITHUB_REPOSITORY",
      repository.includes("/")
        ? `expected the repository name only (owner goes in GITHUB_OWNER), got "${repository}"`
        : `"${repository}" is not a repository name (letters, digits, ".", "_", "-", at most 100 characters)`
    )
  }
  const githubUrl = url("GITHUB_URL", "https://github.com") ?? "https://github.com"
  const apiUrl = url("GITHUB_API_URL", undefined) ?? apiUrlFor(githubUrl)
  const scope: Scope = repository === undefined
    ? { kind: "org", org: owner ?? "" }
    : { kind: "repo", owner: owner ?? "", repo: repository }

  // --- Credentials ---------------------------------------------------------------------------
  const jitText = env["ACTIONS_RUNNER_INPUT_JITCONFIG"]?.trim() || env["GHR_JITCONFIG"]?.trim() || undefined
  let app: AppCredentials | undefined
  if (jitText === undefined) {
    const appIdText = read("GITHUB_APP_ID")
    const clientId = read("GITHUB_APP_CLIENT_ID")
    const installationText = read("GITHUB_APP_INSTALLATION_ID")
    const keyText = read("GITHUB_APP_PRIVATE_KEY")
    const source = (key: string) => env["GHR_APP_SECRET"] ? ` (or the "${key}" key of the GHR_APP_SECRET secret)` : ""
    if (appIdText === undefined && clientId === undefined) {
      problem(
        "GITHUB_APP_ID",
        `is required${source("app_id")}: set GITHUB_APP_ID or GITHUB_APP_CLIENT_ID from the App's settings page, ` +
          "set GHR_APP_SECRET to a Secrets Manager secret holding them, or hand over a JIT config in ACTIONS_RUNNER_INPUT_JITCONFIG"
      )
    }
    if (appIdText !== undefined && !matches(PositiveIntString, appIdText)) {
      problem("GITHUB_APP_ID", `expected the numeric App ID shown on the App's settings page, got "${appIdText}"`)
    }
    if (clientId !== undefined && !matches(ClientId, clientId)) {
      problem("GITHUB_APP_CLIENT_ID", `expected a client ID such as Iv23li…, got "${clientId}"`)
    }
    if (installationText === undefined) {
      problem(
        "GITHUB_APP_INSTALLATION_ID",
        `is required${source("installation_id")}: the number at the end of the installation's URL (…/settings/installations/<id>)`
      )
    } else if (!matches(PositiveIntString, installationText)) {
      problem("GITHUB_APP_INSTALLATION_ID", `expected a positive whole number, got "${installationText}"`)
    }
    let privateKey: string | undefined
    if (keyText === undefined) {
      problem("GITHUB_APP_PRIVATE_KEY", `is required${source("private_key")}: the PEM text of a private key generated on the App's settings page`)
    } else {
      privateKey = normalizePem(keyText)
      const pemIssue = pemProblem(privateKey)
      if (pemIssue !== undefined) problem("GITHUB_APP_PRIVATE_KEY", pemIssue)
    }
    if (privateKey !== undefined && installationText !== undefined) {
      app = {
        appId: appIdText === undefined ? undefined : Number(appIdText),
        clientId,
        installationId: Number(installationText),
        privateKey: Redacted.make(privateKey, { label: "GITHUB_APP_PRIVATE_KEY" })
      }
    }
  }

  // --- Runner --------------------------------------------------------------------------------
  const labelsText = read("RUNNER_LABELS")
  const labels = labelsText === undefined
    ? defaultLabels(options.arch)
    : labelsText.split(",").map((l) => l.trim()).filter((l) => l !== "")
  if (labels.length === 0) {
    problem("RUNNER_LABELS", "is empty: give at least one label, e.g. RUNNER_LABELS=self-hosted,linux,x64")
  } else if (labels.length > 100) {
    problem("RUNNER_LABELS", `has ${labels.length} labels; GitHub accepts at most 100`)
  }
  const badLabels = labels.filter((l) => !matches(Label, l))
  if (badLabels.length > 0) {
    problem(
      "RUNNER_LABELS",
      `invalid label${badLabels.length > 1 ? "s" : ""} ${badLabels.map((l) => `"${l}"`).join(", ")}: use letters, digits, ".", "_" and "-" (at most 256 characters, separated by commas)`
    )
  }

  const groupText = read("RUNNER_GROUP")
  if (groupText !== undefined && scope.kind === "repo" && groupText.toLowerCase() !== "default") {
    problem("RUNNER_GROUP", `runner groups exist only for organization runners; unset it or unset GITHUB_REPOSITORY (got "${groupText}")`)
  }
  const group = groupText ?? "default"

  const namePrefix = read("RUNNER_NAME_PREFIX") ?? "ghr"
  if (!matches(NamePrefix, namePrefix)) {
    problem("RUNNER_NAME_PREFIX", `"${namePrefix}" may only contain letters, digits, ".", "_" and "-", starting with a letter or digit`)
  } else if (namePrefix.length > maxNamePrefixLength) {
    problem(
      "RUNNER_NAME_PREFIX",
      `is ${namePrefix.length} characters; at most ${maxNamePrefixLength} fit, since a runner name (prefix, "-" and a ${runnerNameSuffixLength}-character unique suffix) is limited to ${runnerNameMaxLength}`
    )
  }

  const mode = choice("RUNNER_MODE", ["jit", "registration"] as const, "jit")
  const ephemeral = bool("RUNNER_EPHEMERAL", true)
  const disableUpdate = bool("RUNNER_DISABLE_UPDATE", true)
  const stopTimeoutSeconds = int("RUNNER_STOP_TIMEOUT_SECONDS", 100, 1, 3600)
  if (mode === "jit" && !ephemeral) {
    problem("RUNNER_EPHEMERAL", "JIT runners are always ephemeral; set RUNNER_MODE=registration for a persistent runner")
  }

  // --- Docker --------------------------------------------------------------------------------
  const dockerMode = choice("DOCKER_MODE", ["dind", "none"] as const, "dind")
  const dockerHost = read("DOCKER_HOST") ?? "unix:///var/run/docker.sock"
  if (dockerMode === "dind" && !/^(unix:\/\/\/.+|tcp:\/\/[^/\s]+:\d+\/?)$/.test(dockerHost)) {
    problem(
      "DOCKER_HOST",
      `unsupported value "${dockerHost}": expected unix:///path/to/docker.sock or tcp://host:port (ssh:// and npipe:// are not supported); set DOCKER_MODE=none for no Docker`
    )
  }
  const dockerWait = int("DOCKER_WAIT_SECONDS", 120, 0, 3600)

  // --- Process -------------------------------------------------------------------------------
  const logLevel = choice("LOG_LEVEL", ["debug", "info", "warn", "error"] as const, "info")
  const defaultFormat: LogFormat = options.stdoutIsTty ? "text" : "json"
  const logFormat = choice("LOG_FORMAT", ["json", "text"] as const, defaultFormat)
  const healthPort = int("GHR_HEALTH_PORT", 8080, 0, 65535)
  const apiMaxRetries = int("GITHUB_API_MAX_RETRIES", 5, 0, 10)

  if (problems.length > 0) return { _tag: "invalid", problems }

  return {
    _tag: "ok",
    settings: {
      scope,
      githubUrl,
      apiUrl,
      app,
      jitConfig: jitText === undefined ? undefined : Redacted.make(jitText, { label: "JIT config" }),
      runner: {
        labels,
        group,
        namePrefix,
        workDir: read("RUNNER_WORK_DIR") ?? "_work",
        dir: read("RUNNER_DIR") ?? "/actions-runner",
        mode,
        ephemeral,
        disableUpdate,
        stopTimeoutSeconds
      },
      docker: { mode: dockerMode, host: dockerHost, waitSeconds: dockerWait },
      log: { level: logLevel, format: logFormat },
      healthPort,
      apiMaxRetries
    }
  }
}

/** The URL the runner registers against: the repository or organization page. */
export const registrationUrl = (settings: Pick<Settings, "githubUrl" | "scope">): string =>
  settings.scope.kind === "repo"
    ? `${settings.githubUrl}/${settings.scope.owner}/${settings.scope.repo}`
    : `${settings.githubUrl}/${settings.scope.org}`

export const describeScope = (scope: Scope): string =>
  scope.kind === "repo" ? `repository ${scope.owner}/${scope.repo}` : `organization ${scope.org}`
