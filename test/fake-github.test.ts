/**
 * The fake GitHub API cannot drift from the real one: every call the tests below make is checked
 * against GitHub's published OpenAPI description (@octokit/openapi, api.github.com) — route and
 * method exist, request bodies match the operation's requestBody schema, response bodies match
 * the schema for the returned status. Also pins the fake's behaviour (auth, permissions, faults).
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test"
import { createSign } from "node:crypto"
import { readFileSync } from "node:fs"
import { createAppAuth } from "@octokit/auth-app"
import { request as octokitRequest } from "@octokit/request"
import Ajv, { type ValidateFunction } from "ajv"
import addFormats from "ajv-formats"
import { fakeGitHubRoutes, startFakeGitHub, type FakeGitHub, type FakeOptions, type RecordedCall } from "./support/fake-github.ts"
import { generateAppKey, type TestKeyPair } from "./support/keys.ts"

// --- Fixtures ----------------------------------------------------------------------------------

const APP_ID = 101
const CLIENT_ID = "Iv23liFakeClientId01"
const OTHER_APP_ID = 202

let appKey: TestKeyPair
let otherKey: TestKeyPair
let options: FakeOptions
let fake: FakeGitHub
/** Every call recorded by every fake in this file, checked against the spec at the end. */
const allCalls: RecordedCall[] = []
/** Every credential handed out, to prove none is ever recorded. */
const secrets = new Set<string>()

beforeAll(async () => {
  appKey = generateAppKey()
  otherKey = generateAppKey("pkcs8")
  options = {
    apps: [
      { id: APP_ID, clientId: CLIENT_ID, slug: "ghr-test", publicKeyPem: appKey.publicKeyPem },
      { id: OTHER_APP_ID, clientId: "Iv23liOtherApp000001", slug: "other-app", publicKeyPem: otherKey.publicKeyPem }
    ],
    installations: [
      {
        id: 1001,
        appId: APP_ID,
        account: { login: "acme", type: "Organization" },
        permissions: { administration: "write", metadata: "read", organization_self_hosted_runners: "write" },
        repositories: ["widgets", "gadgets"]
      },
      { id: 1002, appId: APP_ID, account: { login: "octocat", type: "User" }, permissions: { administration: "write", metadata: "read" }, repositories: "all" },
      { id: 1003, appId: APP_ID, account: { login: "readonly", type: "Organization" }, permissions: { administration: "read", metadata: "read" }, repositories: ["docs"] },
      { id: 2001, appId: OTHER_APP_ID, account: { login: "elsewhere", type: "Organization" }, permissions: { metadata: "read" }, repositories: "all" }
    ],
    runnerGroups: { acme: [{ id: 1, name: "Default" }, { id: 7, name: "ghr" }] }
  }
  fake = await startFakeGitHub(options)
})

afterEach(() => {
  allCalls.push(...structuredClone(fake.calls))
  fake.reset()
})

afterAll(async () => {
  await fake.stop()
})

const nowSeconds = (): number => Math.floor(Date.now() / 1000)

const signJwt = (
  payload: Record<string, unknown>,
  privateKeyPem: string = appKey.privateKeyPem,
  header: Record<string, unknown> = { alg: "RS256", typ: "JWT" }
): string => {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url")
  const input = `${enc(header)}.${enc(payload)}`
  const signature = createSign("RSA-SHA256").update(input).sign(privateKeyPem).toString("base64url")
  const jwt = `${input}.${signature}`
  secrets.add(jwt)
  return jwt
}

const appJwt = (claims: Record<string, unknown> = {}): string =>
  signJwt({ iat: nowSeconds() - 60, exp: nowSeconds() + 540, iss: APP_ID, ...claims })

interface Result {
  status: number
  headers: Headers
  body: any
}

