import { describe, expect, test } from "bun:test"
import { Redacted } from "effect"
import { apiUrlFor, type Env, maxNamePrefixLength, missingAppSecretKeys, normalizePem, resolveSettings, type Resolution } from "../src/Settings.ts"
import { generateAppKey, generateEcKey, malformedPem } from "./support/keys.ts"

const key = generateAppKey()
const base: Env = {
  GITHUB_OWNER: "acme",
  GITHUB_APP_ID: "123",
  GITHUB_APP_INSTALLATION_ID: "456",
  GITHUB_APP_PRIVATE_KEY: key.privateKeyPem
}
const options = { arch: "x64", stdoutIsTty: false }
const resolve = (env: Env, secrets = {}) => resolveSettings(env, secrets, options)
const ok = (r: Resolution) => {
  if (r._tag !== "ok") throw new Error(`expected valid settings, got ${JSON.stringify(r.problems)}`)
  return r.settings
}
const problems = (r: Resolution) => (r._tag === "invalid" ? r.problems : [])
const settingsWithProblems = (r: Resolution) => problems(r).map((p) => p.setting)

describe("resolveSettings", () => {
  test("defaults: org scope on github.com, JIT, ephemeral, Docker over the standard socket", () => {
    const s = ok(resolve(base))
    expect(s.scope).toEqual({ kind: "org", org: "acme" })
    expect(s.apiUrl).toBe("https://api.github.com")
    expect(s.runner.labels).toEqual(["self-hosted", "linux", "x64"])
    expect(s.runner).toMatchObject({ group: "default", namePrefix: "ghr", workDir: "_work", dir: "/actions-runner", mode: "jit", ephemeral: true, disableUpdate: true })
    expect(s.docker).toEqual({ mode: "dind", host: "unix:///var/run/docker.sock", waitSeconds: 120 })
    expect(s.log).toEqual({ level: "info", format: "json" })
    expect(s.healthPort).toBe(8080)
    expect(s.app?.appId).toBe(123)
    expect(s.app?.installationId).toBe(456)
  })

  test("arm64 machines get the arm64 label and a TTY gets text logs", () => {
    const r = resolveSettings(base, {}, { arch: "arm64", stdoutIsTty: true })
    expect(ok(r).runner.labels).toEqual(["self-hosted", "linux", "arm64"])
    expect(ok(r).log.format).toBe("text")
  })

  test("GITHUB_REPOSITORY selects repo scope", () => {
    expect(ok(resolve({ ...base, GITHUB_REPOSITORY: "app" })).scope).toEqual({ kind: "repo", owner: "acme", repo: "app" })
  })

  test("API URL derivation for github.com, GHES and ghe.com, and an explicit override", () => {
    expect(apiUrlFor("https://github.com")).toBe("https://api.github.com")
    expect(apiUrlFor("https://ghes.example.com")).toBe("https://ghes.example.com/api/v3")
    expect(apiUrlFor("https://octo.ghe.com")).toBe("https://api.octo.ghe.com")
    expect(ok(resolve({ ...base, GITHUB_URL: "https://ghes.example.com/" })).apiUrl).toBe("https://ghes.example.com/api/v3")
    expect(ok(resolve({ ...base, GITHUB_API_URL: "http://127.0.0.1:9999" })).apiUrl).toBe("http://127.0.0.1:9999")
  })

  test("a client ID can replace the App ID", () => {
    const { GITHUB_APP_ID: _, ...rest } = base
    const s = ok(resolve({ ...rest, GITHUB_APP_CLIENT_ID: "Iv23liAbCdEf" }))
    expect(s.app?.clientId).toBe("Iv23liAbCdEf")
    expect(s.app?.appId).toBeUndefined()
  })

  test("PEM keys with literal \\n escapes (as env vars often carry them) are accepted; PKCS#8 too", () => {
    const escaped = generateAppKey("pkcs8").privateKeyPem.replace(/\n/g, "\\n")
    const s = ok(resolve({ ...base, GITHUB_APP_PRIVATE_KEY: escaped }))
    expect(Redacted.value(s.app!.privateKey)).toContain("\n")
    expect(normalizePem("a\\nb")).toBe("a\nb\n")
  })

  test("a handed-over JIT config needs no App credentials at all", () => {
    const s = ok(resolve({ GITHUB_OWNER: "acme", ACTIONS_RUNNER_INPUT_JITCONFIG: "eyJzZWNyZXQiOjF9" }))
    expect(s.app).toBeUndefined()
    expect(Redacted.value(s.jitConfig!)).toBe("eyJzZWNyZXQiOjF9")
    expect(ok(resolve({ GITHUB_OWNER: "acme", GHR_JITCONFIG: "abc" })).jitConfig).toBeDefined()
  })

  test("every problem is reported at once, each naming its variable", () => {
    const r = resolve({
      GITHUB_APP_ID: "abc",
      GITHUB_APP_INSTALLATION_ID: "-1",
      GITHUB_APP_PRIVATE_KEY: "not a key",
      RUNNER_MODE: "fast",
      DOCKER_WAIT_SECONDS: "soon",
      RUNNER_EPHEMERAL: "maybe",
      LOG_FORMAT: "xml",
      GHR_HEALTH_PORT: "70000"
    })
    expect(settingsWithProblems(r).sort()).toEqual([
      "DOCKER_WAIT_SECONDS", "GHR_HEALTH_PORT", "GITHUB_APP_ID", "GITHUB_APP_INSTALLATION_ID", "GITHUB_APP_PRIVATE_KEY",
      "GITHUB_OWNER", "LOG_FORMAT", "RUNNER_EPHEMERAL", "RUNNER_MODE"
    ])
    expect(problems(r).find((p) => p.setting === "GITHUB_OWNER")?.problem).toContain("is required")
    expect(problems(r).find((p) => p.setting === "RUNNER_MODE")?.problem).toBe('expected one of jit, registration, got "fast"')
  })

  test("missing credentials say where they can come from", () => {
    const r = resolve({ GITHUB_OWNER: "acme", GHR_APP_SECRET: "ghr/app" })
    const byName = Object.fromEntries(problems(r).map((p) => [p.setting, p.problem]))
    expect(byName["GITHUB_APP_ID"]).toContain('"app_id" key of the GHR_APP_SECRET secret')
    expect(byName["GITHUB_APP_INSTALLATION_ID"]).toContain("installations/<id>")
    expect(byName["GITHUB_APP_PRIVATE_KEY"]).toContain("PEM")
  })

  test.each([
    ["malformed PEM", malformedPem(), "malformed"],
    ["not a PEM at all", "hello", "is not a PEM private key"],
    ["an EC key", generateEcKey(), "is a ec key"]
  ])("GITHUB_APP_PRIVATE_KEY: %s", (_, pem, expected) => {
    const p = problems(resolve({ ...base, GITHUB_APP_PRIVATE_KEY: pem }))
    expect(p).toHaveLength(1)
    expect(p[0]!.setting).toBe("GITHUB_APP_PRIVATE_KEY")
    expect(p[0]!.problem).toContain(expected)
    // The key text never appears in the message.
    expect(p[0]!.problem).not.toContain("base64 at all")
  })

  test.each([
    ["empty", " , ,", "is empty"],
    ["over 100", Array.from({ length: 101 }, (_, i) => `l${i}`).join(","), "at most 100"],
    ["invalid characters", "self-hosted,gpu x,ok", '"gpu x"']
  ])("RUNNER_LABELS: %s", (_, labels, expected) => {
    const p = problems(resolve({ ...base, RUNNER_LABELS: labels }))
    expect(p.map((x) => x.setting)).toEqual(["RUNNER_LABELS"])
    expect(p[0]!.problem).toContain(expected)
  })

  test("RUNNER_NAME_PREFIX: too long and invalid characters", () => {
    const long = problems(resolve({ ...base, RUNNER_NAME_PREFIX: "x".repeat(maxNamePrefixLength + 1) }))
    expect(long[0]!.problem).toContain(`at most ${maxNamePrefixLength} fit`)
    expect(ok(resolve({ ...base, RUNNER_NAME_PREFIX: "x".repeat(maxNamePrefixLength) })).runner.namePrefix).toHaveLength(maxNamePrefixLength)
    expect(problems(resolve({ ...base, RUNNER_NAME_PREFIX: "bad name" }))[0]!.setting).toBe("RUNNER_NAME_PREFIX")
  })

  test("GITHUB_OWNER and GITHUB_REPOSITORY shapes", () => {
    expect(problems(resolve({ ...base, GITHUB_OWNER: "-acme" }))[0]!.setting).toBe("GITHUB_OWNER")
    expect(problems(resolve({ ...base, GITHUB_REPOSITORY: "acme/app" }))[0]!.problem).toContain("repository name only")
  })

  test("non-numeric installation id", () => {
    const p = problems(resolve({ ...base, GITHUB_APP_INSTALLATION_ID: "my-install" }))
    expect(p).toEqual([{ setting: "GITHUB_APP_INSTALLATION_ID", problem: 'expected a positive whole number, got "my-install"' }])
  })

  test.each(["ssh://host", "npipe:////./pipe/docker", "http://host:2375", "tcp://host"])("DOCKER_HOST %s is rejected", (host) => {
    const p = problems(resolve({ ...base, DOCKER_HOST: host }))
    expect(p.map((x) => x.setting)).toEqual(["DOCKER_HOST"])
    expect(p[0]!.problem).toContain("DOCKER_MODE=none")
  })

  test("DOCKER_HOST is not checked when Docker is off; tcp and unix are accepted", () => {
    expect(ok(resolve({ ...base, DOCKER_MODE: "none", DOCKER_HOST: "ssh://x" })).docker.mode).toBe("none")
    expect(ok(resolve({ ...base, DOCKER_HOST: "tcp://127.0.0.1:2375" })).docker.host).toBe("tcp://127.0.0.1:2375")
  })

  test("runner groups only at org scope; JIT runners are always ephemeral", () => {
    expect(problems(resolve({ ...base, GITHUB_REPOSITORY: "app", RUNNER_GROUP: "gpu" }))[0]!.setting).toBe("RUNNER_GROUP")
    expect(problems(resolve({ ...base, RUNNER_EPHEMERAL: "false" }))[0]!.setting).toBe("RUNNER_EPHEMERAL")
    expect(ok(resolve({ ...base, RUNNER_MODE: "registration", RUNNER_EPHEMERAL: "no" })).runner.ephemeral).toBe(false)
  })

  test("config secret fills gaps; explicit environment wins; unknown keys are reported", () => {
    const s = ok(resolve({ ...base, RUNNER_GROUP: "from-env" }, {
      configSecret: { runner_group: "from-secret", runner_labels: ["a", "b"], docker_wait_seconds: 5 }
    }))
    expect(s.runner.group).toBe("from-env")
    expect(s.runner.labels).toEqual(["a", "b"])
    expect(s.docker.waitSeconds).toBe(5)
    const p = problems(resolve(base, { configSecret: { runner_lables: "x" } }))
    expect(p[0]).toMatchObject({ setting: "GHR_CONFIG_SECRET" })
    expect(p[0]!.problem).toContain('unknown key "runner_lables"')
  })

  test("App secret supplies credentials; explicit variables win", () => {
    const s = ok(resolve({ GITHUB_OWNER: "acme", GITHUB_APP_ID: "9" }, {
      appSecret: { app_id: 1, installation_id: 2, private_key: key.privateKeyPem }
    }))
    expect(s.app?.appId).toBe(9)
    expect(s.app?.installationId).toBe(2)
  })
})

describe("missingAppSecretKeys", () => {
  test("names what neither the secret nor the environment provides", () => {
    expect(missingAppSecretKeys({ app_id: 1 }, {})).toEqual(["installation_id", "private_key"])
    expect(missingAppSecretKeys({ client_id: "Iv1" }, { GITHUB_APP_INSTALLATION_ID: "1" })).toEqual(["private_key"])
    expect(missingAppSecretKeys({ installation_id: 1, private_key: "k" }, {})).toEqual(["app_id or client_id"])
    expect(missingAppSecretKeys({ app_id: 1, installation_id: 2, private_key: "k" }, {})).toEqual([])
  })
})
