/**
 * `ghr run` end to end through the compiled binary: the fake GitHub over 127.0.0.1, the stand-in
 * actions runner at RUNNER_DIR, and a stand-in Docker daemon on a unix socket.
 */
import { describe, expect, test } from "bun:test"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { ExitCode } from "../src/Errors.ts"
import { runGhr, spawnGhr, startDockerPing } from "./support/ghr.ts"
import { freePort } from "./support/ports.ts"
import { useRunnerWorld } from "./support/world.ts"

const context = useRunnerWorld()

const runnerEnv = () => ({ RUNNER_DIR: context.runner.dir, STANDIN_RECORD_DIR: context.runner.recordDir })
const events = (records: ReadonlyArray<Record<string, unknown>>) => records.map((r) => r["event"]).filter((e) => e !== undefined && e !== "runner.output")
const recorded = (kind: "env" | "argv", script = "run") =>
  readdirSync(context.runner.recordDir)
    .filter((f) => f.startsWith(`${script}-`) && f.endsWith(`.${kind}`))
    .map((f) => readFileSync(join(context.runner.recordDir, f), "utf8"))
const githubRoutes = () => context.world.github.calls.filter((c) => !c.route.startsWith("/_fake")).map((c) => `${c.method} ${c.route} ${c.status}`)

describe("ghr run: lifecycle", () => {
  test("repo scope, JIT: token → JIT → runner runs the job → runner deleted; exit 0", async () => {
    const result = await runGhr(["run"], { env: { ...context.world.repoEnv, ...runnerEnv(), STANDIN_JOB_SECONDS: "0.2" } })
    expect(result.exitCode).toBe(0)
    expect(events(result.records)).toEqual([
      "config.loaded", "github.token", "runner.registered", "runner.started", "job.started", "job.completed", "runner.exited", "runner.deleted"
    ])
    expect(githubRoutes()).toEqual([
      "POST /app/installations/{installation_id}/access_tokens 201",
      "POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig 201",
      // The stand-in completed its job, so GitHub already removed the ephemeral runner.
      "DELETE /repos/{owner}/{repo}/actions/runners/{runner_id} 404"
    ])
    const jitRequest = context.world.github.calls.find((c) => c.route.endsWith("generate-jitconfig"))!.requestBody as Record<string, unknown>
    expect(jitRequest).toMatchObject({ runner_group_id: 1, labels: ["self-hosted", "linux", "x64"], work_folder: "_work" })
    expect(String(jitRequest["name"])).toMatch(/^ghr-[0-9a-z]{12}$/)
  })

  test("the runner gets the JIT config in its environment, never in argv, and no credential at all", async () => {
    const result = await runGhr(["run"], {
      env: { ...context.world.repoEnv, ...runnerEnv(), GHR_CONFIG_SECRET: undefined, GITHUB_TOKEN: "ghp_shouldnotleak000000000000", AWS_ACCESS_KEY_ID: "AKIAEXAMPLE" }
    })
    expect(result.exitCode).toBe(0)
    const [env] = recorded("env")
    const [argv] = recorded("argv")
    expect(env).toContain("ACTIONS_RUNNER_INPUT_JITCONFIG=")
    expect(argv).toBe("")
    for (const name of ["GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_INSTALLATION_ID", "GITHUB_TOKEN", "AWS_ACCESS_KEY_ID"]) {
      expect(env).not.toContain(`${name}=`)
    }
    expect(env).not.toContain("PRIVATE KEY")
  })

  test("org scope with a named runner group", async () => {
    const result = await runGhr(["run"], { env: { ...context.world.orgEnv, ...runnerEnv(), RUNNER_GROUP: "linux-docker", RUNNER_LABELS: "gpu,linux" } })
    expect(result.exitCode).toBe(0)
    expect(githubRoutes()).toContain("GET /orgs/{org}/actions/runner-groups 200")
    const jit = context.world.github.calls.find((c) => c.route === "/orgs/{org}/actions/runners/generate-jitconfig")!
    expect(jit.requestBody).toMatchObject({ runner_group_id: 7, labels: ["gpu", "linux"] })
  })

  test("registration mode: config.sh with the token in env → run.sh → config.sh remove", async () => {
    const result = await runGhr(["run"], { env: { ...context.world.repoEnv, ...runnerEnv(), RUNNER_MODE: "registration" } })
    expect(result.exitCode).toBe(0)
    const log = readFileSync(join(context.runner.recordDir, "events.log"), "utf8")
    expect(log).toMatch(/config\.register[\s\S]*run\.start[\s\S]*config\.remove/)
    const configArgv = recorded("argv", "config").find((a) => a.includes("--url"))
    expect(configArgv).toContain("--ephemeral")
    expect(recorded("argv", "config")).toContain("remove\n")
    expect(configArgv).not.toMatch(/token/i)
    expect(recorded("env", "config").some((e) => e.includes("ACTIONS_RUNNER_INPUT_TOKEN="))).toBe(true)
    expect(githubRoutes()).toContain("POST /repos/{owner}/{repo}/actions/runners/registration-token 201")
    expect(githubRoutes()).toContain("POST /repos/{owner}/{repo}/actions/runners/remove-token 201")
  })

  test("a JIT config handed over by the controller: no App credentials, no GitHub call", async () => {
    // What the controller would do: generate the JIT config with the App's token.
    const token = await mintToken()
    const response = await fetch(`${context.world.github.url}/repos/solo/app/actions/runners/generate-jitconfig`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "from-controller", runner_group_id: 1, labels: ["self-hosted"] })
    })
    const { encoded_jit_config } = await response.json() as { encoded_jit_config: string }
    const before = githubRoutes().length
    const result = await runGhr(["run"], {
      env: { GITHUB_OWNER: "solo", GITHUB_REPOSITORY: "app", ACTIONS_RUNNER_INPUT_JITCONFIG: encoded_jit_config, DOCKER_MODE: "none", GHR_HEALTH_PORT: "0", ...runnerEnv() }
    })
    expect(result.exitCode).toBe(0)
    expect(githubRoutes()).toHaveLength(before)
    expect(result.stdout).not.toContain(encoded_jit_config)
  })

  test("waits for the Docker sidecar before registering", async () => {
    const docker = await startDockerPing(700)
    try {
      const result = await runGhr(["run"], { env: { ...context.world.repoEnv, ...runnerEnv(), DOCKER_MODE: "dind", DOCKER_HOST: docker.dockerHost, DOCKER_WAIT_SECONDS: "10" } })
      expect(result.exitCode).toBe(0)
      const order = events(result.records)
      expect(order.indexOf("docker.ready")).toBeLessThan(order.indexOf("runner.registered"))
      expect(docker.pings()).toBeGreaterThan(1)
    } finally {
      await docker.stop()
    }
  })
})