const call = async (
  method: string,
  path: string,
  init: { auth?: string; body?: unknown; rawBody?: string; base?: string } = {}
): Promise<Result> => {
  const headers: Record<string, string> = { accept: "application/vnd.github+json" }
  if (init.auth !== undefined) headers["authorization"] = init.auth
  const body = init.rawBody ?? (init.body === undefined ? undefined : JSON.stringify(init.body))
  if (body !== undefined) headers["content-type"] = "application/json"
  const response = await fetch(`${init.base ?? fake.url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) })
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: text === "" ? undefined : JSON.parse(text) }
}

const mintToken = async (installationId = 1001, body?: unknown, base?: string, jwt = appJwt()): Promise<string> => {
  const r = await call("POST", `/app/installations/${installationId}/access_tokens`, { auth: `Bearer ${jwt}`, body, ...(base === undefined ? {} : { base }) })
  expect(r.status).toBe(201)
  secrets.add(r.body.token)
  return r.body.token as string
}

const tokenAuth = (token: string): string => `token ${token}`

const jitBody = (name: string, extra: Record<string, unknown> = {}) => ({ name, runner_group_id: 1, labels: ["self-hosted", "linux", "x64"], ...extra })

// --- App (JWT) authentication --------------------------------------------------------------------

test("GET /app accepts a JWT whose iss is the app id (number or string) or the client id", async () => {
  for (const iss of [APP_ID, String(APP_ID), CLIENT_ID]) {
    const r = await call("GET", "/app", { auth: `Bearer ${appJwt({ iss })}` })
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ id: APP_ID, slug: "ghr-test", client_id: CLIENT_ID })
  }
})

test("JWTs are rejected like GitHub does", async () => {
  const now = nowSeconds()
  const cases: Array<[string, string | undefined, number, string]> = [
    ["unknown iss", `Bearer ${appJwt({ iss: 999 })}`, 401, "Integration not found"],
    ["unknown client id", `Bearer ${appJwt({ iss: "Iv23liNobody" })}`, 401, "Integration not found"],
    ["signed with another key", `Bearer ${signJwt({ iat: now - 60, exp: now + 540, iss: APP_ID }, otherKey.privateKeyPem)}`, 401, "A JSON web token could not be decoded"],
    ["not RS256", `Bearer ${signJwt({ iat: now - 60, exp: now + 540, iss: APP_ID }, appKey.privateKeyPem, { alg: "HS256", typ: "JWT" })}`, 401, "A JSON web token could not be decoded"],
    ["garbage", "Bearer not.a.jwt", 401, "A JSON web token could not be decoded"],
    ["installation-token-shaped", "Bearer ghs_notajwtatall", 401, "A JSON web token could not be decoded"],
    ["exp more than 10 min after iat", `Bearer ${appJwt({ iat: now - 10, exp: now + 600 })}`, 401, "'Expiration time' claim ('exp') is too far in the future"],
    ["iat in the future", `Bearer ${appJwt({ iat: now + 120, exp: now + 600 })}`, 401, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"],
    ["iat not an integer", `Bearer ${appJwt({ iat: now - 60.5 })}`, 401, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"],
    ["expired", `Bearer ${appJwt({ iat: now - 700, exp: now - 100 })}`, 401, "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"],
    ["no Authorization header", undefined, 401, "Requires authentication"]
  ]
  for (const [label, auth, status, message] of cases) {
    const r = await call("GET", "/app", auth === undefined ? {} : { auth })
    expect({ label, status: r.status, message: r.body.message }).toEqual({ label, status, message })
    expect(r.body.documentation_url).toStartWith("https://docs.github.com/")
    expect(r.body.status).toBe(String(status))
  }
  // exactly 10 minutes is fine (what @octokit/auth-app sends)
  expect((await call("GET", "/app", { auth: `Bearer ${appJwt({ iat: now - 30, exp: now + 570 })}` })).status).toBe(200)
})

test("an installation token is not accepted where a JWT is required, nor a JWT where a token is", async () => {
  const token = await mintToken()
  const r = await call("GET", "/app", { auth: tokenAuth(token) })
  expect(r.status).toBe(401)
  expect(r.body.message).toBe("A JSON web token could not be decoded")
  const r2 = await call("GET", "/repos/acme/widgets/actions/runners", { auth: `Bearer ${appJwt()}` })
  expect(r2.status).toBe(403)
  expect(r2.body.message).toBe("Resource not accessible by integration")
})

test("clock skew: the Date header is skewed, JWTs are judged by the skewed clock, and @octokit/auth-app's hook recovers", async () => {
  const skewed = await startFakeGitHub({ ...options, clockSkewSeconds: -600 })
  try {
    const r = await call("GET", "/app", { base: skewed.url, auth: `Bearer ${appJwt()}` })
    expect(r.status).toBe(401)
    expect(r.body.message).toBe("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued")
    const serverDate = Date.parse(r.headers.get("date")!)
    expect(Math.abs(serverDate - (Date.now() - 600_000))).toBeLessThan(5_000)

    const request = octokitRequest.defaults({ baseUrl: skewed.url })
    const auth = createAppAuth({ appId: APP_ID, privateKey: appKey.privateKeyPem, installationId: 1001, request, log: { warn: () => {} } })
    // auth-app retries with the server's Date only for JWT-authenticated requests made through its hook…
    const app = await auth.hook(request, "GET /app")
    expect(app.status).toBe(200)
    expect(app.data).toMatchObject({ id: APP_ID })
    // …not when minting an installation token directly: a caller must correct the drift itself.
    expect(auth({ type: "installation" })).rejects.toThrow("'Issued at' claim ('iat')")
    await Bun.sleep(50)
    expect(skewed.tokensIssued()).toBe(0)
    expect(skewed.calls.map((c) => [c.route, c.status])).toEqual([
      ["/app", 401],
      ["/app", 401],
      ["/app", 200],
      ["/app/installations/{installation_id}/access_tokens", 401]
    ])
  } finally {
    allCalls.push(...structuredClone(skewed.calls))
    await skewed.stop()
  }
})

// --- Installation tokens ----------------------------------------------------------------------

test("POST /app/installations/{id}/access_tokens mints an opaque ghs_ token for an hour", async () => {
  const r = await call("POST", "/app/installations/1001/access_tokens", { auth: `Bearer ${appJwt()}` })
  secrets.add(r.body.token)
  expect(r.status).toBe(201)
  expect(r.body.token).toMatch(/^ghs_[A-Za-z0-9]+$/)
  expect(Math.abs(Date.parse(r.body.expires_at) - (Date.now() + 3_600_000))).toBeLessThan(5_000)
  expect(r.body.permissions).toEqual({ administration: "write", metadata: "read", organization_self_hosted_runners: "write" })
  expect(r.body.repository_selection).toBe("selected")
  expect(fake.tokensIssued()).toBe(1)
  // both schemes work
  for (const scheme of ["token", "Bearer", "bearer"]) {
    expect((await call("GET", "/repos/acme/widgets", { auth: `${scheme} ${r.body.token}` })).status).toBe(200)
  }
})

test("access_tokens: unknown installation or another app's installation → 404", async () => {
  for (const id of [9999, 2001]) {
    const r = await call("POST", `/app/installations/${id}/access_tokens`, { auth: `Bearer ${appJwt()}` })
    expect(r.status).toBe(404)
    expect(r.body.message).toBe("Not Found")
  }
  expect(fake.tokensIssued()).toBe(0)
})

test("access_tokens: narrowing to permissions/repositories the installation lacks → 422; narrowing works", async () => {
  const tooMuch = await call("POST", "/app/installations/1003/access_tokens", { auth: `Bearer ${appJwt()}`, body: { permissions: { administration: "write" } } })
  expect(tooMuch.status).toBe(422)
  expect(tooMuch.body.message).toBe("The permissions requested are not granted to this installation.")
  const badRepo = await call("POST", "/app/installations/1001/access_tokens", { auth: `Bearer ${appJwt()}`, body: { repositories: ["secret"] } })
  expect(badRepo.status).toBe(422)

  const narrowed = await call("POST", "/app/installations/1001/access_tokens", {
    auth: `Bearer ${appJwt()}`,
    body: { repositories: ["widgets"], permissions: { administration: "write", metadata: "read" } }
  })
  secrets.add(narrowed.body.token)
  expect(narrowed.status).toBe(201)
  expect(narrowed.body.repositories.map((r: { name: string }) => r.name)).toEqual(["widgets"])
  expect(narrowed.body.permissions).toEqual({ administration: "write", metadata: "read" })
  const auth = tokenAuth(narrowed.body.token)
  expect((await call("GET", "/repos/acme/widgets/actions/runners", { auth })).status).toBe(200)
  expect((await call("GET", "/repos/acme/gadgets/actions/runners", { auth })).status).toBe(404)
  const orgDenied = await call("GET", "/orgs/acme/actions/runners", { auth })
  expect(orgDenied.status).toBe(403)
  expect(orgDenied.headers.get("x-accepted-github-permissions")).toBe("organization_self_hosted_runners=read")
})

test("revokeTokens() and DELETE /installation/token invalidate tokens → 401 Bad credentials", async () => {
  const a = await mintToken()
  const b = await mintToken()
  expect((await call("DELETE", "/installation/token", { auth: tokenAuth(a) })).status).toBe(204)
  const afterDelete = await call("GET", "/repos/acme/widgets", { auth: tokenAuth(a) })
  expect(afterDelete.status).toBe(401)
  expect(afterDelete.body.message).toBe("Bad credentials")
  expect((await call("GET", "/repos/acme/widgets", { auth: tokenAuth(b) })).status).toBe(200)
  fake.revokeTokens()
  const afterRevoke = await call("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { auth: tokenAuth(b), body: jitBody("r-revoked") })
  expect(afterRevoke.status).toBe(401)
  expect(afterRevoke.body).toMatchObject({ message: "Bad credentials", status: "401" })
  expect((await call("GET", "/repos/acme/widgets", { auth: "token ghs_neverissued" })).status).toBe(401)
  // a fresh token works again
  expect((await call("GET", "/repos/acme/widgets", { auth: tokenAuth(await mintToken()) })).status).toBe(200)
})

test("tokenTtlSeconds: an expired installation token → 401 Bad credentials", async () => {
  const shortLived = await startFakeGitHub({ ...options, tokenTtlSeconds: 1 })
  try {
    const token = await mintToken(1001, undefined, shortLived.url)
    expect((await call("GET", "/repos/acme/widgets", { base: shortLived.url, auth: tokenAuth(token) })).status).toBe(200)
    await Bun.sleep(1100)
    const r = await call("GET", "/repos/acme/widgets", { base: shortLived.url, auth: tokenAuth(token) })
    expect(r.status).toBe(401)
    expect(r.body.message).toBe("Bad credentials")
  } finally {
    allCalls.push(...structuredClone(shortLived.calls))
    await shortLived.stop()
  }
})

// --- Installation lookups (JWT) -----------------------------------------------------------------

test("installation lookups by repo, org, user and id", async () => {
  const auth = `Bearer ${appJwt()}`
  expect((await call("GET", "/repos/acme/widgets/installation", { auth })).body.id).toBe(1001)
  expect((await call("GET", "/repos/acme/unlisted/installation", { auth })).status).toBe(404)
  expect((await call("GET", "/repos/octocat/anything/installation", { auth })).body.id).toBe(1002)
  expect((await call("GET", "/orgs/acme/installation", { auth })).body).toMatchObject({ id: 1001, app_id: APP_ID, target_type: "Organization" })
  expect((await call("GET", "/orgs/octocat/installation", { auth })).status).toBe(404)
  expect((await call("GET", "/orgs/elsewhere/installation", { auth })).status).toBe(404)
  expect((await call("GET", "/users/octocat/installation", { auth })).body).toMatchObject({ id: 1002, repository_selection: "all" })
  expect((await call("GET", "/users/nobody/installation", { auth })).status).toBe(404)
  const one = await call("GET", "/app/installations/1003", { auth })
  expect(one.body.permissions).toEqual({ administration: "read", metadata: "read" })
  expect((await call("GET", "/app/installations/2001", { auth })).status).toBe(404)
  const list = await call("GET", "/app/installations", { auth })
  expect(list.body.map((i: { id: number }) => i.id)).toEqual([1001, 1002, 1003])
})

// --- Permissions and scope ---------------------------------------------------------------------

test("missing permission → 403 Resource not accessible by integration with x-accepted-github-permissions", async () => {
  const auth = tokenAuth(await mintToken(1003))
  const jit = await call("POST", "/repos/readonly/docs/actions/runners/generate-jitconfig", { auth, body: jitBody("r1") })
  expect(jit.status).toBe(403)
  expect(jit.body.message).toBe("Resource not accessible by integration")
  expect(jit.headers.get("x-accepted-github-permissions")).toBe("administration=write")
  expect((await call("POST", "/repos/readonly/docs/actions/runners/registration-token", { auth })).status).toBe(403)
  // reading runners needs only administration=read
  expect((await call("GET", "/repos/readonly/docs/actions/runners", { auth })).status).toBe(200)
  const org = await call("POST", "/orgs/readonly/actions/runners/generate-jitconfig", { auth, body: jitBody("r1") })
  expect(org.status).toBe(403)
  expect(org.headers.get("x-accepted-github-permissions")).toBe("organization_self_hosted_runners=write")
  const groups = await call("GET", "/orgs/readonly/actions/runner-groups", { auth })
  expect(groups.status).toBe(403)
  expect(groups.headers.get("x-accepted-github-permissions")).toBe("organization_self_hosted_runners=read")
  expect(fake.runners()).toEqual([])
})

test("a token only reaches its installation's account and repositories → 404 otherwise", async () => {
  const auth = tokenAuth(await mintToken(1001))
  expect((await call("GET", "/repos/acme/unlisted/actions/runners", { auth })).status).toBe(404)
  expect((await call("GET", "/repos/octocat/widgets", { auth })).status).toBe(404)
  expect((await call("POST", "/orgs/octocat/actions/runners/registration-token", { auth })).status).toBe(404)
  const user = tokenAuth(await mintToken(1002))
  // a user account has no org endpoints; "all" repositories reach any repo of the user
  expect((await call("GET", "/orgs/octocat/actions/runners", { auth: user })).status).toBe(404)
  expect((await call("GET", "/repos/octocat/anything", { auth: user })).body.full_name).toBe("octocat/anything")
})

// --- JIT configs ---------------------------------------------------------------------------------

test("generate-jitconfig (repo) creates an offline ephemeral runner and a decodable config", async () => {
  const auth = tokenAuth(await mintToken())
  const r = await call("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { auth, body: jitBody("ghr-abc", { work_folder: "_work" }) })
  expect(r.status).toBe(201)
  expect(r.body.runner).toMatchObject({ name: "ghr-abc", status: "offline", busy: false, ephemeral: true, runner_group_id: 1 })
  expect(r.body.runner.labels.map((l: { name: string }) => l.name)).toEqual(["self-hosted", "linux", "x64"])
  const config = JSON.parse(Buffer.from(r.body.encoded_jit_config, "base64").toString("utf8"))
  expect(config).toEqual({ runner_id: r.body.runner.id, name: "ghr-abc", server: fake.url })
  expect(fake.runners()).toEqual([
    {
      id: r.body.runner.id,
      name: "ghr-abc",
      os: "linux",
      status: "offline",
      busy: false,
      labels: ["self-hosted", "linux", "x64"],
      scope: "repo:acme/widgets",
      runnerGroupId: 1,
      ephemeral: true
    }
  ])
})

test("generate-jitconfig validates like GitHub: 409 on a taken name, 422 on bad bodies, 400 on bad JSON", async () => {
  const auth = tokenAuth(await mintToken())
  const path = "/repos/acme/widgets/actions/runners/generate-jitconfig"
  expect((await call("POST", path, { auth, body: jitBody("dup") })).status).toBe(201)
  const dup = await call("POST", path, { auth, body: jitBody("dup") })
  expect(dup.status).toBe(409)
  expect(dup.body.message).toBe("Already exists - A runner with the name dup already exists.")

  const noGroup = await call("POST", path, { auth, body: { name: "x", labels: ["a"] } })
  expect(noGroup.status).toBe(422)
  expect(noGroup.body.message).toContain('"runner_group_id" wasn\'t supplied')
  const emptyLabels = await call("POST", path, { auth, body: jitBody("x", { labels: [] }) })
  expect(emptyLabels.status).toBe(422)
  expect(emptyLabels.body.message).toContain("labels")
  const tooMany = await call("POST", path, { auth, body: jitBody("x", { labels: Array.from({ length: 101 }, (_, i) => `l${i}`) }) })
  expect(tooMany.status).toBe(422)
  const badType = await call("POST", path, { auth, body: jitBody("x", { runner_group_id: "1" }) })
  expect(badType.status).toBe(422)
  const unknownGroup = await call("POST", path, { auth, body: jitBody("x", { runner_group_id: 7 }) })
  expect(unknownGroup.status).toBe(422)
  const badJson = await call("POST", path, { auth, rawBody: "{not json" })
  expect(badJson.status).toBe(400)
  expect(badJson.body.message).toBe("Problems parsing JSON")
  expect(fake.runners().map((r) => r.name)).toEqual(["dup"])
})

test("generate-jitconfig (org) honours runner groups; runner-groups lists them with GitHub's fields", async () => {
  const auth = tokenAuth(await mintToken())
  const groups = await call("GET", "/orgs/acme/actions/runner-groups", { auth })
  expect(groups.status).toBe(200)
  expect(groups.body.total_count).toBe(2)
  expect(groups.body.runner_groups.map((g: { id: number; name: string; default: boolean }) => [g.id, g.name, g.default])).toEqual([
    [1, "Default", true],
    [7, "ghr", false]
  ])
  const r = await call("POST", "/orgs/acme/actions/runners/generate-jitconfig", { auth, body: jitBody("org-1", { runner_group_id: 7 }) })
  expect(r.status).toBe(201)
  expect(fake.runners()[0]).toMatchObject({ scope: "org:acme", runnerGroupId: 7 })
  // the same name in another scope is fine
  expect((await call("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { auth, body: jitBody("org-1") })).status).toBe(201)
  expect((await call("POST", "/orgs/acme/actions/runners/generate-jitconfig", { auth, body: jitBody("org-1") })).status).toBe(409)
})

// --- Registration tokens and the runner list ------------------------------------------------------

test("registration-token and remove-token (repo and org) → 201 {token, expires_at} for an hour", async () => {
  const auth = tokenAuth(await mintToken())
  for (const path of [
    "/repos/acme/widgets/actions/runners/registration-token",
    "/repos/acme/widgets/actions/runners/remove-token",
    "/orgs/acme/actions/runners/registration-token",
    "/orgs/acme/actions/runners/remove-token"
  ]) {
    const r = await call("POST", path, { auth })
    secrets.add(r.body.token)
    expect(r.status).toBe(201)
    expect(Object.keys(r.body).sort()).toEqual(["expires_at", "token"])
    expect(Math.abs(Date.parse(r.body.expires_at) - (Date.now() + 3_600_000))).toBeLessThan(5_000)
  }
})

test("list (name filter, pagination), get and delete runners", async () => {
  const auth = tokenAuth(await mintToken())
  for (const name of ["a", "b", "c"]) {
    expect((await call("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { auth, body: jitBody(name) })).status).toBe(201)
  }
  const all = await call("GET", "/repos/acme/widgets/actions/runners", { auth })
  expect(all.body.total_count).toBe(3)
  const byName = await call("GET", "/repos/acme/widgets/actions/runners?name=b", { auth })
  expect(byName.body.runners.map((r: { name: string }) => r.name)).toEqual(["b"])
  const page2 = await call("GET", "/repos/acme/widgets/actions/runners?per_page=1&page=2", { auth })
  expect(page2.body.total_count).toBe(3)
  expect(page2.body.runners.map((r: { name: string }) => r.name)).toEqual(["b"])
  expect(page2.headers.get("link")).toContain('rel="next"')
  expect((await call("GET", "/orgs/acme/actions/runners", { auth })).body.total_count).toBe(0)

  const [a, b] = fake.runners()
  const got = await call("GET", `/repos/acme/widgets/actions/runners/${a!.id}`, { auth })
  expect(got.body).toMatchObject({ id: a!.id, name: "a", status: "offline", busy: false })
  expect((await call("GET", `/orgs/acme/actions/runners/${a!.id}`, { auth })).status).toBe(404)
  expect((await call("GET", "/repos/acme/widgets/actions/runners/424242", { auth })).status).toBe(404)

  // a busy runner cannot be deleted
  expect((await call("POST", `/_fake/runners/${b!.id}/status`, { body: { status: "online", busy: true } })).status).toBe(200)
  const busy = await call("DELETE", `/repos/acme/widgets/actions/runners/${b!.id}`, { auth })
  expect(busy.status).toBe(422)
  expect(busy.body.message).toContain("is still running a job")

  expect((await call("DELETE", `/repos/acme/widgets/actions/runners/${a!.id}`, { auth })).status).toBe(204)
  expect((await call("DELETE", `/repos/acme/widgets/actions/runners/${a!.id}`, { auth })).status).toBe(404)
  expect(fake.runners().map((r) => r.name)).toEqual(["b", "c"])

  const orgRunner = await call("POST", "/orgs/acme/actions/runners/generate-jitconfig", { auth, body: jitBody("o") })
  const orgId = orgRunner.body.runner.id as number
  expect((await call("GET", `/orgs/acme/actions/runners/${orgId}`, { auth })).body.name).toBe("o")
  expect((await call("GET", "/orgs/acme/actions/runners?name=o", { auth })).body.total_count).toBe(1)
  expect((await call("DELETE", `/orgs/acme/actions/runners/${orgId}`, { auth })).status).toBe(204)
  expect((await call("DELETE", `/orgs/acme/actions/runners/${orgId}`, { auth })).status).toBe(404)
})

// --- Repository, rate limit, installation repositories --------------------------------------------

test("GET /repos/{owner}/{repo}, /rate_limit and /installation/repositories", async () => {
  const token = await mintToken()
  const auth = tokenAuth(token)
  const repo = await call("GET", "/repos/acme/widgets", { auth })
  expect(repo.body).toMatchObject({ name: "widgets", full_name: "acme/widgets", owner: { login: "acme", type: "Organization" } })

  const limit = await call("GET", "/rate_limit", { auth })
  expect(limit.status).toBe(200)
  expect(limit.body.resources.core.limit).toBe(5000)
  expect(limit.body.resources.core.used).toBe(1) // /rate_limit itself does not count
  const anonymous = await call("GET", "/rate_limit")
  expect(anonymous.body.resources.core.limit).toBe(60)

  const repos = await call("GET", "/installation/repositories", { auth })
  expect(repos.body.total_count).toBe(2)
  expect(repos.body.repositories.map((r: { name: string }) => r.name)).toEqual(["gadgets", "widgets"])
  const user = tokenAuth(await mintToken(1002))
  await call("GET", "/repos/octocat/hello-world", { auth: user })
  const seen = await call("GET", "/installation/repositories", { auth: user })
  expect(seen.body).toMatchObject({ total_count: 1, repository_selection: "all" })
})

test("every response carries Date, rate-limit headers and a JSON content type", async () => {
  const auth = tokenAuth(await mintToken())
  const responses = [
    await call("GET", "/repos/acme/widgets", { auth }),
    await call("GET", "/repos/acme/widgets/actions/runners/1", { auth }),
    await call("GET", "/app"),
    await call("GET", "/nowhere")
  ]
  for (const r of responses) {
    expect(Math.abs(Date.parse(r.headers.get("date")!) - Date.now())).toBeLessThan(5_000)
    expect(r.headers.get("content-type")).toBe("application/json; charset=utf-8")
    for (const h of ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-used", "x-ratelimit-resource"]) {
      expect(r.headers.get(h)).not.toBeNull()
    }
  }
  expect(Number(responses[1]!.headers.get("x-ratelimit-remaining"))).toBe(Number(responses[0]!.headers.get("x-ratelimit-remaining")) - 1)
  expect(fake.calls.at(-1)).toMatchObject({ route: "(unmatched)", status: 404 })
})

// --- Faults ---------------------------------------------------------------------------------------

test("failNext serves the given response instead of the handler, the given number of times, and records it", async () => {
  const auth = tokenAuth(await mintToken())
  const route = "POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig"
  fake.failNext(route, { status: 503 }, 2)
  fake.failNext(route, {
    status: 429,
    headers: { "retry-after": "7", "x-ratelimit-remaining": "0" },
    body: { message: "API rate limit exceeded for installation ID 1001.", documentation_url: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api" }
  })
  fake.failNext(route, {
    status: 403,
    body: { message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", documentation_url: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits" }
  })
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) {
    const r = await call("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { auth, body: jitBody(`f${i}`) })
    statuses.push(r.status)
    if (r.status === 429) {
      expect(r.headers.get("retry-after")).toBe("7")
      expect(r.headers.get("x-ratelimit-remaining")).toBe("0")
      expect(r.headers.get("date")).not.toBeNull()
    }
    if (r.status === 503) expect(r.body.message).toBe("Service Unavailable")
  }
  expect(statuses).toEqual([503, 503, 429, 403, 201])
  expect(fake.runners().map((r) => r.name)).toEqual(["f4"])
  expect(fake.calls.filter((c) => c.route === "/repos/{owner}/{repo}/actions/runners/generate-jitconfig").map((c) => c.status)).toEqual([503, 503, 429, 403, 201])

  fake.failNext("POST /app/installations/{installation_id}/access_tokens", { status: 401, body: { message: "Bad credentials", documentation_url: "https://docs.github.com/rest" } })
  expect((await call("POST", "/app/installations/1001/access_tokens", { auth: `Bearer ${appJwt()}` })).status).toBe(401)
  expect(() => fake.failNext("POST /repos/{owner}/{repo}/nope", { status: 500 })).toThrow(/unknown route/)
})

test("reset() clears calls, runners and faults but keeps apps, installations and tokens", async () => {
  const auth = tokenAuth(await mintToken())
  await call("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { auth, body: jitBody("keep") })
  fake.failNext("GET /app", { status: 500 })
  expect(fake.runners()).toHaveLength(1)
  allCalls.push(...structuredClone(fake.calls))
  fake.reset()
  expect(fake.calls).toEqual([])
  expect(fake.runners()).toEqual([])
  expect(fake.tokensIssued()).toBe(0)
  expect((await call("GET", "/app", { auth: `Bearer ${appJwt()}` })).status).toBe(200)
  expect((await call("GET", "/repos/acme/widgets", { auth })).status).toBe(200)
})

// --- Test-only routes ----------------------------------------------------------------------------

test("/_fake/register, /_fake/unregister, status and complete mirror the runner's lifecycle", async () => {
  const auth = tokenAuth(await mintToken())
  const reg = (await call("POST", "/repos/acme/widgets/actions/runners/registration-token", { auth })).body.token as string
  const rm = (await call("POST", "/repos/acme/widgets/actions/runners/remove-token", { auth })).body.token as string
  secrets.add(reg)
  secrets.add(rm)
  const url = `${fake.url}/acme/widgets`

  const unknown = await call("POST", "/_fake/register", { body: { token: "NOPE", name: "r", labels: [], url, ephemeral: true } })
  expect(unknown.status).toBe(404)
  expect(unknown.body.message).toBe("Not Found")
  expect((await call("POST", "/_fake/register", { body: { token: reg, name: "r", labels: [], url: `${fake.url}/acme/gadgets` } })).status).toBe(404)
  expect((await call("POST", "/_fake/register", { body: { token: rm, name: "r", labels: [], url } })).status).toBe(404)

  const ok = await call("POST", "/_fake/register", { body: { token: reg, name: "reg-1", labels: ["gpu"], url, ephemeral: true } })
  expect(ok.status).toBe(200)
  expect(ok.body).toEqual({ id: expect.any(Number), name: "reg-1" })
  expect(fake.runners()[0]).toMatchObject({ name: "reg-1", scope: "repo:acme/widgets", ephemeral: true, status: "offline", labels: ["self-hosted", "Linux", "X64", "gpu"] })
  expect((await call("POST", "/_fake/register", { body: { token: reg, name: "reg-1", labels: [], url } })).status).toBe(409)
  const replaced = await call("POST", "/_fake/register", { body: { token: reg, name: "reg-1", labels: [], url, ephemeral: true, replace: true } })
  expect(replaced.body.id).not.toBe(ok.body.id)
  expect(fake.runners()).toHaveLength(1)

  expect((await call("POST", `/_fake/runners/${replaced.body.id}/status`, { body: { status: "online", busy: true } })).status).toBe(200)
  expect(fake.runners()[0]).toMatchObject({ status: "online", busy: true })
  expect((await call("POST", `/_fake/runners/${replaced.body.id}/complete`)).body).toEqual({ id: replaced.body.id, deleted: true })
  expect(fake.runners()).toEqual([])
  expect((await call("POST", `/_fake/runners/${replaced.body.id}/status`, { body: { status: "online" } })).status).toBe(404)

  const persistent = await call("POST", "/_fake/register", { body: { token: reg, name: "keeper", labels: [], url, ephemeral: false } })
  await call("POST", `/_fake/runners/${persistent.body.id}/complete`)
  expect(fake.runners().map((r) => r.name)).toEqual(["keeper"])
  expect((await call("POST", "/_fake/unregister", { body: { token: reg, name: "keeper" } })).status).toBe(404)
  expect((await call("POST", "/_fake/unregister", { body: { token: rm, name: "keeper" } })).status).toBe(204)
  expect(fake.runners()).toEqual([])
  const again = await call("POST", "/_fake/unregister", { body: { token: rm, name: "keeper" } })
  expect({ status: again.status, body: again.body }).toEqual({ status: 200, body: { deleted: false } })

  const orgReg = (await call("POST", "/orgs/acme/actions/runners/registration-token", { auth })).body.token as string
  secrets.add(orgReg)
  const org = await call("POST", "/_fake/register", { body: { token: orgReg, name: "o", labels: [], url: `${fake.url}/acme`, runnerGroup: "ghr" } })
  expect(org.status).toBe(200)
  expect(fake.runners()[0]).toMatchObject({ scope: "org:acme", runnerGroupId: 7 })
})

// --- Spec conformance ----------------------------------------------------------------------------

type Json = Record<string, any>

/** OpenAPI 3.0 schema → JSON Schema for ajv: `nullable` becomes a null type, examples go. */
const toJsonSchema = (schema: unknown): unknown => {
  if (Array.isArray(schema)) return schema.map(toJsonSchema)
  if (schema === null || typeof schema !== "object") return schema
  const out: Json = {}
  for (const [k, v] of Object.entries(schema as Json)) {
    if (k === "nullable" || k === "example" || k === "examples" || k.startsWith("x-")) continue
    if (k === "properties" || k === "patternProperties") {
      out[k] = Object.fromEntries(Object.entries(v as Json).map(([name, s]) => [name, toJsonSchema(s)]))
    } else if (k === "enum" || k === "default" || k === "required" || k === "const") {
      out[k] = v
    } else {
      out[k] = toJsonSchema(v)
    }
  }
  if ((schema as Json)["nullable"] === true) {
    if (typeof out["type"] === "string") {
      out["type"] = [out["type"], "null"]
      if (Array.isArray(out["enum"])) out["enum"] = [...out["enum"], null]
      return out
    }
    return { anyOf: [out, { type: "null" }] }
  }
  return out
}

/** Statuses GitHub documents for every endpoint, with the basic-error body. */
const genericStatuses = new Set([400, 401, 403, 404, 422, 429, 500, 502, 503, 504])

/** Exercises every API route once successfully and once with bad credentials. */
const exerciseEveryRoute = async (): Promise<void> => {
  const jwt = `Bearer ${appJwt()}`
  const auth = tokenAuth(await mintToken())
  const jit = await call("POST", "/repos/acme/widgets/actions/runners/generate-jitconfig", { auth, body: jitBody("sweep-repo") })
  const orgJit = await call("POST", "/orgs/acme/actions/runners/generate-jitconfig", { auth, body: jitBody("sweep-org") })
  const params: Record<string, string> = {
    installation_id: "1001",
    owner: "acme",
    repo: "widgets",
    org: "acme",
    username: "acme"
  }
  const apiRoutes = fakeGitHubRoutes.filter((r) => !r.includes("/_fake/"))
  for (const key of apiRoutes) {
    const [method, template] = key.split(" ") as [string, string]
    const runnerId = template.startsWith("/orgs/") ? orgJit.body.runner.id : jit.body.runner.id
    const path = template.replace(/\{(\w+)\}/g, (_, name: string) => (name === "runner_id" ? String(runnerId) : params[name]!))
    const jwtRoute = template.startsWith("/app") || template.endsWith("/installation")
    if (template === "/installation/token") continue // revokes the sweep's token: done last
    if (template.endsWith("/generate-jitconfig")) continue // done above
    if (method === "DELETE") continue // done after the GETs below
    const ok = await call(method, path, { auth: jwtRoute ? jwt : auth })
    expect({ key, status: ok.status }).toEqual({ key, status: method === "POST" ? 201 : 200 })
  }
  for (const path of [`/repos/acme/widgets/actions/runners/${jit.body.runner.id}`, `/orgs/acme/actions/runners/${orgJit.body.runner.id}`]) {
    expect((await call("DELETE", path, { auth })).status).toBe(204)
  }
  expect((await call("DELETE", "/installation/token", { auth })).status).toBe(204)
  // error paths: bad credentials everywhere (and an injected 500 where none is needed)
  for (const key of apiRoutes) {
    const [method, template] = key.split(" ") as [string, string]
    const path = template.replace(/\{(\w+)\}/g, (_, name: string) => (name === "runner_id" ? "1" : params[name]!))
    if (template === "/rate_limit") fake.failNext(key, { status: 500 })
    const bad = await call(method, path, { auth: "token ghs_bogus", ...(method === "POST" && template.endsWith("jitconfig") ? { body: jitBody("x") } : {}) })
    expect({ key, status: bad.status }).toEqual({ key, status: template === "/rate_limit" ? 500 : 401 })
  }
}

test("every recorded call conforms to GitHub's OpenAPI description", async () => {
  await exerciseEveryRoute()
  allCalls.push(...structuredClone(fake.calls))

  const spec = JSON.parse(readFileSync(new URL("../node_modules/@octokit/openapi/generated/api.github.com.deref.json", import.meta.url), "utf8")) as Json
  // Erratum in GitHub's description: "List installations" types `account` as allOf[Simple User,
  // Enterprise] (no real account has both shapes); "Get an installation" says anyOf, as here.
  const listAccount = spec["paths"]["/app/installations"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["items"]["properties"]["account"] as Json
  expect(listAccount["allOf"]).toHaveLength(2)
  listAccount["anyOf"] = listAccount["allOf"]
  delete listAccount["allOf"]
  const ajv = new Ajv({ strict: false, allErrors: true, logger: false })
  addFormats(ajv)
  for (const f of ["int32", "int64", "binary", "uri-template"]) ajv.addFormat(f, true)
  const basicErrorSchema = spec["paths"]["/app/installations/{installation_id}"]["get"]["responses"]["404"]["content"]["application/json"]["schema"]
  expect(basicErrorSchema.title).toBe("Basic Error")
  const basicError = { ...(toJsonSchema(basicErrorSchema) as Json), required: ["message", "documentation_url"] }
  const validators = new Map<string, ValidateFunction>()
  const validator = (key: string, schema: unknown): ValidateFunction => {
    let v = validators.get(key)
    if (v === undefined) {
      v = ajv.compile(toJsonSchema(schema) as Json)
      validators.set(key, v)
    }
    return v
  }

  const api = allCalls.filter((c) => !c.route.startsWith("/_fake/") && c.route !== "(unmatched)")
  expect(api.length).toBeGreaterThan(100)
  const problems: string[] = []
  for (const c of api) {
    const where = `${c.method} ${c.path} → ${c.status}`
    const op = spec["paths"][c.route]?.[c.method.toLowerCase()] as Json | undefined
    if (op === undefined) {
      problems.push(`${where}: ${c.method} ${c.route} is not in the spec`)
      continue
    }
    const queryParams = new Set<string>((op["parameters"] ?? []).filter((p: Json) => p["in"] === "query").map((p: Json) => p["name"]))
    for (const q of Object.keys(c.query)) if (!queryParams.has(q)) problems.push(`${where}: query parameter ${q} is not in the spec`)

    if (c.requestBody !== undefined && c.status < 400) {
      const schema = op["requestBody"]?.["content"]?.["application/json"]?.["schema"]
      if (schema === undefined) problems.push(`${where}: sent a body to an operation that takes none`)
      else {
        const v = validator(`${c.method} ${c.route} request`, schema)
        if (!v(c.requestBody)) problems.push(`${where}: request body: ${ajv.errorsText(v.errors)}`)
      }
    }

    const documented = op["responses"][String(c.status)] as Json | undefined
    if (documented === undefined) {
      if (!genericStatuses.has(c.status)) {
        problems.push(`${where}: status ${c.status} is neither documented for the operation nor generic`)
        continue
      }
      const v = validator("basic-error", basicError)
      if (!v(c.responseBody)) problems.push(`${where}: generic error body: ${ajv.errorsText(v.errors)}`)
      continue
    }
    const schema = documented["content"]?.["application/json"]?.["schema"]
    if (schema === undefined) {
      if (c.responseBody !== undefined) problems.push(`${where}: the spec documents no body, got ${JSON.stringify(c.responseBody)}`)
      continue
    }
    const v = validator(`${c.method} ${c.route} ${c.status}`, schema)
    if (!v(c.responseBody)) problems.push(`${where}: response body: ${ajv.errorsText(v.errors)}`)
  }
  expect(problems).toEqual([])

  // the checker has teeth: a corrupted runner or a missing required field is caught
  const jitOp = spec["paths"]["/repos/{owner}/{repo}/actions/runners/generate-jitconfig"]["post"]
  const jitCheck = validator("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig 201", jitOp["responses"]["201"]["content"]["application/json"]["schema"])
  const good = api.find((c) => c.route === "/repos/{owner}/{repo}/actions/runners/generate-jitconfig" && c.status === 201)!.responseBody as Json
  expect(jitCheck(good)).toBe(true)
  expect(jitCheck({ ...good, runner: { ...good["runner"], busy: "no" } })).toBe(false)
  expect(jitCheck({ runner: good["runner"] })).toBe(false)
  const jitRequest = validator("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig request", jitOp["requestBody"]["content"]["application/json"]["schema"])
  expect(jitRequest({ name: "x", labels: ["a"] })).toBe(false)

  // coverage: every API route the fake serves was seen succeeding and failing
  for (const key of fakeGitHubRoutes.filter((r) => !r.includes("/_fake/"))) {
    const [method, route] = key.split(" ")
    const statuses = api.filter((c) => c.method === method && c.route === route).map((c) => c.status)
    expect({ key, success: statuses.some((s) => s < 300), failure: statuses.some((s) => s >= 400) }).toEqual({ key, success: true, failure: true })
  }
})

test("calls never record an Authorization header, a JWT or a token value", () => {
  const recorded = JSON.stringify(allCalls)
  expect(allCalls.length).toBeGreaterThan(100)
  expect(secrets.size).toBeGreaterThan(10)
  expect(recorded.toLowerCase()).not.toContain("authorization")
  expect(recorded).not.toContain("ghs_")
  for (const secret of secrets) expect(recorded).not.toContain(secret)
  for (const c of allCalls) expect(Object.keys(c).sort()).toEqual(["method", "path", "query", "requestBody", "responseBody", "route", "status"])
})
