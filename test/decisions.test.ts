/** The pure decisions: retry timing, runner names, runner environment, config.sh flags, redaction. */
import { describe, expect, test } from "bun:test"
import { clockSkewSeconds } from "../src/GitHubApp.ts"
import { type HttpFailure, isRetryable, maxRetryDelayMs, retryDelayMs, secondaryLimitDelayMs } from "../src/GitHubRetry.ts"
import { Effect } from "effect"
import { formatRecord, Redaction, redactedMarker, redactText } from "../src/Log.ts"
import { configArgs, exitCodeFromSignalDeath, jobEventOf, runnerEnvironment } from "../src/Runner.ts"
import { runnerName } from "../src/RunnerName.ts"
import { maxNamePrefixLength, runnerNameMaxLength } from "../src/Settings.ts"
import { generateAppKey } from "./support/keys.ts"

const failure = (status: number | undefined, headers: Record<string, string> = {}, message = "boom"): HttpFailure => ({ status, headers, message })

describe("GitHub retry policy", () => {
  test("retries network errors, 5xx, 429 and secondary rate limits; not other 4xx", () => {
    expect(isRetryable(failure(undefined))).toBe(true)
    expect(isRetryable(failure(502))).toBe(true)
    expect(isRetryable(failure(429))).toBe(true)
    expect(isRetryable(failure(403, {}, "You have exceeded a secondary rate limit"))).toBe(true)
    expect(isRetryable(failure(403, { "x-ratelimit-remaining": "0" }))).toBe(true)
    expect(isRetryable(failure(403, {}, "Resource not accessible by integration"))).toBe(false)
    expect(isRetryable(failure(401))).toBe(false)
    expect(isRetryable(failure(404))).toBe(false)
    expect(isRetryable(failure(422))).toBe(false)
  })

  test("retry-after wins, then x-ratelimit-reset, then the one-minute floor for secondary limits", () => {
    const now = 1_000_000
    expect(retryDelayMs(failure(429, { "retry-after": "3" }), 500, now)).toBe(3000)
    expect(retryDelayMs(failure(403, { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String((now + 20_000) / 1000) }), 500, now)).toBe(21_000)
    expect(retryDelayMs(failure(403, {}, "secondary rate limit"), 500, now)).toBe(secondaryLimitDelayMs)
    expect(retryDelayMs(failure(503), 800, now)).toBe(800)
  })

  test("no single wait exceeds the cap, whatever GitHub asks", () => {
    expect(retryDelayMs(failure(429, { "retry-after": "3600" }), 500, 0)).toBe(maxRetryDelayMs)
    expect(retryDelayMs(failure(503), 10 * maxRetryDelayMs, 0)).toBe(maxRetryDelayMs)
  })
})

describe("clock skew", () => {
  test("GitHub's Date header minus our clock, in seconds; unknown without a valid header", () => {
    const now = Date.parse("2026-12-04T10:00:00Z")
    expect(clockSkewSeconds("Fri, 04 Dec 2026 10:10:00 GMT", now)).toBe(600)
    expect(clockSkewSeconds("Fri, 04 Dec 2026 09:59:30 GMT", now)).toBe(-30)
    expect(clockSkewSeconds(undefined, now)).toBeUndefined()
    expect(clockSkewSeconds("yesterday-ish", now)).toBeUndefined()
  })
})

describe("runner names", () => {
  test("prefix, dash and a 12-character lower-case suffix within GitHub's 64 characters", () => {
    const name = runnerName("x".repeat(maxNamePrefixLength))
    expect(name.length).toBeLessThanOrEqual(runnerNameMaxLength)
    expect(name).toMatch(/^x+-[0-9a-z]{12}$/)
  })

  test("names are unique across many draws", () => {
    const names = new Set(Array.from({ length: 5000 }, () => runnerName("ghr")))
    expect(names.size).toBe(5000)
  })

  test("the suffix is derived from the random bytes", () => {
    expect(runnerName("p", (n) => new Uint8Array(n).fill(37))).toBe("p-111111111111")
  })
})

