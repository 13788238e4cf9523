/**
 * `ghr doctor`: the pure decisions, then every check's ok and fail path through the compiled
 * binary — the fake GitHub, moto_server for the secrets, a stand-in Docker daemon on a unix socket
 * and a stand-in ECS task metadata endpoint, all on 127.0.0.1 — the JSON shape, exit codes, and
 * that no secret ever reaches the output.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test"
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  type CheckId,
  checkIds,
  type CheckResult,
  ecsFinding,
  type EcsTask,
  gib,
  installationFinding,
  localSettings,
  makeReport,
  permissionsFinding,
  rateLimitFinding,
  renderTable,
  type Report,
  runnerVersionFinding,
  skewFinding,
  workDirFinding
} from "../src/Doctor.ts"
import type { InstallationInfo } from "../src/GitHubApp.ts"
import { startFakeGitHub } from "./support/fake-github.ts"
import { type GhrResult, runGhr, standInRunnerDir, startDockerPing } from "./support/ghr.ts"
import { generateAppKey, generateEcKey } from "./support/keys.ts"
import { createSecret, type Moto, startMoto } from "./support/moto.ts"
import {
  APP_ID,
  CLIENT_ID,
  NO_PERMISSION_INSTALLATION,
  ORG_INSTALLATION,
  REPO_INSTALLATION,
  startWorld,
  type World
} from "./support/world.ts"

// =============================================================================================
// Pure decisions
// =============================================================================================

describe("decisions", () => {
  test("clock skew: ok up to 30 s, warn up to 5 min, fail beyond, either direction", () => {
    expect(skewFinding(0).verdict).toBe("ok")
    expect(skewFinding(30).verdict).toBe("ok")
    expect(skewFinding(-30).verdict).toBe("ok")
    expect(skewFinding(31).verdict).toBe("warn")
    expect(skewFinding(-300).verdict).toBe("warn")
    expect(skewFinding(301).verdict).toBe("fail")
    expect(skewFinding(-3600).verdict).toBe("fail")
    expect(skewFinding(120).seen).toContain("120 s behind")
    expect(skewFinding(-120).seen).toContain("120 s ahead")
    expect(skewFinding(400).fix).toContain("NTP")
  })

  test("runner version against the latest known release", () => {
    expect(runnerVersionFinding("2.338.0", "2.338.0").verdict).toBe("ok")
    expect(runnerVersionFinding("2.339.1", "2.338.0").verdict).toBe("ok")
    const old = runnerVersionFinding("2.330.0", "2.338.0")
    expect(old.verdict).toBe("warn")
    expect(old.fix).toContain("RUNNER_VERSION=2.338.0")
    expect(runnerVersionFinding("2.9.0", "2.10.0").verdict).toBe("warn")
    expect(runnerVersionFinding("2.338.0", undefined)).toMatchObject({ verdict: "skip" })
    expect(runnerVersionFinding("2.338.0", undefined).seen).toContain("GHR_RUNNER_LATEST_KNOWN")
    expect(runnerVersionFinding(undefined, "2.338.0").verdict).toBe("warn")
    expect(runnerVersionFinding("nightly", "2.338.0").verdict).toBe("warn")
    expect(runnerVersionFinding("2.338.0", "latest").verdict).toBe("warn")
  })

  test("rate limit: fail when exhausted, warn under 10 % (or 100)", () => {
    const now = 1_000_000
    expect(rateLimitFinding({ limit: 5000, remaining: 4000, used: 1000, reset: now + 600 }, now).verdict).toBe("ok")
    expect(rateLimitFinding({ limit: 5000, remaining: 499, used: 4501, reset: now + 600 }, now).verdict).toBe("warn")
    const out = rateLimitFinding({ limit: 5000, remaining: 0, used: 5000, reset: now + 600 }, now)
    expect(out.verdict).toBe("fail")
    expect(out.seen).toContain("resets in 10 min")
  })

  test("work dir: unwritable fails; free space under 1 GiB fails, under 5 GiB warns", () => {
    expect(workDirFinding("/w", { ok: false, error: "EACCES" }, undefined).verdict).toBe("fail")
    expect(workDirFinding("/w", { ok: true, where: "/w" }, 0.5 * gib).verdict).toBe("fail")
    expect(workDirFinding("/w", { ok: true, where: "/w" }, 3 * gib).verdict).toBe("warn")
    expect(workDirFinding("/w", { ok: true, where: "/" }, 50 * gib)).toMatchObject({ verdict: "ok" })
    expect(workDirFinding("/w", { ok: true, where: "/" }, 50 * gib).seen).toContain("will be created")
  })

  const task = (launchType: string | undefined): EcsTask => ({
    launchType,
    cluster: "ghr",
    family: "ghr-runner",
    revision: "3",
    availabilityZone: "us-east-1a",
    cpu: 2,
    memoryMiB: 4096,
    ephemeralStorageMiB: 20_480,
    pullSeconds: 42,
    containers: ["runner", "dind"]
  })

  test("ECS: dind on Fargate fails; Fargate without Docker, EC2 and Managed Instances are fine", () => {
    const fargateDind = ecsFinding(task("FARGATE"), "dind")
    expect(fargateDind.verdict).toBe("fail")
    expect(fargateDind.fix).toContain("Capacity=ManagedInstances")
    expect(fargateDind.seen).toContain("2 vCPU / 4096 MiB")
    expect(ecsFinding(task("FARGATE"), "none").verdict).toBe("ok")
    expect(ecsFinding(task("EC2"), "dind").verdict).toBe("ok")
    expect(ecsFinding(task("MANAGED_INSTANCES"), "dind").verdict).toBe("ok")
    expect(ecsFinding(task(undefined), "dind").seen).toContain("launch type not reported")
  })

  const installation = (login: string, type: string, extra: Partial<InstallationInfo> = {}): InstallationInfo => ({
    id: 7,
    appId: 1,
    account: { login, type },
    permissions: {},
    repositorySelection: "all",
    suspendedAt: undefined,
    htmlUrl: undefined,
    ...extra
  })

  test("installation: on the configured owner, not suspended, and an organization for org scope", () => {
    const org = { scope: { kind: "org" as const, org: "acme" } }
    expect(installationFinding(org, installation("ACME", "Organization")).verdict).toBe("ok")
    const foreign = installationFinding(org, installation("solo", "User"))
    expect(foreign.verdict).toBe("fail")
    expect(foreign.seen).toContain("not on acme")
    expect(installationFinding(org, installation("acme", "Organization", { suspendedAt: "2026-01-01T00:00:00Z" })).seen).toContain("suspended")
    expect(installationFinding({ scope: { kind: "org", org: "solo" } }, installation("solo", "User")).fix).toContain("GITHUB_REPOSITORY")
    expect(installationFinding({ scope: { kind: "repo", owner: "solo", repo: "app" } }, installation("solo", "User")).verdict).toBe("ok")
  })

  test("permissions: name what is missing and link to the App's permissions page", () => {
    const links = { permissionsPage: "https://github.com/organizations/acme/settings/apps/x/permissions", installationPage: undefined }
    expect(permissionsFinding("org", { organization_self_hosted_runners: "write", metadata: "read" }, links).verdict).toBe("ok")
    const readOnly = permissionsFinding("org", { organization_self_hosted_runners: "read", metadata: "read" }, links)
    expect(readOnly.verdict).toBe("fail")
    expect(readOnly.seen).toContain("organization_self_hosted_runners=write; has read")
    expect(readOnly.fix).toContain(links.permissionsPage)
    const repo = permissionsFinding("repo", { metadata: "read" }, links)
    expect(repo.seen).toContain("Administration: Read and write")
    // The org permission does not help a repository runner, and vice versa.
    expect(permissionsFinding("repo", { organization_self_hosted_runners: "write", metadata: "read" }, links).verdict).toBe("fail")
    expect(permissionsFinding("org", { administration: "write", metadata: "read" }, links).verdict).toBe("fail")
  })

  test("report: checks in a fixed order, summary, ok only without failures", () => {
    const r = (id: CheckId, verdict: CheckResult["verdict"]): CheckResult => ({ id, title: id, verdict, seen: "s", fix: null, needs: [] })
    const report = makeReport([r("docker", "warn"), r("config", "ok"), r("secrets", "skip")])
    expect(report.checks.map((c) => c.id)).toEqual(["secrets", "config", "docker"])
    expect(report.summary).toEqual({ ok: 1, warn: 1, fail: 0, skip: 1 })
    expect(report.ok).toBe(true)
    expect(makeReport([r("docker", "fail")]).ok).toBe(false)
  })

  test("table: fixes under warnings and failures, colour only when asked", () => {
    const report = makeReport([
      { id: "config", title: "Configuration", verdict: "ok", seen: "fine", fix: null, needs: [] },
      { id: "docker", title: "Docker", verdict: "fail", seen: "no daemon", fix: "start the sidecar", needs: [] },
      { id: "runner-version", title: "Runner version", verdict: "skip", seen: "skipped (needs runner-files)", fix: null, needs: ["runner-files"] }
    ])
    const plain = renderTable(report, { color: false, width: 100 })
    expect(plain).not.toContain("\x1b[")
    expect(plain).toMatch(/Docker\s+FAIL\s+no daemon\n\s+fix: start the sidecar/)
    expect(plain).toContain("1 failed — 1 ok, 0 warnings, 1 failed, 1 skipped")
    expect(renderTable(report, { color: true, width: 100 })).toContain("\x1b[31m")
    // Long text wraps to the width.
    const long = makeReport([{ id: "config", title: "Configuration", verdict: "ok", seen: "word ".repeat(100), fix: null, needs: [] }])
    expect(renderTable(long, { color: false, width: 80 }).split("\n").every((l) => l.length <= 80)).toBe(true)
  })

  test("local checks still run when only GitHub settings are wrong", () => {
    const env = { GITHUB_REPOSITORY: "a/b", RUNNER_DIR: "/opt/runner", DOCKER_MODE: "none" }
    const local = localSettings(env, {}, [
      { setting: "GITHUB_OWNER", problem: "x" },
      { setting: "GITHUB_REPOSITORY", problem: "x" },
      { setting: "GITHUB_APP_ID", problem: "x" }
    ])
    expect(local?.runner.dir).toBe("/opt/runner")
    expect(local?.docker.mode).toBe("none")
    expect(localSettings({ RUNNER_LABELS: "," }, {}, [{ setting: "RUNNER_LABELS", problem: "x" }])).toBeUndefined()
  })
})

// =============================================================================================
// Through the binary
// =============================================================================================

let world: World
let moto: Moto
let runner: ReturnType<typeof standInRunnerDir>
beforeAll(async () => {
  ;[world, moto] = await Promise.all([startWorld(), startMoto()])
})
afterAll(async () => {
  await Promise.all([world.github.stop(), moto.stop()])
})
beforeEach(() => {
  world.github.reset()
  runner = standInRunnerDir()
  writeFileSync(join(runner.dir, ".runner-version"), "2.338.0\n")
})
afterEach(() => {
  // Doctor only looks: it never registers a runner.
  expect(world.github.runners()).toEqual([])
  runner.cleanup()
})

type EnvVars = Record<string, string | undefined>
const repoEnv = (): EnvVars => ({ ...world.repoEnv, RUNNER_DIR: runner.dir, GHR_RUNNER_LATEST_KNOWN: "2.338.0" })
const orgEnv = (): EnvVars => ({ ...world.orgEnv, RUNNER_DIR: runner.dir, GHR_RUNNER_LATEST_KNOWN: "2.338.0" })

const doctor = async (env: Record<string, string | undefined>, args: ReadonlyArray<string> = ["--json"]) => {
  const result = await runGhr(["doctor", ...args], { env, timeoutMs: 30_000 })
  return { result, report: args.includes("--json") ? parseReport(result) : undefined }
}

const parseReport = (result: GhrResult): Report => {
  try {
    return JSON.parse(result.stdout) as Report
  } catch {
    throw new Error(`doctor printed no JSON report (exit ${result.exitCode}):\n${result.stdout}\n${result.stderr}`)
  }
}

const check = (report: Report | undefined, id: CheckId): CheckResult => {
  const found = report?.checks.find((c) => c.id === id)
  if (found === undefined) throw new Error(`no ${id} check in ${JSON.stringify(report)}`)
  return found
}

const verdicts = (report: Report | undefined) => Object.fromEntries((report?.checks ?? []).map((c) => [c.id, c.verdict]))

describe("doctor: a healthy setup", () => {
  test("repository scope: every check ok (or not applicable), exit 0, stable JSON shape", async () => {
    const { result, report } = await doctor(repoEnv())
    expect(result.exitCode).toBe(0)
    expect(verdicts(report)).toEqual({
      secrets: "skip", config: "ok", "private-key": "ok", app: "ok", clock: "ok", installation: "ok", permissions: "ok",
      "runner-group": "skip", repository: "ok", "rate-limit": "ok", docker: "ok", ecs: "skip", "runner-files": "ok",
      "runner-version": "ok", "work-dir": "ok"
    })
    expect(Object.keys(report!)).toEqual(["format", "ghrVersion", "ok", "summary", "checks"])
    expect(report!.format).toBe(1)
    expect(report!.ok).toBe(true)
    expect(Object.keys(report!.summary)).toEqual(["ok", "warn", "fail", "skip"])
    expect(report!.checks.map((c) => c.id)).toEqual([...checkIds])
    for (const c of report!.checks) {
      expect(Object.keys(c)).toEqual(["id", "title", "verdict", "seen", "fix", "needs"])
      expect(typeof c.seen).toBe("string")
    }
    expect(check(report, "app").seen).toContain(`App ${APP_ID}`)
    expect(check(report, "installation").seen).toContain(`installation ${REPO_INSTALLATION} on solo`)
    // Only reads: the App, the installation, one token, the repository and the rate limit.
    expect(world.github.calls.map((c) => `${c.method} ${c.route}`)).toEqual([
      "GET /app",
      "GET /app/installations/{installation_id}",
      "POST /app/installations/{installation_id}/access_tokens",
      "GET /repos/{owner}/{repo}",
      "GET /rate_limit"
    ])
  })

  test("organization scope with a named runner group", async () => {
    const { result, report } = await doctor({ ...orgEnv(), RUNNER_GROUP: "linux-docker" })
    expect(result.exitCode).toBe(0)
    expect(check(report, "runner-group")).toMatchObject({ verdict: "ok" })
    expect(check(report, "runner-group").seen).toContain("id 7")
    expect(check(report, "repository").verdict).toBe("skip")
    expect(check(report, "installation").seen).toContain(`installation ${ORG_INSTALLATION} on acme`)
  })

  test("the table: one row per check, no log lines, no colour when not on a TTY", async () => {
    const { result } = await doctor(repoEnv(), [])
    expect(result.exitCode).toBe(0)
    for (const title of ["Configuration", "GitHub App", "Permissions", "Clock skew", "Docker", "Runner files", "Work dir & disk"]) {
      expect(result.stdout).toContain(title)
    }
    expect(result.stdout).toContain("no failures")
    expect(result.stdout).not.toContain("\x1b[")
    expect(result.records).toEqual([])
    expect(result.stdout).not.toContain('"event"')
  })

  test("a JIT runner task: no App key, the GitHub checks do not apply, the clock is still checked", async () => {
    const { result, report } = await doctor({
      GITHUB_OWNER: "solo", GITHUB_REPOSITORY: "app", GITHUB_API_URL: world.github.url, ACTIONS_RUNNER_INPUT_JITCONFIG: "eyJqaXQiOiJzZWNyZXQtY29uZmlnLXZhbHVlIn0=",
      DOCKER_MODE: "none", RUNNER_DIR: runner.dir
    })
    expect(result.exitCode).toBe(0)
    expect(check(report, "app").verdict).toBe("skip")
    expect(check(report, "app").seen).toContain("JIT config")
    expect(check(report, "clock").verdict).toBe("ok")
    expect(result.stdout).not.toContain("eyJqaXQiOiJzZWNyZXQtY29uZmlnLXZhbHVlIn0=")
  })
})

describe("doctor: secrets", () => {
  let count = 0
  const secret = (value: string) => createSecret(moto.endpoint, `ghr/doctor-${++count}`, value)
  const withoutCredentials = () => {
    const { GITHUB_APP_ID: _a, GITHUB_APP_INSTALLATION_ID: _i, GITHUB_APP_PRIVATE_KEY: _k, ...env } = repoEnv()
    return { ...moto.env, ...env }
  }

  test("ok: App and config secrets readable and well-formed; their settings are used", async () => {
    const appArn = await secret(JSON.stringify({ app_id: APP_ID, installation_id: REPO_INSTALLATION, private_key: world.key.privateKeyPem }))
    const configArn = await secret(JSON.stringify({ runner_labels: ["from-secret"] }))
    const { result, report } = await doctor({ ...withoutCredentials(), GHR_APP_SECRET: appArn, GHR_CONFIG_SECRET: configArn })
    expect(result.exitCode).toBe(0)
    expect(check(report, "secrets").verdict).toBe("ok")
    expect(check(report, "secrets").seen).toContain("keys app_id, installation_id, private_key")
    expect(check(report, "config").seen).toContain("labels from-secret")
    expect(check(report, "app").verdict).toBe("ok")
  })

  test("fail: the App secret lacks a key — named; config and GitHub checks skipped, local checks skipped too", async () => {
    const arn = await secret(JSON.stringify({ app_id: APP_ID, private_key: world.key.privateKeyPem }))
    const { result, report } = await doctor({ ...withoutCredentials(), GHR_APP_SECRET: arn })
    expect(result.exitCode).toBe(1)
    expect(check(report, "secrets")).toMatchObject({ verdict: "fail" })
    expect(check(report, "secrets").seen).toContain('no "installation_id" key')
    expect(check(report, "config")).toMatchObject({ verdict: "skip", needs: ["secrets"] })
    expect(check(report, "app")).toMatchObject({ verdict: "skip", needs: ["secrets"] })
    expect(world.github.calls).toHaveLength(0)
  })

  test("fail: a secret that does not exist, and one that is not JSON, are both reported", async () => {
    const notJson = await secret("plain text")
    const { result, report } = await doctor({ ...withoutCredentials(), GHR_APP_SECRET: "ghr/missing", GHR_CONFIG_SECRET: notJson })
    expect(result.exitCode).toBe(1)
    const secrets = check(report, "secrets")
    expect(secrets.seen).toContain("GHR_APP_SECRET=ghr/missing: not-found")
    expect(secrets.seen).toContain("not-json")
    expect(secrets.fix).toContain("AWS_REGION")
  })
})

describe("doctor: configuration", () => {
  test("fail: every problem listed; GitHub checks skipped (needs config), local checks still run", async () => {
    const { GITHUB_OWNER: _, ...env } = repoEnv()
    const { result, report } = await doctor({ ...env, GITHUB_REPOSITORY: "solo/app", GITHUB_APP_INSTALLATION_ID: "abc" })
    expect(result.exitCode).toBe(1)
    const config = check(report, "config")
    expect(config.verdict).toBe("fail")
    for (const setting of ["GITHUB_OWNER", "GITHUB_REPOSITORY", "GITHUB_APP_INSTALLATION_ID"]) expect(config.seen).toContain(setting)
    expect(config.seen).toContain("3 problems")
    for (const id of ["app", "installation", "permissions", "clock", "rate-limit"] as const) {
      expect(check(report, id)).toMatchObject({ verdict: "skip", needs: ["config"] })
    }
    expect(check(report, "runner-files").verdict).toBe("ok")
    expect(check(report, "docker").verdict).toBe("ok")
    expect(world.github.calls).toHaveLength(0)
  })
})

describe("doctor: private key and App", () => {
  test("fail: a key that is not RSA", async () => {
    const { result, report } = await doctor({ ...repoEnv(), GITHUB_APP_PRIVATE_KEY: generateEcKey() })
    expect(result.exitCode).toBe(1)
    expect(check(report, "private-key").verdict).toBe("fail")
    expect(check(report, "private-key").seen).toContain("RSA")
  })

  test("fail: a valid RSA key of another App — GitHub rejects the JWT (401); later checks skipped", async () => {
    const { result, report } = await doctor({ ...repoEnv(), GITHUB_APP_PRIVATE_KEY: generateAppKey().privateKeyPem })
    expect(result.exitCode).toBe(1)
    expect(check(report, "private-key").verdict).toBe("ok")
    const app = check(report, "app")
    expect(app.verdict).toBe("fail")
    expect(app.seen).toContain("HTTP 401")
    expect(app.fix).toContain("private key")
    for (const id of ["installation", "permissions", "repository", "rate-limit"] as const) {
      expect(check(report, id)).toMatchObject({ verdict: "skip", needs: ["app"] })
    }
    // The clock is still checked, from an unauthenticated request.
    expect(check(report, "clock").verdict).toBe("ok")
  })

  test("fail: an App ID no App has", async () => {
    const { report } = await doctor({ ...repoEnv(), GITHUB_APP_ID: "999" })
    expect(check(report, "app").seen).toContain("Integration not found")
    expect(check(report, "app").fix).toContain("GITHUB_APP_ID")
  })

  test("fail: App ID and client ID of different Apps", async () => {
    const { result, report } = await doctor({ ...repoEnv(), GITHUB_APP_CLIENT_ID: "Iv23liSomeOtherApp" })
    expect(result.exitCode).toBe(1)
    expect(check(report, "app").seen).toContain(`client ID ${CLIENT_ID}`)
    expect(check(report, "app").seen).toContain("GITHUB_APP_CLIENT_ID is Iv23liSomeOtherApp")
  })

  test("fail: GitHub unreachable — bounded, and said so", async () => {
    const started = Date.now()
    const { result, report } = await doctor({ ...repoEnv(), GITHUB_API_URL: "http://127.0.0.1:9" })
    expect(result.exitCode).toBe(1)
    expect(check(report, "app").seen).toContain("could not reach http://127.0.0.1:9")
    expect(check(report, "clock").verdict).toBe("warn")
    expect(Date.now() - started).toBeLessThan(15_000)
  })
})

describe("doctor: clock skew against GitHub's Date header", () => {
  const skewed = async (seconds: number) => {
    const github = await startFakeGitHub({
      apps: [{ id: APP_ID, clientId: CLIENT_ID, slug: "ghr-test", publicKeyPem: world.key.publicKeyPem }],
      installations: [{ id: REPO_INSTALLATION, appId: APP_ID, account: { login: "solo", type: "User" }, permissions: { administration: "write", metadata: "read" }, repositories: ["app"] }],
      clockSkewSeconds: seconds
    })
    try {
      return { ...(await doctor({ ...repoEnv(), GITHUB_URL: github.url, GITHUB_API_URL: github.url })), calls: github.calls }
    } finally {
      await github.stop()
    }
  }

  test("warn: a minute behind GitHub — the JWT is re-signed with GitHub's time, the rest passes", async () => {
    const { result, report, calls } = await skewed(-60)
    expect(result.exitCode).toBe(0)
    expect(check(report, "clock").verdict).toBe("warn")
    expect(check(report, "clock").seen).toMatch(/(59|60|61) s ahead/)
    expect(check(report, "app").verdict).toBe("ok")
    expect(calls[0]?.status).toBe(401)
  })

  test("fail: more than 5 minutes off", async () => {
    const { result, report } = await skewed(400)
    expect(result.exitCode).toBe(1)
    expect(check(report, "clock").verdict).toBe("fail")
    expect(check(report, "clock").fix).toContain("NTP")
  })
})

describe("doctor: installation, permissions, group, repository, rate limit", () => {
  test("fail: the installation belongs to another account", async () => {
    const { result, report } = await doctor({ ...orgEnv(), GITHUB_APP_INSTALLATION_ID: String(REPO_INSTALLATION) })
    expect(result.exitCode).toBe(1)
    const installation = check(report, "installation")
    expect(installation.verdict).toBe("fail")
    expect(installation.seen).toContain("on solo (User)")
    expect(installation.seen).toContain("not on acme (GITHUB_OWNER)")
    expect(installation.fix).toContain("ghr app secret --owner acme")
    expect(check(report, "permissions")).toMatchObject({ verdict: "skip", needs: ["installation"] })
  })

  test("fail: no such installation", async () => {
    const { report } = await doctor({ ...repoEnv(), GITHUB_APP_INSTALLATION_ID: "31337" })
    expect(check(report, "installation").seen).toContain("no installation 31337")
    expect(check(report, "installation").fix).toContain("GITHUB_APP_INSTALLATION_ID")
  })

  test("fail: a missing permission is named, with the App's settings page", async () => {
    const { result, report } = await doctor({ ...orgEnv(), GITHUB_OWNER: "readonly-org", GITHUB_APP_INSTALLATION_ID: String(NO_PERMISSION_INSTALLATION) })
    expect(result.exitCode).toBe(1)
    const permissions = check(report, "permissions")
    expect(permissions.verdict).toBe("fail")
    expect(permissions.seen).toContain("Self-hosted runners: Read and write")
    expect(permissions.seen).toContain("organization_self_hosted_runners=write; has none")
    expect(permissions.fix).toContain(`${world.github.url}/organizations/acme/settings/apps/ghr-test/permissions`)
    expect(check(report, "runner-group")).toMatchObject({ verdict: "skip", needs: ["permissions"] })
  })

  test("fail: the runner group does not exist; the existing ones are listed", async () => {
    const { result, report } = await doctor({ ...orgEnv(), RUNNER_GROUP: "gpu-fleet" })
    expect(result.exitCode).toBe(1)
    const group = check(report, "runner-group")
    expect(group.verdict).toBe("fail")
    expect(group.seen).toContain('no runner group named "gpu-fleet"')
    expect(group.seen).toContain("linux-docker")
  })

  test("fail: a repository the installation cannot access", async () => {
    const { result, report } = await doctor({ ...repoEnv(), GITHUB_REPOSITORY: "secret-project" })
    expect(result.exitCode).toBe(1)
    const repository = check(report, "repository")
    expect(repository.verdict).toBe("fail")
    expect(repository.seen).toContain("HTTP 404")
    expect(repository.fix).toContain("Repository access")
    expect(check(report, "permissions").verdict).toBe("ok")
  })

  test("fail: the installation's rate limit is exhausted", async () => {
    const reset = Math.floor(Date.now() / 1000) + 1800
    const core = { limit: 5000, remaining: 0, reset, used: 5000 }
    world.github.failNext("GET /rate_limit", {
      status: 200,
      body: { resources: { core, search: { limit: 30, remaining: 30, reset, used: 0 }, graphql: { limit: 5000, remaining: 5000, reset, used: 0 } }, rate: core }
    })
    const { result, report } = await doctor(repoEnv())
    expect(result.exitCode).toBe(1)
    expect(check(report, "rate-limit")).toMatchObject({ verdict: "fail" })
    expect(check(report, "rate-limit").seen).toContain("0 of 5000")
  })
})

describe("doctor: Docker and ECS", () => {
  test("ok: the daemon answers /_ping; fail: nothing at DOCKER_HOST", async () => {
    const docker = await startDockerPing()
    try {
      const up = await doctor({ ...repoEnv(), DOCKER_MODE: "dind", DOCKER_HOST: docker.dockerHost })
      expect(check(up.report, "docker").verdict).toBe("ok")
      expect(up.result.exitCode).toBe(0)
    } finally {
      await docker.stop()
    }
    const down = await doctor({ ...repoEnv(), DOCKER_MODE: "dind", DOCKER_HOST: docker.dockerHost })
    expect(down.result.exitCode).toBe(1)
    expect(check(down.report, "docker").verdict).toBe("fail")
    expect(check(down.report, "docker").fix).toContain("dind sidecar")
  })

  /** A stand-in ECS task metadata endpoint v4, answering /task like ECS does for the launch type. */
  const startMetadata = (launchType: "FARGATE" | "EC2" | "MANAGED_INSTANCES") => {
    const taskArn = "arn:aws:ecs:us-east-1:123456789012:task/ghr/158d1c8083dd49d6b527399fd6414f5c"
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) => {
        if (new URL(req.url).pathname !== "/v4/158d1c8083dd49d6b527399fd6414f5c-1234567890/task") return new Response("not found", { status: 404 })
        return Response.json({
          Cluster: "arn:aws:ecs:us-east-1:123456789012:cluster/ghr",
          TaskARN: taskArn,
          Family: "ghr-runner",
          Revision: "3",
          DesiredStatus: "RUNNING",
          KnownStatus: "RUNNING",
          Limits: { CPU: 2, Memory: 4096 },
          PullStartedAt: "2026-01-01T00:00:01.000Z",
          PullStoppedAt: "2026-01-01T00:00:31.000Z",
          AvailabilityZone: "us-east-1a",
          LaunchType: launchType,
          ...(launchType === "FARGATE"
            ? { EphemeralStorageMetrics: { Utilized: 1024, Reserved: 20496 }, ClockDrift: { ClockErrorBound: 0.4, ReferenceTimestamp: "2026-01-01T00:00:00Z", ClockSynchronizationStatus: "SYNCHRONIZED" } }
            : { VPCID: "vpc-0123456789abcdef0" }),
          Containers: ["runner", "dind"].map((name) => ({
            DockerId: `158d1c8083dd49d6b527399fd6414f5c-${name}`,
            Name: name,
            DockerName: name,
            Image: `123456789012.dkr.ecr.us-east-1.amazonaws.com/ghr-${name}:latest`,
            DesiredStatus: "RUNNING",
            KnownStatus: "RUNNING",
            Type: "NORMAL"
          }))
        })
      }
    })
    return { uri: `http://127.0.0.1:${server.port}/v4/158d1c8083dd49d6b527399fd6414f5c-1234567890`, stop: () => server.stop(true) }
  }

  test("fail: FARGATE with DOCKER_MODE=dind — launch type and capacity reported, and why it cannot work", async () => {
    const metadata = startMetadata("FARGATE")
    const docker = await startDockerPing()
    try {
      const { result, report } = await doctor({ ...repoEnv(), DOCKER_MODE: "dind", DOCKER_HOST: docker.dockerHost, ECS_CONTAINER_METADATA_URI_V4: metadata.uri })
      expect(result.exitCode).toBe(1)
      const ecs = check(report, "ecs")
      expect(ecs.verdict).toBe("fail")
      expect(ecs.seen).toContain("FARGATE in us-east-1a")
      expect(ecs.seen).toContain("2 vCPU / 4096 MiB")
      expect(ecs.seen).toContain("containers: runner, dind")
      expect(ecs.seen).toContain("image pull took 30 s")
      expect(ecs.seen).toContain("cannot work on Fargate")
      expect(ecs.fix).toContain("ManagedInstances")
    } finally {
      await Promise.all([metadata.stop(), docker.stop()])
    }
  })

  test("ok: MANAGED_INSTANCES with dind, and FARGATE without Docker", async () => {
    const managed = startMetadata("MANAGED_INSTANCES")
    const fargate = startMetadata("FARGATE")
    const docker = await startDockerPing()
    try {
      const withDind = await doctor({ ...repoEnv(), DOCKER_MODE: "dind", DOCKER_HOST: docker.dockerHost, ECS_CONTAINER_METADATA_URI_V4: managed.uri })
      expect(check(withDind.report, "ecs")).toMatchObject({ verdict: "ok" })
      expect(check(withDind.report, "ecs").seen).toContain("MANAGED_INSTANCES")
      const none = await doctor({ ...repoEnv(), DOCKER_MODE: "none", ECS_CONTAINER_METADATA_URI_V4: fargate.uri })
      expect(check(none.report, "ecs").verdict).toBe("ok")
      expect(none.result.exitCode).toBe(0)
    } finally {
      await Promise.all([managed.stop(), fargate.stop(), docker.stop()])
    }
  })

  test("warn: the metadata endpoint does not answer", async () => {
    const { report } = await doctor({ ...repoEnv(), ECS_CONTAINER_METADATA_URI_V4: "http://127.0.0.1:9/v4/x" })
    expect(check(report, "ecs").verdict).toBe("warn")
  })
})

