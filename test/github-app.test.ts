import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test"
import { Effect, Option } from "effect"
import { AuthError, ConfigError, GitHubApiError } from "../src/Errors.ts"
import { runFailure, runTest } from "./support/effect.ts"
import { jitInput, NO_PERMISSION_INSTALLATION, secretOf, startWorld, useGitHubApp, type World } from "./support/world.ts"

let world: World
beforeAll(async () => {
  world = await startWorld()
})
afterAll(() => world.github.stop())
beforeEach(() => world.github.reset())

const routesCalled = () => world.github.calls.map((c) => `${c.method} ${c.route} ${c.status}`)

describe("installation token", () => {
  test("N calls share one token (cached until 5 minutes before expiry)", async () => {
    await runTest(useGitHubApp(world.repoEnv, (app) =>
      Effect.forEach([1, 2, 3, 4], (i) => app.generateJitConfig(jitInput(`cache-${i}`)))))
    expect(world.github.tokensIssued()).toBe(1)
    expect(world.github.calls.filter((c) => c.route.endsWith("generate-jitconfig"))).toHaveLength(4)
  })

  test("a token with under 5 minutes left is minted again", async () => {
    const { startFakeGitHub } = await import("./support/fake-github.ts")
    const shortLived = await startFakeGitHub({
      apps: [{ id: 1, clientId: "Iv1", slug: "s", publicKeyPem: world.key.publicKeyPem }],
      installations: [{ id: 5, appId: 1, account: { login: "solo", type: "User" }, permissions: { administration: "write" }, repositories: "all" }],
      tokenTtlSeconds: 240
    })
    try {
      const env = { ...world.repoEnv, GITHUB_API_URL: shortLived.url, GITHUB_APP_ID: "1", GITHUB_APP_INSTALLATION_ID: "5" }
      await runTest(useGitHubApp(env, (app) => Effect.forEach([1, 2], () => app.installationToken)))
      expect(shortLived.tokensIssued()).toBe(2)
    } finally {
      await shortLived.stop()
    }
  })

  test("a clock 10 minutes behind GitHub: the JWT is re-signed with GitHub's time, and the skew is logged", async () => {
    const { startFakeGitHub } = await import("./support/fake-github.ts")
    const skewed = await startFakeGitHub({
      apps: [{ id: 1, clientId: "Iv1", slug: "s", publicKeyPem: world.key.publicKeyPem }],
      installations: [{ id: 5, appId: 1, account: { login: "solo", type: "User" }, permissions: { administration: "write" }, repositories: "all" }],
      clockSkewSeconds: 600
    })
    try {
      const lines: Array<string> = []
      const env = { ...world.repoEnv, GITHUB_API_URL: skewed.url, GITHUB_APP_ID: "1", GITHUB_APP_INSTALLATION_ID: "5" }
      await runTest(useGitHubApp(env, (app) => app.installationToken, lines))
      expect(skewed.tokensIssued()).toBe(1)
      expect(skewed.calls.map((c) => c.status)).toEqual([401, 201])
      const warning = lines.map((l) => JSON.parse(l)).find((r) => r.event === "clock.skew")
      expect(warning?.skewSeconds).toBeGreaterThanOrEqual(599)
    } finally {
      await skewed.stop()
    }
  })

  test("a client ID works as the JWT issuer", async () => {
    const { GITHUB_APP_ID: _, ...env } = world.repoEnv
    const token = await runTest(useGitHubApp({ ...env, GITHUB_APP_CLIENT_ID: "Iv23liTestClient" }, (app) => app.installationToken))
    expect(secretOf(token).length).toBeGreaterThan(10)
  })

  test("unknown App id → AuthError 401 naming the App and what to check", async () => {
    const error = await runFailure(useGitHubApp({ ...world.repoEnv, GITHUB_APP_ID: "999" }, (app) => app.installationToken))
    expect(error).toBeInstanceOf(AuthError)
    expect((error as AuthError).status).toBe(401)
    expect((error as AuthError).message).toContain("App 999")
    expect((error as AuthError).message).toContain("GITHUB_APP_ID")
  })

  test("installation not found → AuthError 404 naming GITHUB_APP_INSTALLATION_ID", async () => {
    const error = await runFailure(useGitHubApp({ ...world.repoEnv, GITHUB_APP_INSTALLATION_ID: "31337" }, (app) => app.installationToken))
    expect(error).toBeInstanceOf(AuthError)
    expect((error as AuthError).status).toBe(404)
    expect((error as AuthError).message).toContain("GITHUB_APP_INSTALLATION_ID")
  })

  test("401 on a revoked token → one re-mint, then success", async () => {
    await runTest(useGitHubApp(world.repoEnv, (app) =>
      Effect.gen(function*() {
        yield* app.generateJitConfig(jitInput("before-revoke"))
        world.github.revokeTokens()
        yield* app.generateJitConfig(jitInput("after-revoke"))
      })))
    expect(world.github.tokensIssued()).toBe(2)
    expect(routesCalled().filter((r) => r.includes("generate-jitconfig"))).toEqual([
      "POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig 201",
      "POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig 401",
      "POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig 201"
    ])
  })
})