describe("ghr run: failures always clean up", () => {
  test("SIGTERM mid-job: forwarded to the runner, runner deleted, runner's exit code propagated", async () => {
    const ghr = spawnGhr(["run"], { env: { ...context.world.repoEnv, ...runnerEnv(), STANDIN_JOB_SECONDS: "30", STANDIN_SIGTERM_EXIT_CODE: "3" } })
    await ghr.waitForEvent("runner.started")
    await waitFor(() => context.world.github.runners().some((r) => r.busy))
    ghr.proc.kill("SIGTERM")
    const result = await ghr.done
    expect(result.exitCode).toBe(3)
    expect(events(result.records)).toContain("runner.signal")
    expect(githubRoutes()).toContain("DELETE /repos/{owner}/{repo}/actions/runners/{runner_id} 204")
    expect(readFileSync(join(context.runner.recordDir, "events.log"), "utf8")).toContain("sigterm")
  })

  test("a runner that ignores SIGTERM is killed after RUNNER_STOP_TIMEOUT_SECONDS: exit 137, runner deleted", async () => {
    // A runner stuck in a job that does not react to SIGTERM (exec keeps it a single process).
    writeFileSync(join(context.runner.dir, "run.sh"), "#!/bin/bash\ntrap '' TERM\necho 'Listening for Jobs'\nexec sleep 30\n", { mode: 0o755 })
    const ghr = spawnGhr(["run"], { env: { ...context.world.repoEnv, ...runnerEnv(), RUNNER_STOP_TIMEOUT_SECONDS: "1" } })
    await ghr.waitForEvent("runner.output")
    const signalled = Date.now()
    ghr.proc.kill("SIGTERM")
    const result = await ghr.done
    expect(result.exitCode).toBe(137)
    expect(Date.now() - signalled).toBeLessThan(8_000)
    expect(result.records.find((r) => r["event"] === "runner.exited")?.["exitCode"]).toBe(137)
    expect(githubRoutes()).toContain("DELETE /repos/{owner}/{repo}/actions/runners/{runner_id} 204")
  })

  test("runner crash: runner deleted, crash exit code propagated", async () => {
    const result = await runGhr(["run"], { env: { ...context.world.repoEnv, ...runnerEnv(), STANDIN_CRASH: "1" } })
    expect(result.exitCode).toBe(3)
    expect(githubRoutes()).toContain("DELETE /repos/{owner}/{repo}/actions/runners/{runner_id} 204")
  })

  test("a failed job's exit code is ghr's", async () => {
    const result = await runGhr(["run"], { env: { ...context.world.repoEnv, ...runnerEnv(), STANDIN_EXIT_CODE: "2" } })
    expect(result.exitCode).toBe(2)
  })

  test("Docker never ready: DockerNotReady with the Fargate hint, exit 75, nothing registered", async () => {
    const started = Date.now()
    const result = await runGhr(["run"], {
      env: { ...context.world.repoEnv, ...runnerEnv(), DOCKER_MODE: "dind", DOCKER_HOST: `unix://${context.runner.recordDir}/absent.sock`, DOCKER_WAIT_SECONDS: "2" }
    })
    expect(result.exitCode).toBe(ExitCode.dockerNotReady)
    expect(Date.now() - started).toBeLessThan(10_000)
    const failure = result.records.find((r) => r["event"] === "ghr.failed")!
    expect(failure["error"]).toBe("DockerNotReady")
    expect(String(failure["msg"])).toContain("Fargate")
    expect(githubRoutes()).toEqual([])
  })

  test("SIGTERM while waiting for Docker: exit 143, nothing registered", async () => {
    const ghr = spawnGhr(["run"], {
      env: { ...context.world.repoEnv, ...runnerEnv(), DOCKER_MODE: "dind", DOCKER_HOST: `unix://${context.runner.recordDir}/absent.sock`, DOCKER_WAIT_SECONDS: "60" }
    })
    await ghr.waitForEvent("docker.wait")
    ghr.proc.kill("SIGTERM")
    const result = await ghr.done
    expect(result.exitCode).toBe(ExitCode.sigterm)
    expect(githubRoutes()).toEqual([])
  })

  test("SIGTERM while GitHub creates the runner: the runner is deleted as soon as it exists, exit 143", async () => {
    context.world.github.failNext("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", {
      status: 503,
      headers: { "retry-after": "2" },
      body: { message: "Service Unavailable" }
    })
    const ghr = spawnGhr(["run"], { env: { ...context.world.repoEnv, ...runnerEnv() } })
    await ghr.waitForEvent("github.retry")
    ghr.proc.kill("SIGTERM")
    const result = await ghr.done
    expect(result.exitCode).toBe(ExitCode.sigterm)
    expect(githubRoutes()).toContain("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig 201")
    expect(githubRoutes()).toContain("DELETE /repos/{owner}/{repo}/actions/runners/{runner_id} 204")
    expect(events(result.records)).not.toContain("runner.started")
  })

  test("runner files missing: RunnerError naming RUNNER_DIR, exit 70, runner deleted", async () => {
    const result = await runGhr(["run"], { env: { ...context.world.repoEnv, RUNNER_DIR: join(context.runner.dir, "nope") } })
    expect(result.exitCode).toBe(ExitCode.runnerFailure)
    expect(String(result.records.find((r) => r["event"] === "ghr.failed")!["msg"])).toContain("RUNNER_DIR=")
    expect(githubRoutes()).toContain("DELETE /repos/{owner}/{repo}/actions/runners/{runner_id} 204")
  })
})