describe("doctor: runner files, version, work dir", () => {
  test("fail: no runner at RUNNER_DIR; the version check is skipped", async () => {
    const empty = mkdtempSync(join(tmpdir(), "ghr-empty-"))
    try {
      const { result, report } = await doctor({ ...repoEnv(), RUNNER_DIR: empty })
      expect(result.exitCode).toBe(1)
      expect(check(report, "runner-files").seen).toContain("run.sh and config.sh are missing")
      expect(check(report, "runner-version")).toMatchObject({ verdict: "skip", needs: ["runner-files"] })
    } finally {
      rmSync(empty, { recursive: true, force: true })
    }
  })

  test("warn: bin/Runner.Listener reports a release older than GHR_RUNNER_LATEST_KNOWN (a warning keeps exit 0)", async () => {
    mkdirSync(join(runner.dir, "bin"))
    writeFileSync(join(runner.dir, "bin", "Runner.Listener"), "#!/bin/sh\n[ \"$1\" = --version ] && echo 2.330.0\n")
    chmodSync(join(runner.dir, "bin", "Runner.Listener"), 0o755)
    const { result, report } = await doctor(repoEnv())
    expect(result.exitCode).toBe(0)
    const version = check(report, "runner-version")
    expect(version.verdict).toBe("warn")
    expect(version.seen).toContain("2.330.0 is older than the latest known release 2.338.0")
    expect(version.fix).toContain("deprecated")
    expect(check(report, "runner-files").seen).toContain("bin/Runner.Listener")
  })

  test("skip: without GHR_RUNNER_LATEST_KNOWN the version is shown, not compared", async () => {
    const { report } = await doctor({ ...repoEnv(), GHR_RUNNER_LATEST_KNOWN: undefined })
    expect(check(report, "runner-version")).toMatchObject({ verdict: "skip" })
    expect(check(report, "runner-version").seen).toContain("runner 2.338.0")
  })

  test("fail: the work dir cannot be written", async () => {
    writeFileSync(join(runner.dir, "a-file"), "")
    const { result, report } = await doctor({ ...repoEnv(), RUNNER_WORK_DIR: "a-file/_work" })
    expect(result.exitCode).toBe(1)
    expect(check(report, "work-dir").verdict).toBe("fail")
    expect(check(report, "work-dir").seen).toContain("not writable")
  })
})