describe("runner environment", () => {
  const env = {
    PATH: "/usr/bin",
    HOME: "/home/runner",
    GITHUB_APP_ID: "1",
    GITHUB_APP_PRIVATE_KEY: "pem",
    GITHUB_APP_INSTALLATION_ID: "2",
    GHR_APP_SECRET: "arn",
    GHR_ANYTHING: "x",
    ACTIONS_RUNNER_INPUT_JITCONFIG: "jit",
    ACTIONS_RUNNER_INPUT_TOKEN: "tok",
    GITHUB_TOKEN: "t",
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "/v2/credentials/abc",
    AWS_ACCESS_KEY_ID: "AKIA",
    AWS_REGION: "eu-west-1",
    DOCKER_HOST: "unix:///var/run/dind/docker.sock"
  }

  test("never passes a credential ghr used to the runner", () => {
    const out = runnerEnvironment(env, { selfRegistered: true })
    expect(Object.keys(out).sort()).toEqual(["AWS_REGION", "DOCKER_HOST", "HOME", "PATH"])
  })

  test("a runner handed a JIT config keeps its task role (which cannot read the App secret)", () => {
    const out = runnerEnvironment(env, { selfRegistered: false })
    expect(out["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]).toBe("/v2/credentials/abc")
    expect(out["GITHUB_APP_PRIVATE_KEY"]).toBeUndefined()
    expect(out["ACTIONS_RUNNER_INPUT_JITCONFIG"]).toBeUndefined()
  })
})

describe("job events from the runner's console", () => {
  test("the real runner's start and completion lines", () => {
    expect(jobEventOf("2026-12-04 10:00:00Z: Running job: build (ubuntu)")).toEqual({ event: "job.started", job: "build (ubuntu)" })
    expect(jobEventOf("2026-12-04 10:05:00Z: Job build completed with result: Failed")).toEqual({ event: "job.completed", job: "build", result: "Failed" })
    expect(jobEventOf("2026-12-04 10:00:00Z: Listening for Jobs")).toBeUndefined()
  })
})

describe("runner killed by a signal", () => {
  test("the signal is found through the error's causes and reported as 128 + its number", () => {
    const platformError = { message: "Unknown: ChildProcess.exitCode", cause: new Error("Process interrupted due to receipt of signal: 'SIGKILL'") }
    expect(exitCodeFromSignalDeath(platformError)).toBe(137)
    expect(exitCodeFromSignalDeath(new Error("receipt of signal: 'SIGTERM'"))).toBe(143)
    expect(exitCodeFromSignalDeath(new Error("spawn ENOENT"))).toBeUndefined()
  })
})

describe("config.sh arguments", () => {
  test("carry no token and include ephemeral/disableupdate only when set", () => {
    const args = configArgs({ url: "https://github.com/acme", name: "ghr-1", labels: ["a", "b"], group: "default", workDir: "_work", ephemeral: true, disableUpdate: false })
    expect(args).toEqual(["--unattended", "--replace", "--url", "https://github.com/acme", "--name", "ghr-1", "--labels", "a,b", "--runnergroup", "default", "--work", "_work", "--ephemeral"])
    expect(args.join(" ")).not.toContain("token")
  })
})

describe("redaction", () => {
  const pem = generateAppKey().privateKeyPem

  test("registered values and known token shapes are replaced", () => {
    const text = "token ghs_abcdefghijklmnopqrstuvwxyz0123 and secret-value-123 and eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ.c2lnbmF0dXJlLXZhbHVl"
    const out = redactText(text, ["secret-value-123"])
    expect(out).toBe(`token ${redactedMarker} and ${redactedMarker} and ${redactedMarker}`)
  })

  test("PEM blocks are replaced whole, even when cut off", () => {
    expect(redactText(`k=${pem.trim()} end`, [])).toBe(`k=${redactedMarker} end`)
    expect(redactText(`k=${pem.split("\n").slice(0, 3).join("\n")}`, [])).toBe(`k=${redactedMarker}`)
  })

  test("a PEM inside a JSON line is replaced without eating the rest of the line", () => {
    const line = JSON.stringify({ msg: `k=${pem.split("\n").slice(0, 3).join("\n")}`, event: "x" })
    expect(JSON.parse(redactText(line, []))).toEqual({ msg: `k=${redactedMarker}`, event: "x" })
  })

  test("each line of a registered multi-line secret is redacted on its own (output is logged per line)", () => {
    const redaction = Effect.runSync(Effect.gen(function*() {
      const r = yield* Redaction
      yield* r.register(pem)
      return r
    }).pipe(Effect.provide(Redaction.layer)))
    const bodyLine = pem.split("\n")[2]!
    expect(redaction.redact(bodyLine)).toBe(redactedMarker)
  })

  test("short registered values are ignored rather than shredding every line", () => {
    expect(redactText("a b c", ["a"])).toBe("a b c")
  })

  test("log records: JSON lines for machines, short text for people", () => {
    const record = { time: "2026-12-04T10:11:12.000Z", level: "info", msg: "runner started", event: "runner.started", pid: 7 }
    expect(JSON.parse(formatRecord(record, "json"))).toEqual(record)
    expect(formatRecord(record, "text")).toBe("10:11:12 INFO  runner started  pid=7")
  })
})
