import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { Duration, Effect, Fiber, Layer, Option, Redacted } from "effect"
import { ActionsService, jwtExpiryMs, parseJson } from "../src/ActionsService.ts"
import { GitHubApiError } from "../src/Errors.ts"
import { runFailure, runTest } from "./support/effect.ts"
import { type FakeActions, jobItem, startFakeActions } from "./support/fake-actions.ts"
import { gitHubAppLayer, startWorld, type World } from "./support/world.ts"

let world: World
let actions: FakeActions
let bomActions: FakeActions

beforeAll(async () => {
  world = await startWorld()
  actions = await startFakeActions({ github: world.github, pollMs: 150 })
  bomActions = await startFakeActions({ github: world.github, pollMs: 150, bom: true })
})
afterAll(async () => {
  await actions.stop()
  await bomActions.stop()
  await world.github.stop()
})

const envFor = (fake: FakeActions, extra: Record<string, string> = {}) => ({
  ...world.orgEnv,
  GITHUB_URL: fake.url,
  GITHUB_API_URL: fake.url,
  ...extra
})

const layerFor = (fake: FakeActions, lines: Array<string>, extra: Record<string, string> = {}) =>
  ActionsService.layer({ sessionConflictDelay: Duration.millis(50), sessionConflictRetries: 3, retryBase: Duration.millis(10) }).pipe(
    Layer.provideMerge(gitHubAppLayer(envFor(fake, extra), lines))
  )

const withService = <A, E>(fake: FakeActions, f: (svc: ActionsService["Service"]) => Effect.Effect<A, E>, lines: Array<string> = [], extra: Record<string, string> = {}) =>
  Effect.gen(function*() {
    return yield* f(yield* ActionsService)
  }).pipe(Effect.provide(layerFor(fake, lines, extra)))

describe("pure helpers", () => {
  test("parseJson strips a UTF-8 byte order mark", () => {
    expect(parseJson("\uFEFF{\"a\":1}")).toEqual({ a: 1 })
    expect(parseJson("")).toBeUndefined()
  })
  test("jwtExpiryMs reads exp, undefined for a non-JWT", () => {
    const payload = Buffer.from(JSON.stringify({ exp: 1_900_000_000 })).toString("base64url")
    expect(jwtExpiryMs(`eyJhbGciOiJSUzI1NiJ9.${payload}.sig`)).toBe(1_900_000_000_000)
    expect(jwtExpiryMs("opaque-token")).toBeUndefined()
  })
})

