/**
 * Every input a user can get wrong, through the compiled binary: a clear message naming the
 * setting, the documented non-zero exit code, no stack trace, and no runner left registered.
 */
import { describe, expect, test } from "bun:test"
import { copyFileSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ExitCode } from "../src/Errors.ts"
import { ensureBinary, type GhrResult, runGhr } from "./support/ghr.ts"
import { generateEcKey, malformedPem } from "./support/keys.ts"
import { NO_PERMISSION_INSTALLATION, useRunnerWorld } from "./support/world.ts"

const context = useRunnerWorld()

const failure = (result: GhrResult) => {
  const record = result.records.find((r) => r["event"] === "ghr.failed")
  if (record === undefined) throw new Error(`no ghr.failed record in:\n${result.stdout}\n${result.stderr}`)
  return { msg: String(record["msg"]), error: String(record["error"]), problems: record["problems"] as Array<{ setting: string; problem: string }> | undefined }
}

/** An expected failure is one readable message, never a stack trace. */
const expectNoStackTrace = (result: GhrResult) => {
  expect(result.stdout + result.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/)
}

const run = (env: Record<string, string | undefined>) => runGhr(["run"], { env: { RUNNER_DIR: context.runner.dir, ...env } })

describe("configuration errors: exit 78, every problem named", () => {
  test("missing owner", async () => {
    const { GITHUB_OWNER: _, ...env } = context.world.repoEnv
    const result = await run(env)
    expect(result.exitCode).toBe(ExitCode.configError)
    expect(failure(result).problems?.map((p) => p.setting)).toEqual(["GITHUB_OWNER"])
    expectNoStackTrace(result)
    expect(context.world.github.calls).toHaveLength(0)
  })

  test("several problems are listed together", async () => {
    const result = await run({ ...context.world.repoEnv, GITHUB_APP_INSTALLATION_ID: "abc", RUNNER_LABELS: ",", DOCKER_HOST: "ssh://builder", DOCKER_MODE: "dind" })
    expect(result.exitCode).toBe(ExitCode.configError)
    expect(failure(result).problems?.map((p) => p.setting).sort()).toEqual(["DOCKER_HOST", "GITHUB_APP_INSTALLATION_ID", "RUNNER_LABELS"])
    expect(failure(result).msg).toContain("3 problems")
  })

  test.each([
    ["malformed PEM", { GITHUB_APP_PRIVATE_KEY: malformedPem() }, "GITHUB_APP_PRIVATE_KEY", "malformed"],
    ["PEM that is not RSA", { GITHUB_APP_PRIVATE_KEY: generateEcKey() }, "GITHUB_APP_PRIVATE_KEY", "RSA"],
    ["non-numeric installation id", { GITHUB_APP_INSTALLATION_ID: "org-install" }, "GITHUB_APP_INSTALLATION_ID", "positive whole number"],
    ["empty label list", { RUNNER_LABELS: " , " }, "RUNNER_LABELS", "is empty"],
    ["more than 100 labels", { RUNNER_LABELS: Array.from({ length: 101 }, (_, i) => `l${i}`).join(",") }, "RUNNER_LABELS", "at most 100"],
    ["label with invalid characters", { RUNNER_LABELS: "linux,has space" }, "RUNNER_LABELS", '"has space"'],
    ["name prefix too long", { RUNNER_NAME_PREFIX: "p".repeat(60) }, "RUNNER_NAME_PREFIX", "at most 51 fit"],
    ["unsupported DOCKER_HOST scheme", { DOCKER_MODE: "dind", DOCKER_HOST: "npipe:////./pipe/docker_engine" }, "DOCKER_HOST", "unix:///"],
    ["unknown RUNNER_MODE", { RUNNER_MODE: "pool" }, "RUNNER_MODE", "jit, registration"]
  ])("%s", async (_, overrides, setting, expected) => {
    const result = await run({ ...context.world.repoEnv, ...overrides })
    expect(result.exitCode).toBe(ExitCode.configError)
    const problems = failure(result).problems ?? []
    expect(problems.map((p) => p.setting)).toEqual([setting])
    expect(problems[0]!.problem).toContain(expected)
    expectNoStackTrace(result)
    expect(context.world.github.calls).toHaveLength(0)
  })

  test("runner group not found: the existing groups are listed, nothing registered", async () => {
    const result = await run({ ...context.world.orgEnv, RUNNER_GROUP: "gpu-fleet" })
    expect(result.exitCode).toBe(ExitCode.configError)
    expect(failure(result).msg).toContain('no runner group named "gpu-fleet"')
    expect(failure(result).msg).toContain("linux-docker")
    expect(context.world.github.calls.some((c) => c.route.endsWith("generate-jitconfig"))).toBe(false)
  })

  test("health port already taken", async () => {
    const blocker = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("busy") })
    try {
      const result = await run({ ...context.world.repoEnv, GHR_HEALTH_PORT: String(blocker.port) })
      expect(result.exitCode).toBe(ExitCode.configError)
      expect(failure(result).problems?.[0]?.setting).toBe("GHR_HEALTH_PORT")
    } finally {
      await blocker.stop(true)
    }
  })
})