describe("ghr run: health", () => {
  test("/healthz reports the phase and `ghr health` answers 0 while running, 1 after", async () => {
    const port = await freePort()
    const ghr = spawnGhr(["run"], { env: { ...context.world.repoEnv, ...runnerEnv(), GHR_HEALTH_PORT: String(port), STANDIN_JOB_SECONDS: "30" } })
    await ghr.waitForEvent("runner.started")
    const body = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json() as { phase: string }
    expect(body.phase).toBe("running")
    const healthy = await runGhr(["health"], { env: { GHR_HEALTH_PORT: String(port) } })
    expect(healthy.exitCode).toBe(0)
    ghr.proc.kill("SIGTERM")
    await ghr.done
    const after = await runGhr(["health"], { env: { GHR_HEALTH_PORT: String(port) } })
    expect(after.exitCode).toBe(1)
    const disabled = await runGhr(["health"], { env: { GHR_HEALTH_PORT: "0" } })
    expect(disabled.exitCode).toBe(1)
    expect(disabled.stdout).toContain("0 disables it")
  })
})

const mintToken = async (): Promise<string> => {
  const { createAppAuth } = await import("@octokit/auth-app")
  const { request } = await import("@octokit/request")
  const auth = createAppAuth({
    appId: Number(context.world.repoEnv["GITHUB_APP_ID"]),
    privateKey: context.world.key.privateKeyPem,
    installationId: Number(context.world.repoEnv["GITHUB_APP_INSTALLATION_ID"]),
    request: request.defaults({ baseUrl: context.world.github.url })
  })
  return (await auth({ type: "installation" })).token
}

const waitFor = async (condition: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await Bun.sleep(25)
  }
}
