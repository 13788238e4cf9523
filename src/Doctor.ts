/**
 * `ghr doctor`: every check between "ghr is configured" and "a job runs", each with a verdict,
 * what was seen and the fix. It reads the same configuration sources as `ghr run` (environment,
 * GHR_CONFIG_SECRET, GHR_APP_SECRET through `resolveSettings` and `Secrets`) but never stops at the
 * first failure: a failed check is reported, and the checks that depend on it are "skipped (needs …)".
 *
 * Decisions are pure functions (`skewFinding`, `runnerVersionFinding`, `checkPermissions` in
 * AppSetup.ts, `renderTable`, …) and are unit-tested; the probes (Secrets Manager, GitHub, the
 * Docker socket, the ECS task metadata endpoint, the file system) are at the edges.
 *
 * The report's JSON shape is part of ghr's contract: docs/doctor.md.
 */
import { execFile } from "node:child_process"
import { accessSync, constants as fsConstants, existsSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs"
import { dirname, isAbsolute, join, resolve } from "node:path"
import { Context, Effect, Layer, Option, Redacted, Result, Schema } from "effect"
import packageJson from "../package.json" with { type: "json" }
import {
  appSettingsUrl,
  checkPermissions,
  describeGranted,
  inspectPrivateKey,
  type ScopeKind
} from "./AppSetup.ts"
import { Config } from "./Config.ts"
import { ping } from "./DockerSidecar.ts"
import type { ConfigProblem, SecretError } from "./Errors.ts"
import { type AppInfo, clockSkewSeconds, GitHubApp, type GitHubError, type InstallationInfo, type RateLimitInfo } from "./GitHubApp.ts"
import { Redaction } from "./Log.ts"
import { Secrets } from "./Secrets.ts"
import {
  type AppCredentials,
  describeScope,
  type Env,
  appSecretExample,
  missingAppSecretKeys,
  resolveSettings,
  type SecretInputs,
  type Settings
} from "./Settings.ts"

// =============================================================================================
// Report model
// =============================================================================================

export type Verdict = "ok" | "warn" | "fail" | "skip"

/** Every check, in the order they run and are printed. */
export const checkIds = [
  "secrets",
  "config",
  "private-key",
  "app",
  "clock",
  "installation",
  "permissions",
  "runner-group",
  "repository",
  "rate-limit",
  "docker",
  "ecs",
  "runner-files",
  "runner-version",
  "work-dir"
] as const
export type CheckId = typeof checkIds[number]

export const checkTitles: Readonly<Record<CheckId, string>> = {
  secrets: "Secrets Manager",
  config: "Configuration",
  "private-key": "App private key",
  app: "GitHub App",
  clock: "Clock skew",
  installation: "Installation",
  permissions: "Permissions",
  "runner-group": "Runner group",
  repository: "Repository access",
  "rate-limit": "Rate limit",
  docker: "Docker",
  ecs: "ECS task",
  "runner-files": "Runner files",
  "runner-version": "Runner version",
  "work-dir": "Work dir & disk"
}

export interface CheckResult {
  readonly id: CheckId
  readonly title: string
  readonly verdict: Verdict
  /** What the check saw (never a secret). */
  readonly seen: string
  /** What to do; null when there is nothing to do. */
  readonly fix: string | null
  /** For a check skipped because others did not pass: their ids. Empty otherwise. */
  readonly needs: ReadonlyArray<CheckId>
}

export interface Report {
  /** Version of this JSON shape; bumped only on incompatible changes. */
  readonly format: 1
  readonly ghrVersion: string
  /** True when no check failed (the exit code is 0). */
  readonly ok: boolean
  readonly summary: Readonly<Record<Verdict, number>>
  readonly checks: ReadonlyArray<CheckResult>
}

/** A check's outcome before it is given its id and title. */
export interface Finding {
  readonly verdict: Verdict
  readonly seen: string
  readonly fix?: string | undefined
}

const finish = (id: CheckId, finding: Finding, needs: ReadonlyArray<CheckId> = []): CheckResult => ({
  id,
  title: checkTitles[id],
  verdict: finding.verdict,
  seen: finding.seen,
  fix: finding.fix ?? null,
  needs
})

/** Skipped because the checks in `needs` did not pass. */
export const skipped = (id: CheckId, needs: ReadonlyArray<CheckId>): CheckResult =>
  finish(id, { verdict: "skip", seen: `skipped (needs ${needs.join(", ")})` }, needs)

/** Skipped because it does not apply here. */
const notApplicable = (id: CheckId, why: string): CheckResult => finish(id, { verdict: "skip", seen: `not applicable: ${why}` })

export const makeReport = (results: ReadonlyArray<CheckResult>): Report => {
  const byId = new Map(results.map((r) => [r.id, r]))
  const checks = checkIds.flatMap((id) => {
    const r = byId.get(id)
    return r === undefined ? [] : [r]
  })
  const summary = { ok: 0, warn: 0, fail: 0, skip: 0 }
  for (const c of checks) summary[c.verdict]++
  return { format: 1, ghrVersion: packageJson.version, ok: summary.fail === 0, summary, checks }
}

/** 0 when nothing failed, 1 otherwise. */
export const doctorExitCode = (report: Report): number => (report.ok ? 0 : 1)

// =============================================================================================
// Pure decisions
// =============================================================================================

export const skewWarnSeconds = 30
export const skewFailSeconds = 300

/** GitHub's clock minus ours: beyond 30 s worth a look, beyond 5 minutes App JWTs get rejected. */
export const skewFinding = (skewSeconds: number): Finding => {
  const abs = Math.abs(skewSeconds)
  const seen = abs <= 1
    ? "this machine's clock matches GitHub's Date header (to its 1 s precision)"
    : `this machine's clock is ${abs} s ${skewSeconds > 0 ? "behind" : "ahead of"} GitHub's (Date header)`
  const fix = "sync this machine's clock with NTP (chrony or systemd-timesyncd; on ECS it is the host's clock). " +
    "GitHub rejects App JWTs whose 'iat'/'exp' are off by minutes (401 \"'Issued at' claim … \" or \"Bad credentials\")"
  if (abs <= skewWarnSeconds) return { verdict: "ok", seen }
  return { verdict: abs > skewFailSeconds ? "fail" : "warn", seen, fix }
}

/** `major.minor.patch` of a runner version string such as "2.337.0" or "v2.337.0". */
export const parseVersion = (text: string): readonly [number, number, number] | undefined => {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(text.trim())
  return m === null ? undefined : [Number(m[1]), Number(m[2]), Number(m[3])]
}

export const compareVersions = (a: readonly [number, number, number], b: readonly [number, number, number]): number =>
  a[0] - b[0] || a[1] - b[1] || a[2] - b[2]

/** The runner in the image against the latest release known when the image was built (GHR_RUNNER_LATEST_KNOWN). */
export const runnerVersionFinding = (found: string | undefined, pinned: string | undefined): Finding => {
  if (found === undefined) {
    return {
      verdict: "warn",
      seen: "could not tell the runner's version (no bin/Runner.Listener answered --version, no .runner-version file)",
      fix: "use the ghr runner image, or unpack an official actions/runner release into RUNNER_DIR"
    }
  }
  const have = parseVersion(found)
  if (have === undefined) return { verdict: "warn", seen: `unrecognised runner version "${found}"`, fix: "use an official actions/runner release" }
  if (pinned === undefined || pinned.trim() === "") {
    return { verdict: "skip", seen: `runner ${found}; not compared: GHR_RUNNER_LATEST_KNOWN is not set (the ghr image sets it)` }
  }
  const latest = parseVersion(pinned)
  if (latest === undefined) {
    return { verdict: "warn", seen: `runner ${found}; GHR_RUNNER_LATEST_KNOWN="${pinned}" is not a version`, fix: "set GHR_RUNNER_LATEST_KNOWN to a release such as 2.337.0" }
  }
  if (compareVersions(have, latest) < 0) {
    return {
      verdict: "warn",
      seen: `runner ${found} is older than the latest known release ${pinned}`,
      fix: `GitHub stops sending jobs to a runner about 30 days after a newer release ("Runner version v${found} is deprecated"), and ghr disables self-update: rebuild the runner image with RUNNER_VERSION=${pinned} or newer and redeploy`
    }
  }
  return { verdict: "ok", seen: `runner ${found} (latest known release ${pinned})` }
}

/** The installation's remaining REST budget. */
export const rateLimitFinding = (rate: RateLimitInfo, nowSeconds: number): Finding => {
  const minutes = Math.max(0, Math.ceil((rate.reset - nowSeconds) / 60))
  const resetText = `resets in ${minutes} min`
  const fix = "ghr waits for the reset when GitHub says so, but runners start late meanwhile: find what else uses this App's " +
    "installation (tools sharing the App), or give ghr its own App; the budget is 5,000 requests/h plus 50/h per repository over 20 (max 12,500)"
  if (rate.remaining <= 0) return { verdict: "fail", seen: `0 of ${rate.limit} requests left (${resetText})`, fix }
  if (rate.remaining < Math.max(100, rate.limit * 0.1)) {
    return { verdict: "warn", seen: `${rate.remaining} of ${rate.limit} requests left (${resetText})`, fix }
  }
  return { verdict: "ok", seen: `${rate.remaining} of ${rate.limit} requests left (${resetText})` }
}

export const gib = 1024 ** 3
export const diskFailBytes = 1 * gib
export const diskWarnBytes = 5 * gib

const formatBytes = (bytes: number): string =>
  bytes >= gib ? `${(bytes / gib).toFixed(1)} GiB` : `${Math.round(bytes / 1024 ** 2)} MiB`

/** The work folder must be writable, and jobs (and pulled images) need room. */
export const workDirFinding = (
  workDir: string,
  writable: { readonly ok: true; readonly where: string } | { readonly ok: false; readonly error: string },
  freeBytes: number | undefined
): Finding => {
  if (!writable.ok) {
    return {
      verdict: "fail",
      seen: `${workDir} is not writable (${writable.error})`,
      fix: "point RUNNER_WORK_DIR at a writable directory (relative paths are inside RUNNER_DIR), or fix its owner/permissions for the user ghr runs as"
    }
  }
  const where = writable.where === workDir ? `${workDir} is writable` : `${workDir} will be created (${writable.where} is writable)`
  if (freeBytes === undefined) return { verdict: "ok", seen: `${where}; free space unknown` }
  const seen = `${where}; ${formatBytes(freeBytes)} free`
  const fix = "free disk space, or give the task more: on Fargate raise EphemeralStorageGiB (21–200), on Managed Instances/EC2 a larger volume; images pulled by jobs count too"
  if (freeBytes < diskFailBytes) return { verdict: "fail", seen, fix }
  if (freeBytes < diskWarnBytes) return { verdict: "warn", seen, fix }
  return { verdict: "ok", seen }
}

/** The fields of the ECS task metadata v4 `/task` response that doctor reports. */
export interface EcsTask {
  readonly launchType: string | undefined
  readonly cluster: string | undefined
  readonly family: string | undefined
  readonly revision: string | undefined
  readonly availabilityZone: string | undefined
  readonly cpu: number | undefined
  readonly memoryMiB: number | undefined
  readonly ephemeralStorageMiB: number | undefined
  /** From PullStartedAt to PullStoppedAt: how long the task waited for its images. */
  readonly pullSeconds: number | undefined
  readonly containers: ReadonlyArray<string>
}

/** Launch type and capacity, and whether the Docker mode can work there. */
export const ecsFinding = (task: EcsTask, dockerMode: "dind" | "none"): Finding => {
  const parts = [
    `${task.launchType ?? "launch type not reported"}${task.availabilityZone === undefined ? "" : ` in ${task.availabilityZone}`}`,
    task.family === undefined ? undefined : `task ${task.family}${task.revision === undefined ? "" : `:${task.revision}`}`,
    task.cpu === undefined && task.memoryMiB === undefined
      ? undefined
      : `${task.cpu ?? "?"} vCPU / ${task.memoryMiB ?? "?"} MiB`,
    task.ephemeralStorageMiB === undefined ? undefined : `${Math.round(task.ephemeralStorageMiB / 1024)} GiB ephemeral storage`,
    task.pullSeconds === undefined ? undefined : `image pull took ${task.pullSeconds} s`,
    task.containers.length === 0 ? undefined : `containers: ${task.containers.join(", ")}`
  ].filter((p): p is string => p !== undefined)
  const seen = parts.join(", ")
  if (task.launchType === "FARGATE" && dockerMode === "dind") {
    return {
      verdict: "fail",
      seen: `${seen}; DOCKER_MODE=dind cannot work on Fargate (no privileged containers, so no Docker daemon)`,
      fix: "deploy with Capacity=ManagedInstances to keep Docker (dind), or set DockerMode=none / DOCKER_MODE=none for jobs that need no Docker"
    }
  }
  if (task.launchType === "FARGATE") return { verdict: "ok", seen: `${seen}; no Docker daemon (DOCKER_MODE=none), as Fargate requires` }
  return { verdict: "ok", seen }
}

/** The installation must be on the configured owner, fit the scope, and not be suspended. */
export const installationFinding = (settings: Pick<Settings, "scope">, installation: InstallationInfo): Finding => {
  const owner = settings.scope.kind === "repo" ? settings.scope.owner : settings.scope.org
  const { login, type } = installation.account
  const seen = `installation ${installation.id} on ${login || "an unknown account"}${type ? ` (${type})` : ""}` +
    (installation.repositorySelection === undefined ? "" : `, ${installation.repositorySelection} repositories`)
  if (login.toLowerCase() !== owner.toLowerCase()) {
    return {
      verdict: "fail",
      seen: `${seen}, not on ${owner} (GITHUB_OWNER)`,
      fix: `set GITHUB_APP_INSTALLATION_ID to the App's installation on ${owner} (\`ghr app secret --owner ${owner} …\` finds it), or install the App on ${owner}`
    }
  }
  if (installation.suspendedAt !== undefined) {
    return {
      verdict: "fail",
      seen: `${seen}, suspended since ${installation.suspendedAt}`,
      fix: `unsuspend the installation${installation.htmlUrl === undefined ? "" : ` at ${installation.htmlUrl}`}`
    }
  }
  if (settings.scope.kind === "org" && type === "User") {
    return {
      verdict: "fail",
      seen: `${seen}; ${owner} is a user, and users have no organization runners`,
      fix: "set GITHUB_REPOSITORY for repository runners on one of the user's repositories"
    }
  }
  return { verdict: "ok", seen }
}

export const permissionsFinding = (
  kind: ScopeKind,
  granted: Readonly<Record<string, string>>,
  links: { readonly permissionsPage: string; readonly installationPage: string | undefined }
): Finding => {
  const check = checkPermissions(kind, granted)
  const seen = `granted: ${describeGranted(granted)}`
  if (check.ok) return { verdict: "ok", seen }
  const missing = check.missing.map((p) => `${p.label} (${p.key}=${p.access}; has ${p.granted ?? "none"})`)
  return {
    verdict: "fail",
    seen: `${seen}; missing ${missing.join("; ")}`,
    fix: `grant ${check.missing.map((p) => `"${p.label}"`).join(" and ")} on the App's permissions page ${links.permissionsPage}, ` +
      `then have the owner accept the new permissions on the installation${links.installationPage === undefined ? "" : ` (${links.installationPage})`}`
  }
}

/** GET /app answered: the App the JWT identified must be the configured one. */
export const appFinding = (app: AppCredentials, info: AppInfo): Finding => {
  const seen = `App ${info.id}${info.slug === undefined ? "" : ` "${info.slug}"`}` +
    (info.clientId === undefined ? "" : `, client ID ${info.clientId}`) +
    (info.owner === undefined ? "" : `, owned by ${info.owner.login}`) + "; the App JWT was accepted"
  if (app.appId !== undefined && info.id !== app.appId) {
    return { verdict: "fail", seen: `${seen}, but GITHUB_APP_ID is ${app.appId}`, fix: "set GITHUB_APP_ID to the App ID shown on the App's settings page" }
  }
  if (app.clientId !== undefined && info.clientId !== undefined && info.clientId !== app.clientId) {
    return {
      verdict: "fail",
      seen: `${seen}, but GITHUB_APP_CLIENT_ID is ${app.clientId}`,
      fix: "GITHUB_APP_ID and GITHUB_APP_CLIENT_ID name different Apps: keep one of them, from the App whose private key you configured"
    }
  }
  return { verdict: "ok", seen }
}

export const configFinding = (settings: Settings): Finding => {
  const mode = settings.jitConfig !== undefined ? "JIT config handed over (no App key here)" : `RUNNER_MODE=${settings.runner.mode}`
  const group = settings.scope.kind === "org" ? `, group "${settings.runner.group}"` : ""
  return {
    verdict: "ok",
    seen: `${describeScope(settings.scope)} at ${settings.apiUrl}, ${mode}, labels ${settings.runner.labels.join(",")}${group}, DOCKER_MODE=${settings.docker.mode}`
  }
}

export const configProblemsFinding = (problems: ReadonlyArray<ConfigProblem>): Finding => ({
  verdict: "fail",
  seen: `${problems.length} problem${problems.length === 1 ? "" : "s"}:\n${problems.map((p) => `- ${p.setting}: ${p.problem}`).join("\n")}`,
  fix: "fix each setting named above (environment, or the GHR_CONFIG_SECRET / GHR_APP_SECRET secret); see docs/configuration.md"
})

/** A GitHub call that failed: what it said and the fix the error carries. */
export const errorFinding = (error: GitHubError): Finding => {
  switch (error._tag) {
    case "AuthError":
      return { verdict: "fail", seen: `HTTP ${error.status}: ${error.detail}`, fix: error.fix }
    case "GitHubApiError":
      return { verdict: "fail", seen: `${error.operation}${error.status === undefined ? "" : ` (HTTP ${error.status})`}: ${error.detail}`, fix: error.fix }
    case "ConfigError":
      return { verdict: "fail", seen: error.problems.map((p) => `${p.setting}: ${p.problem}`).join("; "), fix: "fix the setting named above" }
  }
}

// =============================================================================================
// Settings for the local checks when the GitHub settings are invalid
// =============================================================================================

/** Problems that concern only where and as whom ghr talks to GitHub, not this machine. */
const githubOnlySettings = new Set([
  "GITHUB_OWNER",
  "GITHUB_REPOSITORY",
  "GITHUB_URL",
  "GITHUB_API_URL",
  "GITHUB_APP_ID",
  "GITHUB_APP_CLIENT_ID",
  "GITHUB_APP_INSTALLATION_ID",
  "GITHUB_APP_PRIVATE_KEY",
  "RUNNER_GROUP"
])

/**
 * When only GitHub settings are wrong, the Docker, ECS, runner and disk checks still run: resolve
 * again with valid stand-ins for those settings (never used to call GitHub). Undefined otherwise.
 */
export const localSettings = (env: Env, secrets: SecretInputs, problems: ReadonlyArray<ConfigProblem>): Settings | undefined => {
  if (!problems.every((p) => githubOnlySettings.has(p.setting))) return undefined
  const bad = new Set(problems.map((p) => p.setting))
  const standIns: Record<string, string> = { ACTIONS_RUNNER_INPUT_JITCONFIG: "doctor-stand-in" }
  if (bad.has("GITHUB_OWNER")) standIns["GITHUB_OWNER"] = "stand-in"
  if (bad.has("GITHUB_REPOSITORY")) standIns["GITHUB_REPOSITORY"] = "stand-in"
  if (bad.has("GITHUB_URL")) standIns["GITHUB_URL"] = "https://github.com"
  if (bad.has("GITHUB_API_URL")) standIns["GITHUB_API_URL"] = "https://api.github.com"
  if (bad.has("RUNNER_GROUP")) standIns["RUNNER_GROUP"] = "default"
  const again = resolveSettings({ ...env, ...standIns }, secrets, { arch: process.arch, stdoutIsTty: false })
  return again._tag === "ok" ? again.settings : undefined
}

// =============================================================================================
// Rendering
// =============================================================================================

export const renderJson = (report: Report): string => JSON.stringify(report, null, 2)

const wrap = (text: string, width: number): Array<string> => {
  const lines: Array<string> = []
  for (const paragraph of text.split("\n")) {
    let line = ""
    for (const word of paragraph.split(/\s+/).filter((w) => w !== "")) {
      if (line === "") line = word
      else if (line.length + 1 + word.length <= width) line += ` ${word}`
      else {
        lines.push(line)
        line = word
      }
    }
    lines.push(line)
  }
  return lines
}

const verdictLabel: Readonly<Record<Verdict, string>> = { ok: "ok", warn: "WARN", fail: "FAIL", skip: "skip" }
const verdictColor: Readonly<Record<Verdict, string>> = { ok: "32", warn: "33", fail: "31", skip: "2" }

export interface TableOptions {
  readonly color: boolean
  /** Terminal width; lines are wrapped to it. */
  readonly width: number
}

/** A table for people: one row per check, the fix under every warning and failure. */
export const renderTable = (report: Report, options: TableOptions): string => {
  const paint = (code: string, text: string) => (options.color ? `\x1b[${code}m${text}\x1b[0m` : text)
  const titleWidth = Math.max(...report.checks.map((c) => c.title.length), "CHECK".length)
  const verdictWidth = 4
  const indent = 2 + titleWidth + 2 + verdictWidth + 2
  const textWidth = Math.max(30, options.width - indent - 1)
  const pad = " ".repeat(indent)
  const out: Array<string> = [
    `  ${"CHECK".padEnd(titleWidth)}  ${"".padEnd(verdictWidth)}  SEEN`
  ]
  for (const check of report.checks) {
    const [first = "", ...rest] = wrap(check.seen, textWidth)
    const label = paint(verdictColor[check.verdict], verdictLabel[check.verdict].padEnd(verdictWidth))
    out.push(`  ${check.title.padEnd(titleWidth)}  ${label}  ${first}`)
    for (const line of rest) out.push(pad + line)
    if (check.fix !== null && (check.verdict === "fail" || check.verdict === "warn")) {
      const [fixFirst = "", ...fixRest] = wrap(check.fix, textWidth - 5)
      out.push(`${pad}${paint("1", "fix:")} ${fixFirst}`)
      for (const line of fixRest) out.push(`${pad}     ${line}`)
    }
  }
  const { ok, warn, fail, skip } = report.summary
  const verdict = report.ok ? paint("32", "no failures") : paint("31", `${fail} failed`)
  out.push("", `${verdict} — ${ok} ok, ${warn} warning${warn === 1 ? "" : "s"}, ${fail} failed, ${skip} skipped`)
  return out.join("\n")
}

// =============================================================================================
// Probes (I/O)
// =============================================================================================

/** Reads the configured secrets, as Config.fromEnv does, but reports every failure instead of stopping. */
const readSecrets = Effect.fnUntraced(function*(env: Env, secrets: Secrets["Service"]) {
  const configSecretId = env["GHR_CONFIG_SECRET"]?.trim() || undefined
  const appSecretId = env["GHR_APP_SECRET"]?.trim() || undefined
  const jitHandedOver = Boolean(env["ACTIONS_RUNNER_INPUT_JITCONFIG"]?.trim() || env["GHR_JITCONFIG"]?.trim())
  if (configSecretId === undefined && appSecretId === undefined) {
    return {
      result: notApplicable("secrets", "GHR_CONFIG_SECRET and GHR_APP_SECRET are not set; settings come from the environment"),
      inputs: {} as SecretInputs
    }
  }
  const failures: Array<SecretError> = []
  const seen: Array<string> = []
  const read = (id: string, setting: string) =>
    secrets.getJson(id, setting).pipe(
      Effect.result,
      Effect.map((r) => {
        if (Result.isSuccess(r)) return r.success
        failures.push(r.failure)
        return undefined
      })
    )
  const configSecret = configSecretId === undefined ? undefined : yield* read(configSecretId, "GHR_CONFIG_SECRET")
  if (configSecretId !== undefined && configSecret !== undefined) {
    seen.push(`GHR_CONFIG_SECRET=${configSecretId}: a JSON object with ${Object.keys(configSecret).length} key(s)`)
  }
  let appSecret: Readonly<Record<string, unknown>> | undefined
  if (appSecretId !== undefined && jitHandedOver) {
    seen.push(`GHR_APP_SECRET=${appSecretId}: not read (a JIT config was handed over; this task needs no App key)`)
  } else if (appSecretId !== undefined) {
    appSecret = yield* read(appSecretId, "GHR_APP_SECRET")
    if (appSecret !== undefined) {
      const missing = missingAppSecretKeys(appSecret, env)
      if (missing.length > 0) {
        return {
          result: finish("secrets", {
            verdict: "fail",
            seen: `GHR_APP_SECRET=${appSecretId}: the secret has no ${missing.map((k) => `"${k}"`).join(", ")} key (keys present: ${Object.keys(appSecret).sort().join(", ") || "none"})`,
            fix: `store JSON like ${appSecretExample}; \`ghr app secret --put\` writes exactly that`
          }),
          inputs: undefined
        }
      }
      seen.push(`GHR_APP_SECRET=${appSecretId}: keys ${Object.keys(appSecret).sort().join(", ")}`)
    }
  }
  if (failures.length > 0) {
    return {
      result: finish("secrets", {
        verdict: "fail",
        seen: failures.map((f) => `${f.setting}=${f.secretId}: ${f.reason}`).concat(seen).join("; "),
        fix: failures.map((f) => f.detail).join(" ")
      }),
      inputs: undefined
    }
  }
  return { result: finish("secrets", { verdict: "ok", seen: seen.join("; ") }), inputs: { configSecret, appSecret } as SecretInputs }
})

/** GitHub's Date header from an unauthenticated GET /rate_limit (which costs nothing), for the clock check. */
const githubSkew = (apiUrl: string) =>
  Effect.tryPromise(async () => {
    const response = await fetch(`${apiUrl}/rate_limit`, {
      headers: { accept: "application/vnd.github+json", "user-agent": "ghr" },
      signal: AbortSignal.timeout(10_000)
    })
    await response.arrayBuffer()
    return clockSkewSeconds(response.headers.get("date") ?? undefined, Date.now())
  }).pipe(Effect.orElseSucceed(() => undefined))

const EcsTaskBody = Schema.Struct({
  Cluster: Schema.optional(Schema.String),
  Family: Schema.optional(Schema.String),
  Revision: Schema.optional(Schema.String),
  LaunchType: Schema.optional(Schema.String),
  AvailabilityZone: Schema.optional(Schema.String),
  Limits: Schema.optional(Schema.Struct({ CPU: Schema.optional(Schema.Number), Memory: Schema.optional(Schema.Number) })),
  PullStartedAt: Schema.optional(Schema.String),
  PullStoppedAt: Schema.optional(Schema.String),
  EphemeralStorageMetrics: Schema.optional(Schema.Struct({ Reserved: Schema.optional(Schema.Number) })),
  Containers: Schema.optional(Schema.Array(Schema.Struct({ Name: Schema.optional(Schema.String) })))
})
const decodeEcsTask = Schema.decodeUnknownOption(EcsTaskBody)

const pullSeconds = (started: string | undefined, stopped: string | undefined): number | undefined => {
  const ms = Date.parse(stopped ?? "") - Date.parse(started ?? "")
  return Number.isFinite(ms) && ms >= 0 ? Math.round(ms / 1000) : undefined
}

/** GET ${ECS_CONTAINER_METADATA_URI_V4}/task (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4.html). */
const ecsTask = (metadataUri: string) =>
  Effect.tryPromise({
    try: async () => {
      const response = await fetch(`${metadataUri.replace(/\/+$/, "")}/task`, { signal: AbortSignal.timeout(3_000) })
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      return (await response.json()) as unknown
    },
    catch: (error) => (error instanceof Error ? error.message : String(error))
  }).pipe(
    Effect.flatMap((body) =>
      Option.match(decodeEcsTask(body), {
        onNone: () => Effect.fail("the answer is not task metadata"),
        onSome: (t): Effect.Effect<EcsTask> =>
          Effect.succeed({
            launchType: t.LaunchType,
            cluster: t.Cluster,
            family: t.Family,
            revision: t.Revision,
            availabilityZone: t.AvailabilityZone,
            cpu: t.Limits?.CPU,
            memoryMiB: t.Limits?.Memory,
            ephemeralStorageMiB: t.EphemeralStorageMetrics?.Reserved,
            pullSeconds: pullSeconds(t.PullStartedAt, t.PullStoppedAt),
            containers: (t.Containers ?? []).flatMap((c) => (c.Name === undefined ? [] : [c.Name]))
          })
      })
    )
  )

const executable = (path: string): boolean => {
  try {
    accessSync(path, fsConstants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/** `bin/Runner.Listener --version`, else the `.runner-version` file the image writes. */
const runnerVersion = (dir: string) =>
  Effect.callback<string | undefined>((resume) => {
    const listener = join(dir, "bin", "Runner.Listener")
    const fromFile = () => {
      try {
        const text = readFileSync(join(dir, ".runner-version"), "utf8").trim()
        return text === "" ? undefined : text.split("\n")[0]!.trim()
      } catch {
        return undefined
      }
    }
    if (!executable(listener)) {
      resume(Effect.succeed(fromFile()))
      return
    }
    const child = execFile(listener, ["--version"], { cwd: dir, timeout: 10_000, env: { ...process.env, DOTNET_CLI_TELEMETRY_OPTOUT: "1" } }, (error, stdout) => {
      const version = /\d+\.\d+\.\d+\S*/.exec(String(stdout))?.[0]
      resume(Effect.succeed(error === null && version !== undefined ? version : fromFile()))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** Writes and removes a probe file in the work dir, or checks the nearest existing parent when it does not exist yet. */
const probeWritable = (workDir: string): { ok: true; where: string } | { ok: false; error: string } => {
  let where = workDir
  while (!existsSync(where)) {
    const parent = dirname(where)
    if (parent === where) break
    where = parent
  }
  try {
    if (!statSync(where).isDirectory()) return { ok: false, error: `${where} is not a directory` }
    const probe = join(where, `.ghr-doctor-${process.pid}-${Date.now()}`)
    writeFileSync(probe, "")
    rmSync(probe, { force: true })
    return { ok: true, where }
  } catch (error) {
    const e = error as NodeJS.ErrnoException
    return { ok: false, error: e.code ?? e.message }
  }
}

const freeBytes = (path: string): number | undefined => {
  try {
    const s = statfsSync(path)
    return s.bavail * s.bsize
  } catch {
    return undefined
  }
}

// =============================================================================================
// The checks
// =============================================================================================

/** Private key, App, clock, installation, permissions, runner group, repository and rate limit. */
const githubChecks = (settings: Settings, app: AppCredentials) =>
  Effect.gen(function*() {
    const results: Array<CheckResult> = []
    const gh = yield* GitHubApp

    const key = inspectPrivateKey(Redacted.value(app.privateKey))
    if (!key.ok) {
      results.push(finish("private-key", { verdict: "fail", seen: key.problem, fix: "generate a new private key on the App's settings page (General → Private keys) and configure the whole .pem file" }))
      for (const id of ["app", "installation", "permissions", "runner-group", "repository", "rate-limit"] as const) {
        results.push(skipped(id, ["private-key"]))
      }
      return { results, skewSeconds: undefined }
    }
    results.push(finish("private-key", { verdict: "ok", seen: `RSA${key.bits === undefined ? "" : ` ${key.bits}-bit`} ${key.format} key; signs RS256` }))

    const appResult = yield* Effect.result(gh.app)
    if (Result.isFailure(appResult)) {
      results.push(finish("app", errorFinding(appResult.failure)))
      for (const id of ["installation", "permissions", "runner-group", "repository", "rate-limit"] as const) results.push(skipped(id, ["app"]))
      return { results, skewSeconds: undefined }
    }
    const info = appResult.success
    const appCheck = appFinding(app, info)
    results.push(finish("app", appCheck))
    if (appCheck.verdict === "fail") {
      for (const id of ["installation", "permissions", "runner-group", "repository", "rate-limit"] as const) results.push(skipped(id, ["app"]))
      return { results, skewSeconds: info.skewSeconds }
    }

    const installationResult = yield* Effect.result(gh.installation)
    if (Result.isFailure(installationResult)) {
      results.push(finish("installation", errorFinding(installationResult.failure)))
      for (const id of ["permissions", "runner-group", "repository", "rate-limit"] as const) results.push(skipped(id, ["installation"]))
      return { results, skewSeconds: info.skewSeconds }
    }
    const installation = installationResult.success
    const installationCheck = installationFinding(settings, installation)
    results.push(finish("installation", installationCheck))
    if (installationCheck.verdict === "fail") {
      for (const id of ["permissions", "runner-group", "repository", "rate-limit"] as const) results.push(skipped(id, ["installation"]))
      return { results, skewSeconds: info.skewSeconds }
    }

    const permissionsCheck = permissionsFinding(settings.scope.kind, installation.permissions, {
      permissionsPage: appSettingsUrl(settings.githubUrl, info, "permissions"),
      installationPage: installation.htmlUrl
    })
    results.push(finish("permissions", permissionsCheck))

    if (settings.scope.kind === "org") {
      results.push(notApplicable("repository", "organization scope (runners are not tied to one repository)"))
      if (permissionsCheck.verdict === "fail") {
        results.push(skipped("runner-group", ["permissions"]))
      } else {
        const group = yield* Effect.result(gh.runnerGroupId)
        results.push(finish(
          "runner-group",
          Result.isSuccess(group)
            ? { verdict: "ok", seen: `runner group "${settings.runner.group}" exists (id ${group.success})` }
            : errorFinding(group.failure)
        ))
      }
    } else {
      results.push(notApplicable("runner-group", "repository scope (runner groups belong to organizations)"))
      const repository = yield* Effect.result(gh.repository(settings.scope.owner, settings.scope.repo))
      results.push(finish(
        "repository",
        Result.isSuccess(repository)
          ? repository.success.archived
            ? { verdict: "fail", seen: `${repository.success.fullName} is archived`, fix: "unarchive the repository: archived repositories run no workflows" }
            : { verdict: "ok", seen: `${repository.success.fullName} is accessible to installation ${installation.id}` }
          : errorFinding(repository.failure)
      ))
    }

    const rate = yield* Effect.result(gh.rateLimit)
    results.push(finish("rate-limit", Result.isSuccess(rate) ? rateLimitFinding(rate.success, Math.floor(Date.now() / 1000)) : errorFinding(rate.failure)))
    return { results, skewSeconds: info.skewSeconds }
  }).pipe(
    Effect.provide(
      GitHubApp.layer.pipe(
        // A diagnosis reports what it sees: at most one retry, so an outage shows in seconds, not minutes.
        Layer.provide(Layer.succeed(Config, Config.of({ ...settings, apiMaxRetries: Math.min(settings.apiMaxRetries, 1) })))
      )
    )
  )

const dockerCheck = (settings: Settings) =>
  Effect.gen(function*() {
    if (settings.docker.mode === "none") {
      return finish("docker", { verdict: "ok", seen: "DOCKER_MODE=none: no Docker daemon expected (jobs that run docker commands, service containers or container actions will fail)" })
    }
    const result = yield* Effect.promise(() => ping(settings.docker.host, 2_000))
    if (result.ok) return finish("docker", { verdict: "ok", seen: `GET /_ping at ${settings.docker.host} answered OK` })
    return finish("docker", {
      verdict: "fail",
      seen: `no Docker daemon at ${settings.docker.host} (${result.error})`,
      fix: "in ECS: the dind sidecar must be running and HEALTHY, share the socket volume, and the runner container must dependsOn it; " +
        "on Fargate no Docker daemon can run (use Capacity=ManagedInstances, or DOCKER_MODE=none); " +
        "on a laptop: point DOCKER_HOST at your daemon (unix:///… or tcp://host:port) or set DOCKER_MODE=none"
    })
  })

const ecsCheck = (env: Env, settings: Settings) =>
  Effect.gen(function*() {
    const uri = env["ECS_CONTAINER_METADATA_URI_V4"]?.trim()
    if (!uri) return notApplicable("ecs", "not in an ECS task (ECS_CONTAINER_METADATA_URI_V4 is not set)")
    const task = yield* Effect.result(ecsTask(uri))
    if (Result.isFailure(task)) {
      return finish("ecs", {
        verdict: "warn",
        seen: `ECS_CONTAINER_METADATA_URI_V4 is set but ${uri}/task did not answer with task metadata (${task.failure})`,
        fix: "run doctor inside the task's container (e.g. ECS Exec); the endpoint is only reachable from there"
      })
    }
    return finish("ecs", ecsFinding(task.success, settings.docker.mode))
  })

const runnerChecks = (env: Env, settings: Settings) =>
  Effect.gen(function*() {
    const dir = resolve(settings.runner.dir)
    const missing = ["run.sh", "config.sh"].filter((f) => !executable(join(dir, f)))
    const results: Array<CheckResult> = []
    if (missing.length > 0) {
      results.push(finish("runner-files", {
        verdict: "fail",
        seen: `${missing.join(" and ")} ${missing.length === 1 ? "is" : "are"} missing or not executable in RUNNER_DIR=${dir}`,
        fix: "use the ghr runner image, or set RUNNER_DIR to where an actions/runner release is unpacked (the directory with run.sh and config.sh)"
      }))
      results.push(skipped("runner-version", ["runner-files"]))
    } else {
      const listener = executable(join(dir, "bin", "Runner.Listener"))
      results.push(finish("runner-files", { verdict: "ok", seen: `run.sh, config.sh${listener ? ", bin/Runner.Listener" : ""} in ${dir}` }))
      const version = yield* runnerVersion(dir)
      results.push(finish("runner-version", runnerVersionFinding(version, env["GHR_RUNNER_LATEST_KNOWN"])))
    }
    const workDir = isAbsolute(settings.runner.workDir) ? settings.runner.workDir : join(dir, settings.runner.workDir)
    const writable = probeWritable(workDir)
    results.push(finish("work-dir", workDirFinding(workDir, writable, writable.ok ? freeBytes(writable.where) : undefined)))
    return results
  })

/** Credentials that can appear in the environment: registered so that no output ever shows them. */
const secretVariables = ["GITHUB_APP_PRIVATE_KEY", "GHR_JITCONFIG", "ACTIONS_RUNNER_INPUT_JITCONFIG", "ACTIONS_RUNNER_INPUT_TOKEN", "GITHUB_TOKEN", "GH_TOKEN"]

export class Doctor extends Context.Service<Doctor, {
  /** Runs every check against this environment; never fails — a failure is a check's verdict. */
  diagnose(env: Env): Effect.Effect<Report>
}>()("ghr/Doctor") {
  static readonly layer: Layer.Layer<Doctor, never, Secrets | Redaction> = Layer.effect(
    Doctor,
    Effect.gen(function*() {
      const secrets = yield* Secrets
      const redaction = yield* Redaction

      const diagnose = Effect.fn("Doctor.diagnose")(function*(env: Env) {
        const results: Array<CheckResult> = []
        for (const name of secretVariables) {
          const value = env[name]
          if (value !== undefined && value.trim() !== "") {
            yield* redaction.register(value)
            yield* redaction.register(value.replace(/\\n/g, "\n"))
          }
        }

        const secretStep = yield* readSecrets(env, secrets)
        results.push(secretStep.result)
        const appKey = secretStep.inputs?.appSecret?.["private_key"]
        if (typeof appKey === "string" && appKey.trim() !== "") yield* redaction.register(appKey.replace(/\\n/g, "\n"))

        let settings: Settings | undefined
        let local: Settings | undefined
        let problems: ReadonlyArray<ConfigProblem> = []
        if (secretStep.inputs === undefined) {
          results.push(skipped("config", ["secrets"]))
        } else {
          const resolution = resolveSettings(env, secretStep.inputs, { arch: process.arch, stdoutIsTty: false })
          if (resolution._tag === "ok") {
            settings = local = resolution.settings
            results.push(finish("config", configFinding(resolution.settings)))
          } else {
            problems = resolution.problems
            results.push(finish("config", configProblemsFinding(problems)))
            local = localSettings(env, secretStep.inputs, problems)
          }
        }

        // --- GitHub ------------------------------------------------------------------------
        const github = ["private-key", "app", "installation", "permissions", "runner-group", "repository", "rate-limit"] as const
        let skewSeconds: number | undefined
        if (settings === undefined) {
          const keyProblem = problems.find((p) => p.setting === "GITHUB_APP_PRIVATE_KEY")
          for (const id of github) {
            results.push(
              id === "private-key" && keyProblem !== undefined
                ? finish(id, { verdict: "fail", seen: `GITHUB_APP_PRIVATE_KEY ${keyProblem.problem}`, fix: "configure the .pem file the App's settings page generated, whole" })
                : skipped(id, [secretStep.inputs === undefined ? "secrets" : "config"])
            )
          }
          results.push(skipped("clock", [secretStep.inputs === undefined ? "secrets" : "config"]))
        } else if (settings.app === undefined) {
          for (const id of github) {
            results.push(notApplicable(id, "this process got a JIT config and holds no App key by design; run ghr doctor where the App credentials are (the controller's settings, or a laptop)"))
          }
        } else {
          yield* redaction.register(Redacted.value(settings.app.privateKey))
          const outcome = yield* githubChecks(settings, settings.app).pipe(Effect.provideService(Redaction, redaction))
          results.push(...outcome.results)
          skewSeconds = outcome.skewSeconds
        }
        if (settings !== undefined) {
          const skew = skewSeconds ?? (yield* githubSkew(settings.apiUrl))
          results.push(
            skew === undefined
              ? finish("clock", { verdict: "warn", seen: `no Date header from ${settings.apiUrl}`, fix: "check that GITHUB_API_URL is reachable from here" })
              : finish("clock", skewFinding(skew))
          )
        }

        // --- This machine ------------------------------------------------------------------
        if (local === undefined) {
          const needs: ReadonlyArray<CheckId> = [secretStep.inputs === undefined ? "secrets" : "config"]
          for (const id of ["docker", "ecs", "runner-files", "runner-version", "work-dir"] as const) results.push(skipped(id, needs))
        } else {
          results.push(yield* dockerCheck(local))
          results.push(yield* ecsCheck(env, local))
          results.push(...(yield* runnerChecks(env, local)))
        }
        return makeReport(results)
      })

      return Doctor.of({ diagnose })
    })
  )
}
