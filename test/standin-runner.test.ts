/**
 * The stand-in actions runner (test/fixtures/runner/{config,run}.sh) against the fake GitHub API:
 * registration round trip, JIT run, crash, signals — so tests that rely on it stand on firm ground.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test"
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createSign } from "node:crypto"
import { startFakeGitHub, type FakeGitHub } from "./support/fake-github.ts"
import { generateAppKey, type TestKeyPair } from "./support/keys.ts"

const fixtures = join(import.meta.dir, "fixtures", "runner")
let key: TestKeyPair
let fake: FakeGitHub
let token: string
const dirs: string[] = []
const live: Array<ReturnType<typeof Bun.spawn>> = []

const jwt = (): string => {
  const now = Math.floor(Date.now() / 1000)
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url")
  const input = `${enc({ alg: "RS256", typ: "JWT" })}.${enc({ iat: now - 60, exp: now + 540, iss: 1 })}`
  return `${input}.${createSign("RSA-SHA256").update(input).sign(key.privateKeyPem).toString("base64url")}`
}

const api = async (method: string, path: string, body?: unknown): Promise<any> => {
  const response = await fetch(`${fake.url}${path}`, {
    method,
    headers: { authorization: `token ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  expect(response.status).toBeLessThan(300)
  const text = await response.text()
  return text === "" ? undefined : JSON.parse(text)
}

beforeAll(async () => {
  key = generateAppKey()
  fake = await startFakeGitHub({
    apps: [{ id: 1, clientId: "Iv23liStandin", slug: "ghr", publicKeyPem: key.publicKeyPem }],
    installations: [
      {
        id: 10,
        appId: 1,
        account: { login: "acme", type: "Organization" },
        permissions: { administration: "write", metadata: "read", organization_self_hosted_runners: "write" },
        repositories: ["widgets"]
      }
    ],
    runnerGroups: { acme: [{ id: 1, name: "Default" }, { id: 3, name: "ghr" }] }
  })
  const response = await fetch(`${fake.url}/app/installations/10/access_tokens`, { method: "POST", headers: { authorization: `Bearer ${jwt()}` } })
  token = ((await response.json()) as { token: string }).token
})

afterEach(() => {
  for (const p of live.splice(0)) p.kill("SIGKILL")
  fake.reset()
})

afterAll(async () => {
  await fake.stop()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

interface Workspace {
  runnerDir: string
  recordDir: string
}

const workspace = (): Workspace => {
  const root = mkdtempSync(join(tmpdir(), "ghr-standin-"))
  dirs.push(root)
  const runnerDir = join(root, "runner")
  const recordDir = join(root, "record")
  Bun.spawnSync(["mkdir", "-p", runnerDir])
  for (const script of ["run.sh", "config.sh"]) copyFileSync(join(fixtures, script), join(runnerDir, script))
  Bun.spawnSync(["chmod", "+x", join(runnerDir, "run.sh"), join(runnerDir, "config.sh")])
  return { runnerDir, recordDir }
}

const spawn = (ws: Workspace, script: "run.sh" | "config.sh", args: string[], env: Record<string, string>) => {
  const proc = Bun.spawn([join(ws.runnerDir, script), ...args], {
    cwd: ws.runnerDir,
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: ws.runnerDir, STANDIN_RECORD_DIR: ws.recordDir, ...env },
    stdout: "pipe",
    stderr: "pipe"
  })
  live.push(proc)
  return proc
}

const finish = async (proc: ReturnType<typeof spawn>, timeoutMs = 15_000) => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const code = await Promise.race([
    proc.exited,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`stand-in did not exit within ${timeoutMs} ms`)), timeoutMs)
    })
  ]).finally(() => clearTimeout(timer))
  return { code, stdout: await new Response(proc.stdout).text(), stderr: await new Response(proc.stderr).text() }
}

const run = async (ws: Workspace, script: "run.sh" | "config.sh", args: string[], env: Record<string, string> = {}) =>
  finish(spawn(ws, script, args, env))

const until = async (what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(25)
  }
}

const events = (ws: Workspace): string[] => {
  const file = join(ws.recordDir, "events.log")
  return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n") : []
}
const eventNames = (ws: Workspace): string[] => events(ws).map((line) => line.split(" ")[0]!)

const recorded = (ws: Workspace, prefix: "run" | "config", ext: "env" | "argv"): string[] =>
  readdirSync(ws.recordDir)
    .filter((f) => f.startsWith(`${prefix}-`) && f.endsWith(`.${ext}`))
    .map((f) => readFileSync(join(ws.recordDir, f), "utf8"))

const registrationArgs = (name: string, extra: string[] = []) => [
  "--url",
  `${fake.url}/acme/widgets`,
  "--name",
  name,
  "--labels",
  "gpu,big",
  "--runnergroup",
  "Default",
  "--work",
  "_work",
  "--unattended",
  "--replace",
  ...extra
]

test("registration round trip: config.sh registers, run.sh runs one job and the ephemeral runner is gone", async () => {
  const ws = workspace()
  const reg = (await api("POST", "/repos/acme/widgets/actions/runners/registration-token")).token as string
  const args = registrationArgs("standin-1", ["--ephemeral", "--disableupdate"])
  const config = await run(ws, "config.sh", args, { ACTIONS_RUNNER_INPUT_TOKEN: reg })
  expect(config.stderr).toBe("")
  expect(config.code).toBe(0)
  expect(config.stdout).toContain("√ Connected to GitHub")
  expect(config.stdout).toContain("√ Settings Saved.")

  const state = JSON.parse(readFileSync(join(ws.runnerDir, ".runner"), "utf8"))
  const [runner] = fake.runners()
  expect(state).toMatchObject({ id: runner!.id, name: "standin-1", server: fake.url, url: `${fake.url}/acme/widgets`, ephemeral: true })
  expect(runner).toMatchObject({ name: "standin-1", scope: "repo:acme/widgets", status: "offline", ephemeral: true, labels: ["self-hosted", "Linux", "X64", "gpu", "big"] })

  // the token came from the environment and was recorded with it; argv is one arg a line
  expect(recorded(ws, "config", "env")[0]).toContain(`ACTIONS_RUNNER_INPUT_TOKEN=${reg}\n`)
  expect(recorded(ws, "config", "argv")[0]).toBe(args.join("\n") + "\n")

  const again = await run(ws, "config.sh", args, { ACTIONS_RUNNER_INPUT_TOKEN: reg })
  expect(again.code).toBe(1)
  expect(again.stderr).toContain("already configured")

  const job = await run(ws, "run.sh", [], { STANDIN_JOB_SECONDS: "0" })
  expect(job.code).toBe(0)
  expect(job.stdout).toContain("√ Connected to GitHub")
  expect(job.stdout).toContain("Running job: standin")
  expect(job.stdout).toContain("Job standin completed with result: Succeeded")
  expect(fake.runners()).toEqual([])
  // like the real ephemeral runner, it removed its local configuration
  expect(existsSync(join(ws.runnerDir, ".runner"))).toBe(false)
  const remove = await run(ws, "config.sh", ["remove"], { ACTIONS_RUNNER_INPUT_TOKEN: "unused" })
  expect(remove.code).toBe(0)
  expect(remove.stdout).toContain("not configured")
  expect(eventNames(ws)).toEqual(["config.register", "run.start", "run.online", "job.start", "job.done", "run.exit", "config.remove"])
  expect(events(ws)[1]).toMatch(/^run\.start pid=\d+ mode=registration$/)
  expect(fake.calls.map((c) => c.route).filter((r) => r.startsWith("/_fake/"))).toEqual([
    "/_fake/register",
    "/_fake/runners/{runner_id}/status",
    "/_fake/runners/{runner_id}/status",
    "/_fake/runners/{runner_id}/complete"
  ])
})

test("a non-ephemeral runner keeps listening after its job; SIGTERM stops it; config.sh remove unregisters it", async () => {
  const ws = workspace()
  const reg = (await api("POST", "/orgs/acme/actions/runners/registration-token")).token as string
  const config = await run(ws, "config.sh", ["--url", `${fake.url}/acme`, "--name", "keeper", "--labels", "x", "--runnergroup", "ghr", "--unattended"], {
    ACTIONS_RUNNER_INPUT_TOKEN: reg
  })
  expect(config.code).toBe(0)
  expect(fake.runners()[0]).toMatchObject({ name: "keeper", scope: "org:acme", runnerGroupId: 3, ephemeral: false })

  const proc = spawn(ws, "run.sh", [], { STANDIN_JOB: "exit 0" })
  await until("the job to finish", () => eventNames(ws).includes("job.done"))
  await until("the runner to be idle again", () => fake.runners()[0]?.busy === false && fake.calls.filter((c) => c.route === "/_fake/runners/{runner_id}/status").length === 3)
  expect(fake.runners()[0]).toMatchObject({ status: "online", busy: false })
  proc.kill("SIGTERM")
  const stopped = await finish(proc)
  expect(stopped.code).toBe(0)
  expect(events(ws).at(-1)).toMatch(/^sigterm pid=\d+ signal=TERM phase=idle runner_id=\d+$/)
  expect(fake.runners()).toHaveLength(1)

  const rm = (await api("POST", "/orgs/acme/actions/runners/remove-token")).token as string
  const removed = await run(ws, "config.sh", ["remove"], { ACTIONS_RUNNER_INPUT_TOKEN: rm })
  expect(removed.code).toBe(0)
  expect(removed.stdout).toContain("√ Runner removed successfully")
  expect(existsSync(join(ws.runnerDir, ".runner"))).toBe(false)
  expect(fake.runners()).toEqual([])
  expect(eventNames(ws).at(-1)).toBe("config.remove")
})

test("config.sh fails like the real one: a bad token is a confusing 404, a missing url or token is refused", async () => {
  const ws = workspace()
  const bad = await run(ws, "config.sh", registrationArgs("nope"), { ACTIONS_RUNNER_INPUT_TOKEN: "AAAAEXPIREDORUNKNOWNTOKEN0000" })
  expect(bad.code).toBe(1)
  expect(bad.stderr).toContain("Http response code: NotFound from 'POST")
  expect(bad.stderr).toContain("404")
  expect(existsSync(join(ws.runnerDir, ".runner"))).toBe(false)
  expect(fake.runners()).toEqual([])
  expect(events(ws)[0]).toMatch(/^config\.register pid=\d+ name=nope result=failed status=404$/)

  const noToken = await run(ws, "config.sh", registrationArgs("nope"))
  expect(noToken.code).toBe(1)
  expect(noToken.stderr).toContain("Invalid configuration provided for token")
  const noUrl = await run(ws, "config.sh", ["--name", "x", "--token", "T"])
  expect(noUrl.code).toBe(1)
  expect(noUrl.stderr).toContain("Invalid configuration provided for url")

  // --token works as well as the environment variable
  const reg = (await api("POST", "/repos/acme/widgets/actions/runners/registration-token")).token as string
  expect((await run(ws, "config.sh", [...registrationArgs("flag"), "--token", reg])).code).toBe(0)
  expect(fake.runners().map((r) => r.name)).toEqual(["flag"])

  // remove with a registration token (not a remove token) fails and keeps the configuration
  const wrong = await run(ws, "config.sh", ["remove"], { ACTIONS_RUNNER_INPUT_TOKEN: reg })
  expect(wrong.code).toBe(1)
  expect(existsSync(join(ws.runnerDir, ".runner"))).toBe(true)

  // a runner already deleted through the API: "Does not exist", local configuration removed, exit 0
  await api("DELETE", `/repos/acme/widgets/actions/runners/${fake.runners()[0]!.id}`)
  const rm = (await api("POST", "/repos/acme/widgets/actions/runners/remove-token")).token as string
  const gone = await run(ws, "config.sh", ["remove"], { ACTIONS_RUNNER_INPUT_TOKEN: rm })
  expect(gone.code).toBe(0)
  expect(gone.stdout).toContain("Does not exist. Skipping Removing runner from the server")
  expect(existsSync(join(ws.runnerDir, ".runner"))).toBe(false)
})

test("run.sh without a configuration or with a bad JIT config exits 1", async () => {
  const ws = workspace()
  const none = await run(ws, "run.sh", [])
  expect(none.code).toBe(1)
  expect(none.stderr).toContain("Not configured")
  const bad = await run(ws, "run.sh", [], { ACTIONS_RUNNER_INPUT_JITCONFIG: Buffer.from("not json").toString("base64") })
  expect(bad.code).toBe(1)
  expect(eventNames(ws)).toEqual(["run.start", "run.error", "run.start", "run.error"])
})

test("JIT run: the job's output and result are reported, the runner is deleted, STANDIN_EXIT_CODE is the exit status", async () => {
  const ws = workspace()
  const jit = await api("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { name: "jit-1", runner_group_id: 1, labels: ["self-hosted"] })
  const proc = spawn(ws, "run.sh", [], {
    ACTIONS_RUNNER_INPUT_JITCONFIG: jit.encoded_jit_config,
    STANDIN_JOB: 'echo "job says hi"; exit 7',
    STANDIN_EXIT_CODE: "2"
  })
  const result = await finish(proc)
  expect(result.code).toBe(2)
  expect(result.stdout).toContain("job says hi")
  expect(result.stdout).toContain("Job standin completed with result: Failed")
  expect(fake.runners()).toEqual([])
  expect(events(ws).find((l) => l.startsWith("job.done"))).toMatch(/result=Failed exit=7$/)
  expect(events(ws)[0]).toMatch(/mode=jit$/)
  expect(recorded(ws, "run", "env")[0]).toContain(`ACTIONS_RUNNER_INPUT_JITCONFIG=${jit.encoded_jit_config}\n`)

  // --jitconfig works as well, and the default exit status is 0
  const jit2 = await api("POST", "/orgs/acme/actions/runners/generate-jitconfig", { name: "jit-2", runner_group_id: 3, labels: ["a"] })
  const second = await run(ws, "run.sh", ["--jitconfig", jit2.encoded_jit_config])
  expect(second.code).toBe(0)
  expect(second.stdout).toContain("completed with result: Succeeded")
  expect(fake.runners()).toEqual([])
})

test("STANDIN_CRASH=1: exit 3 right after going online; the runner stays registered", async () => {
  const ws = workspace()
  const jit = await api("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { name: "crash-1", runner_group_id: 1, labels: ["x"] })
  const result = await run(ws, "run.sh", [], { ACTIONS_RUNNER_INPUT_JITCONFIG: jit.encoded_jit_config, STANDIN_CRASH: "1" })
  expect(result.code).toBe(3)
  expect(fake.runners()).toMatchObject([{ name: "crash-1", status: "online", busy: false }])
  expect(eventNames(ws)).toEqual(["run.start", "run.online", "crash"])
})

test("SIGTERM mid-job: the job is killed, the runner goes offline but stays registered, STANDIN_SIGTERM_EXIT_CODE is the status", async () => {
  const ws = workspace()
  const jit = await api("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { name: "term-1", runner_group_id: 1, labels: ["x"] })
  const proc = spawn(ws, "run.sh", [], { ACTIONS_RUNNER_INPUT_JITCONFIG: jit.encoded_jit_config, STANDIN_JOB_SECONDS: "30", STANDIN_SIGTERM_EXIT_CODE: "143" })
  await until("the job to start", () => eventNames(ws).includes("job.start"))
  expect(fake.runners()).toMatchObject([{ name: "term-1", status: "online", busy: true }])
  const started = Date.now()
  proc.kill("SIGTERM")
  const result = await finish(proc)
  expect(Date.now() - started).toBeLessThan(3_000)
  expect(result.code).toBe(143)
  expect(result.stdout).toContain("Exiting...")
  expect(fake.runners()).toMatchObject([{ name: "term-1", status: "offline", busy: false }])
  expect(events(ws).at(-1)).toMatch(/^sigterm pid=\d+ signal=TERM phase=job runner_id=\d+$/)
  expect(eventNames(ws)).not.toContain("job.done")
})

test("SIGINT mid-job stops a STANDIN_JOB script and its children", async () => {
  const ws = workspace()
  const jit = await api("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { name: "int-1", runner_group_id: 1, labels: ["x"] })
  const marker = `${ws.runnerDir}/job-marker`
  const proc = spawn(ws, "run.sh", [], {
    ACTIONS_RUNNER_INPUT_JITCONFIG: jit.encoded_jit_config,
    STANDIN_JOB: `touch '${marker}'; sleep 37.25; echo never`
  })
  await until("the job script to run", () => existsSync(marker))
  proc.kill("SIGINT")
  const result = await finish(proc)
  expect(result.code).toBe(0)
  expect(result.stdout).not.toContain("never")
  expect(events(ws).at(-1)).toMatch(/signal=INT phase=job/)
  await Bun.sleep(100)
  const orphans = readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes("37.25")
      } catch {
        return false
      }
    })
  expect(orphans).toEqual([])
})

test("a runner whose registration was deleted while idle exits 1 like the real one", async () => {
  const ws = workspace()
  const jit = await api("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { name: "gone-1", runner_group_id: 1, labels: ["x"] })
  const proc = spawn(ws, "run.sh", [], { ACTIONS_RUNNER_INPUT_JITCONFIG: jit.encoded_jit_config, STANDIN_IDLE_SECONDS: "1" })
  await until("the runner to be online", () => fake.runners()[0]?.status === "online")
  await api("DELETE", `/repos/acme/widgets/actions/runners/${jit.runner.id}`)
  const result = await finish(proc)
  expect(result.code).toBe(1)
  expect(result.stdout).toContain("The runner registration has been deleted from the server")
  expect(eventNames(ws)).toEqual(["run.start", "run.online", "run.error"])
})
