/** A fake GitHub with one App and the installations most tests need, plus settings that point at it. */
import { afterAll, afterEach, beforeAll, beforeEach, expect } from "bun:test"
import { Effect, Layer, Redacted } from "effect"
import { Config } from "../../src/Config.ts"
import { GitHubApp } from "../../src/GitHubApp.ts"
import * as Log from "../../src/Log.ts"
import { resolveSettings, type Env, type Settings } from "../../src/Settings.ts"
import { type FakeGitHub, startFakeGitHub } from "./fake-github.ts"
import { standInRunnerDir } from "./ghr.ts"
import { generateAppKey, type TestKeyPair } from "./keys.ts"

export const APP_ID = 4242
export const CLIENT_ID = "Iv23liTestClient"
/** Installation on the organization "acme" with every runner permission. */
export const ORG_INSTALLATION = 100
/** Installation on the user "solo" for the repository solo/app with Administration write. */
export const REPO_INSTALLATION = 200
/** Installation on "readonly-org" with Metadata read only: runner calls are refused (403). */
export const NO_PERMISSION_INSTALLATION = 300

export interface World {
  readonly github: FakeGitHub
  readonly key: TestKeyPair
  /** Environment for `ghr run` at org scope on acme (App credentials, fake API, no Docker). */
  readonly orgEnv: Env
  /** Environment for `ghr run` at repo scope on solo/app. */
  readonly repoEnv: Env
}

export const startWorld = async (): Promise<World> => {
  const key = generateAppKey()
  const github = await startFakeGitHub({
    apps: [{ id: APP_ID, clientId: CLIENT_ID, slug: "ghr-test", publicKeyPem: key.publicKeyPem }],
    installations: [
      {
        id: ORG_INSTALLATION,
        appId: APP_ID,
        account: { login: "acme", type: "Organization" },
        permissions: { organization_self_hosted_runners: "write", administration: "write", metadata: "read" },
        repositories: "all"
      },
      {
        id: REPO_INSTALLATION,
        appId: APP_ID,
        account: { login: "solo", type: "User" },
        permissions: { administration: "write", metadata: "read" },
        repositories: ["app"]
      },
      {
        id: NO_PERMISSION_INSTALLATION,
        appId: APP_ID,
        account: { login: "readonly-org", type: "Organization" },
        permissions: { metadata: "read" },
        repositories: "all"
      }
    ],
    runnerGroups: { acme: [{ id: 1, name: "Default" }, { id: 7, name: "linux-docker" }] }
  })
  const common: Env = {
    GITHUB_URL: github.url,
    GITHUB_API_URL: github.url,
    GITHUB_APP_ID: String(APP_ID),
    GITHUB_APP_PRIVATE_KEY: key.privateKeyPem,
    DOCKER_MODE: "none",
    GHR_HEALTH_PORT: "0",
    GITHUB_API_MAX_RETRIES: "2"
  }
  return {
    github,
    key,
    orgEnv: { ...common, GITHUB_OWNER: "acme", GITHUB_APP_INSTALLATION_ID: String(ORG_INSTALLATION) },
    repoEnv: { ...common, GITHUB_OWNER: "solo", GITHUB_REPOSITORY: "app", GITHUB_APP_INSTALLATION_ID: String(REPO_INSTALLATION) }
  }
}

export const settingsFrom = (env: Env): Settings => {
  const r = resolveSettings(env, {}, { arch: "x64", stdoutIsTty: false })
  if (r._tag === "invalid") throw new Error(JSON.stringify(r.problems))
  return r.settings
}

/** GitHubApp over the fake, with a logger that writes into `lines`. */
export const gitHubAppLayer = (env: Env, lines: Array<string> = []) =>
  GitHubApp.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(Config.layerTest(settingsFrom(env)), Log.layer({ format: "json", level: "debug", write: (l) => void lines.push(l) }))),
    Layer.provideMerge(Log.Redaction.layer)
  )

export const jitInput = (name: string) => ({ name, labels: ["self-hosted", "linux"], runnerGroupId: 1, workFolder: "_work" })

export const secretOf = (r: Redacted.Redacted<string>) => Redacted.value(r)

export const useGitHubApp = <A, E>(env: Env, f: (app: GitHubApp["Service"]) => Effect.Effect<A, E>, lines?: Array<string>) =>
  Effect.gen(function*() {
    return yield* f(yield* GitHubApp)
  }).pipe(Effect.provide(gitHubAppLayer(env, lines)))

/**
 * The hooks the binary tests share: one fake GitHub per file, a fresh stand-in runner per test,
 * and after each test the check that no runner is left registered, whatever the test did.
 */
export const useRunnerWorld = () => {
  const context = {} as { world: World; runner: ReturnType<typeof standInRunnerDir> }
  beforeAll(async () => {
    context.world = await startWorld()
  })
  afterAll(() => context.world.github.stop())
  beforeEach(() => {
    context.world.github.reset()
    context.runner = standInRunnerDir()
  })
  afterEach(() => {
    expect(context.world.github.runners()).toEqual([])
    context.runner.cleanup()
  })
  return context
}
