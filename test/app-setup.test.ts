/**
 * GitHub App setup: the least-privilege manifest and registration link (`ghr app manifest`), and
 * the App secret (`ghr app secret`) against the fake GitHub and moto_server, through the binary.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager"
import {
  appSecretJson,
  appSettingsUrl,
  buildManifest,
  checkPermissions,
  defaultAppName,
  inspectPrivateKey,
  maxAppNameLength,
  parseAppIdentifier,
  registrationUrl,
  requiredPermissions
} from "../src/AppSetup.ts"
import { ExitCode } from "../src/Errors.ts"
import { type GhrResult, runGhr } from "./support/ghr.ts"
import { generateAppKey, generateEcKey } from "./support/keys.ts"
import { type Moto, region, startMoto } from "./support/moto.ts"
import { APP_ID, CLIENT_ID, ORG_INSTALLATION, REPO_INSTALLATION, startWorld, type World } from "./support/world.ts"

/**
 * The permissions ghr needs, from ../shared/notes/github-api.md ("Permissions"): repository runners
 * need repository Administration: read & write + Metadata: read; organization runners need
 * organization Self-hosted runners: read & write + Metadata: read. Nothing else.
 */
const needed = {
  repo: { administration: "write", metadata: "read" },
  org: { organization_self_hosted_runners: "write", metadata: "read" }
} as const

describe("manifest", () => {
  test("organization runners: Self-hosted runners write + Metadata read, nothing else; private; no webhook, no events", () => {
    const m = buildManifest({ githubUrl: "https://github.com", owner: "acme" })
    expect(m.default_permissions).toEqual(needed.org)
    expect(m.public).toBe(false)
    expect(m.default_events).toEqual([])
    expect(m.hook_attributes.active).toBe(false)
    expect(m.url).toBe("https://github.com/acme")
    expect(m.name).toBe("ghr-acme")
    expect(Object.keys(m).sort()).toEqual(["default_events", "default_permissions", "description", "hook_attributes", "name", "public", "url"])
  })

  test("repository runners: Administration write + Metadata read, nothing else", () => {
    const m = buildManifest({ githubUrl: "https://ghes.example.com/", owner: "solo", repo: "app", name: "my-runners" })
    expect(m.default_permissions).toEqual(needed.repo)
    expect(m.url).toBe("https://ghes.example.com/solo/app")
    expect(m.name).toBe("my-runners")
    expect(m.hook_attributes).toEqual({ url: "https://ghes.example.com/solo/app", active: false })
  })

  test("the required permissions and the manifest agree", () => {
    for (const kind of ["repo", "org"] as const) {
      expect(Object.fromEntries(requiredPermissions(kind).map((p) => [p.key, p.access]))).toEqual(needed[kind])
      expect(checkPermissions(kind, needed[kind]).ok).toBe(true)
    }
  })

  test("the registration link pre-fills the same settings (organization, or a personal account)", () => {
    const m = buildManifest({ githubUrl: "https://github.com", owner: "acme" })
    const url = new URL(registrationUrl("https://github.com", "acme", false, m))
    expect(url.origin + url.pathname).toBe("https://github.com/organizations/acme/settings/apps/new")
    expect(url.searchParams.get("organization_self_hosted_runners")).toBe("write")
    expect(url.searchParams.get("metadata")).toBe("read")
    expect(url.searchParams.get("administration")).toBeNull()
    expect(url.searchParams.get("webhook_active")).toBe("false")
    expect(url.searchParams.get("public")).toBe("false")
    expect(url.searchParams.get("name")).toBe("ghr-acme")
    const personal = new URL(registrationUrl("https://github.com", "solo", true, buildManifest({ githubUrl: "https://github.com", owner: "solo", repo: "app" })))
    expect(personal.pathname).toBe("/settings/apps/new")
    expect(personal.searchParams.get("administration")).toBe("write")
  })

  test("App names fit GitHub's limit", () => {
    expect(defaultAppName("a".repeat(39), "repository-with-a-long-name").length).toBeLessThanOrEqual(maxAppNameLength)
    expect(defaultAppName("acme", undefined)).toBe("ghr-acme")
  })

  test("settings page of an organization's App and of a user's App", () => {
    expect(appSettingsUrl("https://github.com", { slug: "x", owner: { login: "acme", type: "Organization" } }, "permissions"))
      .toBe("https://github.com/organizations/acme/settings/apps/x/permissions")
    expect(appSettingsUrl("https://github.com", { slug: "x", owner: { login: "me", type: "User" } })).toBe("https://github.com/settings/apps/x")
  })
})