describe("doctor: never prints a secret", () => {
  test("App key (from Secrets Manager or misplaced in a variable), installation tokens and a GitHub token appear in neither JSON nor the table", async () => {
    const key = world.key.privateKeyPem
    const arn = await createSecret(moto.endpoint, "ghr/doctor-redaction", JSON.stringify({ app_id: APP_ID, installation_id: REPO_INSTALLATION, private_key: key }))
    const { GITHUB_APP_ID: _a, GITHUB_APP_INSTALLATION_ID: _i, GITHUB_APP_PRIVATE_KEY: _k, ...env } = repoEnv()
    const outputs: Array<string> = []
    for (const args of [["--json"], []]) {
      const { result } = await doctor({ ...moto.env, ...env, GHR_APP_SECRET: arn, GITHUB_TOKEN: "ghp_0123456789abcdefghijklmnopqrstuvwxyz" }, args)
      expect(result.exitCode).toBe(0)
      outputs.push(result.stdout + result.stderr)
    }
    // Wrong settings that make messages quote values: the key pasted into the App ID.
    const { result } = await doctor({ ...repoEnv(), GITHUB_APP_ID: key, GITHUB_APP_PRIVATE_KEY: key.replace(/\n/g, "\\n") })
    expect(result.exitCode).toBe(1)
    outputs.push(result.stdout + result.stderr)

    const tokens = world.github.issuedSecrets()
    expect(tokens.length).toBeGreaterThan(0)
    const keyLines = key.split("\n").filter((l) => l.length >= 16 && !l.startsWith("-----"))
    for (const output of outputs) {
      for (const line of keyLines) expect(output).not.toContain(line)
      for (const token of tokens) expect(output).not.toContain(token)
      expect(output).not.toContain("ghp_0123456789abcdefghijklmnopqrstuvwxyz")
      expect(output).not.toContain("PRIVATE KEY-----\n")
    }
  })
})
