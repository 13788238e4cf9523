/**
 * No secret ever reaches stdout or stderr: every secret ghr handles (private key, installation
 * token, JIT config, registration and remove tokens) is pushed through every log path — lifecycle
 * events, retry warnings, the runner's stdout and stderr, and failure messages — at debug level.
 */
import { afterAll, beforeAll, beforeEach, expect, test } from "bun:test"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { redactedMarker } from "../src/Log.ts"
import { runGhr, standInRunnerDir } from "./support/ghr.ts"
import { startWorld, type World } from "./support/world.ts"

let world: World
beforeAll(async () => {
  world = await startWorld()
})
afterAll(() => world.github.stop())
beforeEach(() => world.github.reset())

const keyBody = () => world.key.privateKeyPem.split("\n").filter((l) => l.length > 40)

const expectNoSecret = (output: string, secrets: ReadonlyArray<string>) => {
  expect(secrets.length).toBeGreaterThan(0)
  for (const secret of secrets) expect(output).not.toContain(secret)
  for (const line of keyBody()) expect(output).not.toContain(line)
  expect(output).not.toContain("PRIVATE KEY-----")
}

test("JIT mode: the JIT config and token printed by the runner and the job are redacted", async () => {
  const runner = standInRunnerDir()
  try {
    // The job echoes its JIT config (stdout and stderr) and the App key text it was handed.
    const job = `echo "jit=$ACTIONS_RUNNER_INPUT_JITCONFIG"; echo "jit=$ACTIONS_RUNNER_INPUT_JITCONFIG" >&2; printf '%s\\n' "$LEAKED_KEY"`
    world.github.failNext("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", { status: 502, body: { message: `upstream said ${world.key.privateKeyPem}` } })
    const result = await runGhr(["run"], {
      env: { ...world.repoEnv, RUNNER_DIR: runner.dir, STANDIN_RECORD_DIR: runner.recordDir, STANDIN_JOB: job, LEAKED_KEY: world.key.privateKeyPem, LOG_LEVEL: "debug" }
    })
    expect(result.exitCode).toBe(0)
    const recordedEnv = readdirSync(runner.recordDir).filter((f) => f.endsWith(".env")).map((f) => readFileSync(join(runner.recordDir, f), "utf8")).join("")
    const jit = /ACTIONS_RUNNER_INPUT_JITCONFIG=(\S+)/.exec(recordedEnv)?.[1]
    expect(jit).toBeDefined()
    const output = result.stdout + result.stderr
    expectNoSecret(output, [jit!, ...world.github.issuedSecrets()])
    // The paths were really exercised: the runner's lines and the retry warning are there, redacted.
    expect(result.records.filter((r) => r["event"] === "runner.output" && String(r["msg"]).includes(`jit=${redactedMarker}`))).toHaveLength(2)
    expect(result.records.some((r) => r["event"] === "github.retry" && String(r["msg"]).includes(redactedMarker))).toBe(true)
  } finally {
    runner.cleanup()
  }
})

test("registration mode: registration and remove tokens printed by config.sh are redacted", async () => {
  const runner = standInRunnerDir()
  try {
    const result = await runGhr(["run"], {
      env: { ...world.repoEnv, RUNNER_MODE: "registration", RUNNER_DIR: runner.dir, STANDIN_LEAK_TOKEN: "1", LOG_LEVEL: "debug" }
    })
    expect(result.exitCode).toBe(0)
    expectNoSecret(result.stdout + result.stderr, world.github.issuedSecrets())
    expect(result.records.filter((r) => String(r["msg"]).includes(`token ${redactedMarker}`)).length).toBeGreaterThanOrEqual(2)
  } finally {
    runner.cleanup()
  }
})

test("failure messages: a GitHub error echoing a secret is redacted in the final error line", async () => {
  const runner = standInRunnerDir()
  try {
    world.github.failNext("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", {
      status: 422,
      body: { message: `Validation failed for ${world.key.privateKeyPem} and ghs_${"x".repeat(36)}` }
    })
    const result = await runGhr(["run"], { env: { ...world.repoEnv, RUNNER_DIR: runner.dir, LOG_LEVEL: "debug" } })
    expect(result.exitCode).not.toBe(0)
    const failed = result.records.find((r) => r["event"] === "ghr.failed")!
    expect(String(failed["msg"])).toContain(redactedMarker)
    expectNoSecret(result.stdout + result.stderr, [`ghs_${"x".repeat(36)}`, ...world.github.issuedSecrets()])
  } finally {
    runner.cleanup()
  }
})