describe("GitHub rejects the App: exit 77 with what to fix", () => {
  test("unknown App id (401)", async () => {
    const result = await run({ ...context.world.repoEnv, GITHUB_APP_ID: "777" })
    expect(result.exitCode).toBe(ExitCode.authError)
    expect(failure(result).msg).toContain("App 777")
    expectNoStackTrace(result)
  })

  test("installation not found (404)", async () => {
    const result = await run({ ...context.world.repoEnv, GITHUB_APP_INSTALLATION_ID: "424242" })
    expect(result.exitCode).toBe(ExitCode.authError)
    expect(failure(result).msg).toContain("installation 424242 was not found")
  })

  test("missing permission (403) names the permission", async () => {
    const result = await run({ ...context.world.orgEnv, GITHUB_OWNER: "readonly-org", GITHUB_APP_INSTALLATION_ID: String(NO_PERMISSION_INSTALLATION) })
    expect(result.exitCode).toBe(ExitCode.authError)
    expect(failure(result).msg).toContain("organization_self_hosted_runners=write")
    // Counted by the stack's RegistrationErrors metric.
    expect(result.records.filter((r) => r["event"] === "registration.failed")).toHaveLength(1)
    expect(failure(result).msg).toContain("Self-hosted runners: Read and write")
  })
})

describe("GitHub unreachable: bounded retries, exit 69", () => {
  test("connection refused", async () => {
    const started = Date.now()
    const result = await run({ ...context.world.repoEnv, GITHUB_API_URL: "http://127.0.0.1:9", GITHUB_API_MAX_RETRIES: "1" })
    expect(result.exitCode).toBe(ExitCode.githubUnavailable)
    expect(failure(result).msg).toContain("could not reach http://127.0.0.1:9")
    expect(Date.now() - started).toBeLessThan(10_000)
  })
})

describe("command line", () => {
  test("an unknown subcommand or flag is a usage error (64)", async () => {
    expect((await runGhr(["deploi"], { env: {} })).exitCode).toBe(ExitCode.usage)
    expect((await runGhr(["template", "--nope"], { env: {} })).exitCode).toBe(ExitCode.usage)
  })

  test("--help and --version succeed", async () => {
    const help = await runGhr(["--help"], { env: {} })
    expect(help.exitCode).toBe(0)
    expect(help.stdout).toContain("run")
    expect((await runGhr(["--version"], { env: {} })).stdout).toContain("0.1.0")
  })

  test("the binary runs from a directory with no node_modules", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ghr-bare-"))
    try {
      copyFileSync(ensureBinary(), join(dir, "ghr"))
      const template = await runGhr(["template"], { env: {}, cwd: dir, binary: join(dir, "ghr") })
      expect(template.exitCode).toBe(0)
      expect(template.stdout).toContain("AWSTemplateFormatVersion")
      const bad = await runGhr(["run"], { env: {}, cwd: dir, binary: join(dir, "ghr") })
      expect(bad.exitCode).toBe(ExitCode.configError)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