describe("key and secret helpers", () => {
  test("private key: RSA signs; EC, garbage and a public key are refused with a reason, never the key", () => {
    const rsa = generateAppKey()
    expect(inspectPrivateKey(rsa.privateKeyPem)).toMatchObject({ ok: true, bits: 2048, format: "PKCS#1" })
    expect(inspectPrivateKey(generateAppKey("pkcs8").privateKeyPem)).toMatchObject({ ok: true, format: "PKCS#8" })
    expect(inspectPrivateKey(rsa.privateKeyPem.replace(/\n/g, "\\n")).ok).toBe(true)
    for (const bad of [generateEcKey(), "not a key", rsa.publicKeyPem]) {
      const out = inspectPrivateKey(bad)
      expect(out.ok).toBe(false)
      if (!out.ok) expect(out.problem).not.toContain(bad.split("\n")[1] ?? bad)
    }
  })

  test("--app-id: App ID or client ID", () => {
    expect(parseAppIdentifier("4242")).toEqual({ appId: 4242, clientId: undefined })
    expect(parseAppIdentifier("Iv23liABC")).toEqual({ appId: undefined, clientId: "Iv23liABC" })
    expect(parseAppIdentifier("42 42")).toBeUndefined()
  })

  test("the secret JSON is what ghr reads", () => {
    const key = generateAppKey().privateKeyPem
    expect(JSON.parse(appSecretJson({ appId: 1, installationId: 2, privateKey: key }))).toEqual({ app_id: 1, installation_id: 2, private_key: key })
  })
})

describe("ghr app manifest", () => {
  test("prints the manifest and the link; --json is machine-readable", async () => {
    const text = await runGhr(["app", "manifest", "--owner", "acme"], { env: {} })
    expect(text.exitCode).toBe(0)
    expect(text.stdout).toContain('"organization_self_hosted_runners": "write"')
    expect(text.stdout).toContain("https://github.com/organizations/acme/settings/apps/new?")
    expect(text.stdout).toContain("ghr app secret --app-id")
    const json = await runGhr(["app", "manifest", "--owner", "solo", "--repo", "app", "--personal", "--json", "--github-url", "https://ghes.example.com"], { env: {} })
    expect(json.exitCode).toBe(0)
    const out = JSON.parse(json.stdout) as { manifest: { default_permissions: unknown }; create_url: string; manifest_form_url: string }
    expect(out.manifest.default_permissions).toEqual(needed.repo)
    expect(out.manifest_form_url).toBe("https://ghes.example.com/settings/apps/new")
    expect(out.create_url.startsWith("https://ghes.example.com/settings/apps/new?")).toBe(true)
  })

  test("bad input: a name too long, --personal without --repo, a missing --owner", async () => {
    const long = await runGhr(["app", "manifest", "--owner", "acme", "--name", "n".repeat(35)], { env: {} })
    expect(long.exitCode).toBe(ExitCode.configError)
    expect(long.stdout).toContain("--name")
    expect((await runGhr(["app", "manifest", "--owner", "acme", "--personal"], { env: {} })).exitCode).toBe(ExitCode.configError)
    expect((await runGhr(["app", "manifest"], { env: {} })).exitCode).toBe(ExitCode.usage)
  })
})

// =============================================================================================
// ghr app secret against the fake GitHub (and moto for --put)
// =============================================================================================

let world: World
let moto: Moto
let dir: string
beforeAll(async () => {
  ;[world, moto] = await Promise.all([startWorld(), startMoto()])
  dir = mkdtempSync(join(tmpdir(), "ghr-app-setup-"))
})
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true })
  await Promise.all([world.github.stop(), moto.stop()])
})
beforeEach(() => world.github.reset())

const keyFile = (text: string, name = `key-${Math.random().toString(36).slice(2)}.pem`) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const secret = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<GhrResult> =>
  runGhr(["app", "secret", "--github-url", world.github.url, "--api-url", world.github.url, ...args], { env, timeoutMs: 20_000 })

const failure = (result: GhrResult) => String(result.records.find((r) => r["event"] === "ghr.failed")?.["msg"] ?? `${result.stdout}${result.stderr}`)