describe("ActionsService against the fake Actions service", () => {
  test("registers with RemoteAuth, creates the scale set in the runner group, then finds it again", async () => {
    const lines: Array<string> = []
    const env = { RUNNER_GROUP: "linux-docker", RUNNER_NAME_PREFIX: "ci-large", RUNNER_LABELS: "linux,large" }
    const first = await runTest(withService(actions, (svc) => svc.ensureScaleSet, lines, env))
    expect(first.name).toBe("ci-large")
    expect(first.runnerGroupId).toBe(7)
    const registration = actions.calls.find((c) => c.path === "/actions/runner-registration")!
    expect(registration.authScheme).toBe("RemoteAuth")
    expect(registration.status).toBe(200)
    expect(registration.body).toEqual({ url: `${actions.url}/acme`, runner_event: "register" })
    expect(actions.scaleSets.get(first.id)?.labels.map((l) => l.name)).toEqual(["ci-large", "linux", "large"])
    const second = await runTest(withService(actions, (svc) => svc.ensureScaleSet, [], env))
    expect(second.id).toBe(first.id)
    expect([...actions.scaleSets.values()].filter((s) => s.name === "ci-large")).toHaveLength(1)
    const text = lines.join("")
    for (const secret of actions.issuedSecrets()) expect(text).not.toContain(secret)
  })

  test("an unknown runner group is a clear error", async () => {
    const error = await runFailure(withService(actions, (svc) => svc.ensureScaleSet, [], { RUNNER_GROUP: "nope" }))
    expect(error).toBeInstanceOf(GitHubApiError)
    expect((error as GitHubApiError).detail).toContain('no runner group named "nope"')
  })

  test("session, long poll of a JobAssigned batch with X-ScaleSetMaxCapacity, ack, acquire, JIT, delete runner, close", async () => {
    const lines: Array<string> = []
    await runTest(withService(actions, (svc) =>
      Effect.gen(function*() {
        const set = yield* svc.ensureScaleSet
        const session = yield* svc.openSession(set.id)
        expect(session.statistics.totalAssignedJobs).toBe(0)
        // Nothing queued: 202 → None.
        expect(Option.isNone(yield* svc.getMessage(0, 5))).toBe(true)
        const id = actions.pushJobMessage(set.id, [jobItem("JobAvailable"), jobItem("JobAssigned")], { totalAssignedJobs: 1, totalAvailableJobs: 1 })
        const message = Option.getOrThrow(yield* svc.getMessage(0, 5))
        expect(message.messageId).toBe(id)
        expect(message.items.map((i) => i.messageType)).toEqual(["JobAvailable", "JobAssigned"])
        expect(message.items[0]!.runnerRequestId).toBe(1001)
        expect(message.statistics?.totalAssignedJobs).toBe(1)
        const poll = actions.calls.filter((c) => c.method === "GET" && c.path.startsWith("/_queue/")).at(-1)!
        expect(poll.maxCapacity).toBe("5")
        yield* svc.deleteMessage(id)
        expect(actions.pendingMessages(set.id)).toEqual([])
        expect(yield* svc.acquireJobs(set.id, [1001])).toEqual([1001])
        const runner = yield* svc.generateJitConfig(set.id, "ghr-abc", "_work")
        expect(actions.runners.get(runner.runnerId)?.encodedJitConfig).toBe(Redacted.value(runner.encodedJitConfig))
        actions.runners.get(runner.runnerId)!.busy = true
        expect(yield* svc.deleteRunner(runner.runnerId)).toBe("busy")
        actions.runners.get(runner.runnerId)!.busy = false
        expect(yield* svc.deleteRunner(runner.runnerId)).toBe("deleted")
        expect(yield* svc.deleteRunner(runner.runnerId)).toBe("already-gone")
        yield* svc.closeSession
        expect(actions.sessions.has(set.id)).toBe(false)
      }), lines, { RUNNER_NAME_PREFIX: "flow" }))
    const text = lines.join("")
    for (const secret of actions.issuedSecrets()) expect(text).not.toContain(secret)
  })

  test("a 409 session conflict is retried (bounded) and succeeds once the other session ends", async () => {
    await runTest(withService(actions, (svc) =>
      Effect.gen(function*() {
        const set = yield* svc.ensureScaleSet
        yield* svc.openSession(set.id)
        // A second listener: gives up after its bounded retries.
        const error = yield* Effect.flip(Effect.provide(Effect.flatMap(ActionsService, (other) => other.openSession(set.id)), layerFor(actions, [], { RUNNER_NAME_PREFIX: "conflict" })))
        expect(error).toBeInstanceOf(GitHubApiError)
        expect((error as GitHubApiError).status).toBe(409)
        // Again, while the first session is closed meanwhile: it gets the session.
        const waiting = yield* Effect.forkChild(Effect.provide(Effect.flatMap(ActionsService, (other) => other.openSession(set.id)), layerFor(actions, [], { RUNNER_NAME_PREFIX: "conflict" })))
        yield* Effect.sleep(Duration.millis(70))
        yield* svc.closeSession
        const opened = yield* Fiber.join(waiting)
        expect(opened.sessionId).toBe(actions.sessions.get(set.id)!.sessionId)
        actions.sessions.delete(set.id)
      }), [], { RUNNER_NAME_PREFIX: "conflict" }))
    const conflicts = actions.calls.filter((c) => c.method === "POST" && c.path.endsWith("/sessions") && c.status === 409)
    expect(conflicts.length).toBeGreaterThanOrEqual(5)
  })

  test("a rejected admin token registers again; a rejected queue token refreshes the session", async () => {
    await runTest(withService(actions, (svc) =>
      Effect.gen(function*() {
        const set = yield* svc.ensureScaleSet
        yield* svc.openSession(set.id)
        const registrations = actions.calls.filter((c) => c.path === "/actions/runner-registration").length
        actions.revokeAdminTokens()
        const runner = yield* svc.generateJitConfig(set.id, "ghr-refresh1", "_work")
        expect(runner.name).toBe("ghr-refresh1")
        expect(actions.calls.filter((c) => c.path === "/actions/runner-registration").length).toBe(registrations + 1)
        actions.revokeQueueTokens()
        actions.pushJobMessage(set.id, [jobItem("JobAssigned")], { totalAssignedJobs: 1 })
        const message = yield* svc.getMessage(0, 3)
        expect(Option.isSome(message)).toBe(true)
        expect(actions.calls.some((c) => c.method === "PATCH" && c.path.includes("/sessions/"))).toBe(true)
        yield* svc.closeSession
      }), [], { RUNNER_NAME_PREFIX: "refresh" }))
  })

  test("an admin token with less than 60 s left is replaced before the next call", async () => {
    const shortLived = await startFakeActions({ github: world.github, pollMs: 50, adminTtlSeconds: 45 })
    try {
      await runTest(withService(shortLived, (svc) =>
        Effect.gen(function*() {
          const set = yield* svc.ensureScaleSet
          yield* svc.generateJitConfig(set.id, "ghr-short1", "_work")
        })))
      // ensureScaleSet (group is default: 2 calls) and the JIT call each found < 60 s left.
      expect(shortLived.calls.filter((c) => c.path === "/actions/runner-registration").length).toBe(3)
      expect(shortLived.calls.filter((c) => c.status === 401)).toEqual([])
    } finally {
      await shortLived.stop()
    }
  })

  test("5xx answers are retried with the schedule", async () => {
    actions.failNext("POST", /generatejitconfig$/, { status: 503, body: { message: "busy" } }, 2)
    const runner = await runTest(withService(actions, (svc) =>
      Effect.flatMap(svc.ensureScaleSet, (set) => svc.generateJitConfig(set.id, "ghr-retry1", "_work")), [], { RUNNER_NAME_PREFIX: "retry" }))
    expect(runner.name).toBe("ghr-retry1")
    expect(actions.calls.filter((c) => c.path.endsWith("generatejitconfig") && c.status === 503)).toHaveLength(2)
  })

  test("responses with a UTF-8 BOM are understood throughout", async () => {
    // The fake really sends the byte order mark.
    const raw = new Uint8Array(await (await fetch(`${bomActions.url}/tenant/_apis/runtime/runnergroups/?api-version=6.0-preview`)).arrayBuffer())
    expect([...raw.slice(0, 3)]).toEqual([0xef, 0xbb, 0xbf])
    await runTest(withService(bomActions, (svc) =>
      Effect.gen(function*() {
        const set = yield* svc.ensureScaleSet
        yield* svc.openSession(set.id)
        bomActions.pushJobMessage(set.id, [jobItem("JobAssigned")], { totalAssignedJobs: 1 })
        const message = Option.getOrThrow(yield* svc.getMessage(0, 2))
        expect(message.items[0]!.messageType).toBe("JobAssigned")
        const runner = yield* svc.generateJitConfig(set.id, "ghr-bom1", "_work")
        expect(runner.runnerId).toBeGreaterThan(0)
        yield* svc.closeSession
      })))
  })
})