describe("retries", () => {
  test("5xx then success", async () => {
    world.github.failNext("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", { status: 502, body: { message: "Bad Gateway" } })
    const lines: Array<string> = []
    const jit = await runTest(useGitHubApp(world.repoEnv, (app) => app.generateJitConfig(jitInput("retry-5xx")), lines))
    expect(jit.name).toBe("retry-5xx")
    expect(routesCalled().filter((r) => r.includes("generate-jitconfig")).map((r) => r.split(" ").pop())).toEqual(["502", "201"])
    expect(lines.some((l) => JSON.parse(l).event === "github.retry")).toBe(true)
  })

  test("429 with retry-after is honoured", async () => {
    world.github.failNext("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", {
      status: 429,
      headers: { "retry-after": "1" },
      body: { message: "API rate limit exceeded" }
    })
    const started = Date.now()
    await runTest(useGitHubApp(world.repoEnv, (app) => app.generateJitConfig(jitInput("retry-429"))))
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
    expect(routesCalled().filter((r) => r.includes("generate-jitconfig")).map((r) => r.split(" ").pop())).toEqual(["429", "201"])
  })

  test("5xx on minting the token is retried too", async () => {
    world.github.failNext("POST /app/installations/{installation_id}/access_tokens", { status: 503, body: { message: "Service Unavailable" } })
    await runTest(useGitHubApp(world.repoEnv, (app) => app.installationToken))
    expect(world.github.tokensIssued()).toBe(1)
  })

  test("persistent 5xx gives up after GITHUB_API_MAX_RETRIES with a GitHubApiError", async () => {
    world.github.failNext("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig", { status: 500, body: { message: "Server Error" } }, 10)
    const error = await runFailure(useGitHubApp({ ...world.repoEnv, GITHUB_API_MAX_RETRIES: "1" }, (app) => app.generateJitConfig(jitInput("x"))))
    expect(error).toBeInstanceOf(GitHubApiError)
    expect(routesCalled().filter((r) => r.includes("generate-jitconfig"))).toHaveLength(2)
  })

  test("unreachable GitHub: bounded retries, then a message naming GITHUB_API_URL", async () => {
    const started = Date.now()
    const error = await runFailure(useGitHubApp({ ...world.repoEnv, GITHUB_API_URL: "http://127.0.0.1:9", GITHUB_API_MAX_RETRIES: "2" }, (app) => app.installationToken))
    expect(error).toBeInstanceOf(GitHubApiError)
    expect((error as GitHubApiError).message).toContain("could not reach http://127.0.0.1:9")
    expect((error as GitHubApiError).message).toContain("GITHUB_API_URL")
    expect(Date.now() - started).toBeLessThan(10_000)
  })
})

describe("runner calls", () => {
  test("missing permission → AuthError 403 naming the permission to grant", async () => {
    const env = { ...world.orgEnv, GITHUB_OWNER: "readonly-org", GITHUB_APP_INSTALLATION_ID: String(NO_PERMISSION_INSTALLATION) }
    const error = await runFailure(useGitHubApp(env, (app) => app.generateJitConfig(jitInput("no-perm"))))
    expect(error).toBeInstanceOf(AuthError)
    expect((error as AuthError).status).toBe(403)
    expect((error as AuthError).message).toContain("Self-hosted runners: Read and write")
  })

  test("repository the installation cannot see → AuthError 404 about repository access", async () => {
    const error = await runFailure(useGitHubApp({ ...world.repoEnv, GITHUB_REPOSITORY: "secret-repo" }, (app) => app.generateJitConfig(jitInput("x"))))
    expect(error).toBeInstanceOf(AuthError)
    expect((error as AuthError).message).toContain("Repository access")
  })

  test("runner group: default needs no call; a named one is looked up; a missing one is a ConfigError listing the groups", async () => {
    const ids = await runTest(Effect.all([
      useGitHubApp(world.orgEnv, (app) => app.runnerGroupId),
      useGitHubApp({ ...world.orgEnv, RUNNER_GROUP: "Linux-Docker" }, (app) => app.runnerGroupId)
    ]))
    expect(ids).toEqual([1, 7])
    expect(world.github.calls.filter((c) => c.route === "/orgs/{org}/actions/runner-groups")).toHaveLength(1)
    const error = await runFailure(useGitHubApp({ ...world.orgEnv, RUNNER_GROUP: "gpu" }, (app) => app.runnerGroupId))
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).problems[0]!.setting).toBe("RUNNER_GROUP")
    expect((error as ConfigError).message).toContain("Default, linux-docker")
  })

  test("JIT, find, delete (then 404 → already-gone) at org scope", async () => {
    const result = await runTest(useGitHubApp(world.orgEnv, (app) =>
      Effect.gen(function*() {
        const jit = yield* app.generateJitConfig({ ...jitInput("org-runner"), runnerGroupId: 7 })
        const found = yield* app.findRunner("org-runner")
        const first = yield* app.deleteRunner(jit.runnerId)
        const second = yield* app.deleteRunner(jit.runnerId)
        return { found: Option.getOrUndefined(found)?.id, id: jit.runnerId, first, second }
      })))
    expect(result.found).toBe(result.id)
    expect([result.first, result.second]).toEqual(["deleted", "already-gone"])
    expect(world.github.runners()).toHaveLength(0)
  })

  test("registration and remove tokens", async () => {
    const tokens = await runTest(useGitHubApp(world.orgEnv, (app) => Effect.all([app.registrationToken, app.removeToken])))
    expect(tokens.map(secretOf).every((t) => t.length > 10)).toBe(true)
  })

  test("no App credentials (JIT handed over) → every call fails with a ConfigError", async () => {
    const env = { GITHUB_OWNER: "acme", ACTIONS_RUNNER_INPUT_JITCONFIG: "abc", GITHUB_API_URL: world.github.url }
    const error = await runFailure(useGitHubApp(env, (app) => app.installationToken))
    expect(error).toBeInstanceOf(ConfigError)
    expect(world.github.calls).toHaveLength(0)
  })

})