describe("ghr app secret", () => {
  test("finds the organization's installation and prints exactly the JSON ghr reads", async () => {
    const result = await secret(["--app-id", String(APP_ID), "--key", keyFile(world.key.privateKeyPem), "--owner", "acme"])
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual({ app_id: APP_ID, installation_id: ORG_INSTALLATION, private_key: world.key.privateKeyPem })
    expect(result.stderr).toContain(`installation ${ORG_INSTALLATION} on acme`)
    expect(result.stderr).not.toContain("PRIVATE KEY")
    expect(world.github.calls.map((c) => `${c.method} ${c.route} ${c.status}`)).toEqual([
      "GET /app 200",
      "GET /orgs/{org}/installation 200"
    ])
  })

  test("a user's repository, by client ID: /orgs 404 is not needed with --repo", async () => {
    const result = await secret(["--app-id", CLIENT_ID, "--key", keyFile(world.key.privateKeyPem), "--owner", "solo", "--repo", "app"])
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ app_id: APP_ID, installation_id: REPO_INSTALLATION })
    expect(world.github.calls.map((c) => c.route)).toEqual(["/app", "/repos/{owner}/{repo}/installation"])
  })

  test("a user account without --repo: falls back from /orgs to /users", async () => {
    const result = await secret(["--app-id", String(APP_ID), "--key", keyFile(world.key.privateKeyPem), "--owner", "solo"])
    expect(result.exitCode).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ installation_id: REPO_INSTALLATION })
    expect(world.github.calls.map((c) => `${c.route} ${c.status}`)).toEqual(["/app 200", "/orgs/{org}/installation 404", "/users/{username}/installation 200"])
  })

  test("an installation without the runner permission: printed, with a warning naming it", async () => {
    const result = await secret(["--app-id", String(APP_ID), "--key", keyFile(world.key.privateKeyPem), "--owner", "readonly-org"])
    expect(result.exitCode).toBe(0)
    expect(result.stderr).toContain("Self-hosted runners: Read and write")
  })

  test("--put stores it in Secrets Manager and prints no key; ghr doctor then passes with it", async () => {
    const result = await secret(["--app-id", String(APP_ID), "--key", keyFile(world.key.privateKeyPem), "--owner", "solo", "--repo", "app", "--put", "ghr/app-setup"], moto.env)
    expect(result.exitCode).toBe(0)
    expect(result.stdout + result.stderr).not.toContain("PRIVATE KEY")
    expect(result.stdout).toContain("GHR_APP_SECRET=arn:aws:secretsmanager:")
    const client = new SecretsManagerClient({ endpoint: moto.endpoint, region, credentials: moto.credentials })
    try {
      const stored = await client.send(new GetSecretValueCommand({ SecretId: "ghr/app-setup" }))
      expect(JSON.parse(stored.SecretString ?? "")).toEqual({ app_id: APP_ID, installation_id: REPO_INSTALLATION, private_key: world.key.privateKeyPem })
    } finally {
      client.destroy()
    }
    const { GITHUB_APP_ID: _a, GITHUB_APP_INSTALLATION_ID: _i, GITHUB_APP_PRIVATE_KEY: _k, ...env } = world.repoEnv
    const doctor = await runGhr(["doctor", "--json"], { env: { ...moto.env, ...env, GHR_APP_SECRET: "ghr/app-setup" } })
    const checks = (JSON.parse(doctor.stdout) as { checks: Array<{ id: string; verdict: string }> }).checks
    for (const id of ["secrets", "config", "private-key", "app", "installation", "permissions", "repository"]) {
      expect(checks.find((c) => c.id === id)?.verdict).toBe("ok")
    }
  })

  test("installed on several accounts and no --owner: exit 78 listing them", async () => {
    const result = await secret(["--app-id", String(APP_ID), "--key", keyFile(world.key.privateKeyPem)])
    expect(result.exitCode).toBe(ExitCode.configError)
    expect(failure(result)).toContain("--owner")
    expect(failure(result)).toContain("acme, solo, readonly-org")
  })

  test("not installed on the owner: exit 77 with the install link", async () => {
    const result = await secret(["--app-id", String(APP_ID), "--key", keyFile(world.key.privateKeyPem), "--owner", "nobody"])
    expect(result.exitCode).toBe(ExitCode.authError)
    expect(failure(result)).toContain("not installed on nobody")
    expect(failure(result)).toContain("/installations/new")
  })

  test("a key of another App: exit 77, the key never printed", async () => {
    const other = generateAppKey().privateKeyPem
    const result = await secret(["--app-id", String(APP_ID), "--key", keyFile(other), "--owner", "acme"])
    expect(result.exitCode).toBe(ExitCode.authError)
    expect(failure(result)).toContain("private key")
    for (const line of other.split("\n").filter((l) => l.length >= 16 && !l.startsWith("-----"))) {
      expect(result.stdout + result.stderr).not.toContain(line)
    }
  })

  test("bad input: EC key, missing file, bad --app-id, --repo without --owner (exit 78), no GitHub call", async () => {
    const ec = await secret(["--app-id", "1", "--key", keyFile(generateEcKey())])
    expect(ec.exitCode).toBe(ExitCode.configError)
    expect(failure(ec)).toContain("RSA")
    const missing = await secret(["--app-id", "1", "--key", join(dir, "nope.pem")])
    expect(missing.exitCode).toBe(ExitCode.configError)
    expect(failure(missing)).toContain("no such file")
    expect((await secret(["--app-id", "not an id", "--key", keyFile(world.key.privateKeyPem)])).exitCode).toBe(ExitCode.configError)
    expect((await secret(["--app-id", "1", "--key", keyFile(world.key.privateKeyPem), "--repo", "app"])).exitCode).toBe(ExitCode.configError)
    expect(world.github.calls).toHaveLength(0)
  })
})
