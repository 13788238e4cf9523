/**
 * `ghr run` with its settings in AWS Secrets Manager (moto_server on 127.0.0.1), through the
 * compiled binary: the App secret and the config secret, and every way they can be wrong.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test"
import { ExitCode } from "../src/Errors.ts"
import { type GhrResult, runGhr, standInRunnerDir } from "./support/ghr.ts"
import { createIamUser, createSecret, type Moto, startMoto } from "./support/moto.ts"
import { APP_ID, REPO_INSTALLATION, startWorld, type World } from "./support/world.ts"

let world: World
let moto: Moto
let secureMoto: Moto
let runner: ReturnType<typeof standInRunnerDir>
beforeAll(async () => {
  ;[world, moto, secureMoto] = await Promise.all([startWorld(), startMoto(), startMoto({ enforceIam: true })])
})
afterAll(async () => {
  runner?.cleanup()
  await Promise.all([world.github.stop(), moto.stop(), secureMoto.stop()])
})
beforeEach(() => {
  world.github.reset()
  runner?.cleanup()
  runner = standInRunnerDir()
})

/** The repo-scope environment without App credentials: they come from the secret. */
const withoutCredentials = () => {
  const { GITHUB_APP_ID: _a, GITHUB_APP_INSTALLATION_ID: _i, GITHUB_APP_PRIVATE_KEY: _k, ...env } = world.repoEnv
  return { ...env, RUNNER_DIR: runner.dir, STANDIN_RECORD_DIR: runner.recordDir }
}

const failed = (result: GhrResult) => result.records.find((r) => r["event"] === "ghr.failed") ?? {}

let secretCount = 0
const secret = (value: string, on: Moto = moto) => createSecret(on.endpoint, `ghr/test-${++secretCount}`, value)
const appSecretJson = () => JSON.stringify({ app_id: APP_ID, installation_id: REPO_INSTALLATION, private_key: world.key.privateKeyPem })

describe("App secret (GHR_APP_SECRET)", () => {
  test("credentials come from the secret, by ARN or by name; the runner gets no AWS credentials", async () => {
    const arn = await secret(appSecretJson())
    for (const id of [arn, `ghr/test-${secretCount}`]) {
      const result = await runGhr(["run"], { env: { ...moto.env, ...withoutCredentials(), GHR_APP_SECRET: id } })
      expect(result.exitCode).toBe(0)
    }
    expect(world.github.tokensIssued()).toBe(2)
    const env = await Bun.file(`${runner.recordDir}/${(await Array.fromAsync(new Bun.Glob("run-*.env").scan(runner.recordDir)))[0]}`).text()
    expect(env).not.toContain("AWS_ACCESS_KEY_ID=")
    expect(env).not.toContain("GHR_APP_SECRET=")
  })

  test("config secret supplies runner settings; explicit env wins", async () => {
    const appArn = await secret(appSecretJson())
    const configArn = await secret(JSON.stringify({ runner_labels: ["from-secret", "linux"], runner_name_prefix: "secret-prefix" }))
    const result = await runGhr(["run"], {
      env: { ...moto.env, ...withoutCredentials(), GHR_APP_SECRET: appArn, GHR_CONFIG_SECRET: configArn, RUNNER_NAME_PREFIX: "env-prefix" }
    })
    expect(result.exitCode).toBe(0)
    const jit = world.github.calls.find((c) => c.route.endsWith("generate-jitconfig"))!.requestBody as { labels: Array<string>; name: string }
    expect(jit.labels).toEqual(["from-secret", "linux"])
    expect(jit.name.startsWith("env-prefix-")).toBe(true)
  })

  test("secret not found: exit 78 naming the secret and GHR_APP_SECRET", async () => {
    const result = await runGhr(["run"], { env: { ...moto.env, ...withoutCredentials(), GHR_APP_SECRET: "ghr/does-not-exist" } })
    expect(result.exitCode).toBe(ExitCode.configError)
    expect(failed(result)["error"]).toBe("SecretError")
    expect(String(failed(result)["msg"])).toContain("GHR_APP_SECRET=ghr/does-not-exist")
    expect(world.github.calls).toHaveLength(0)
  })

  test("secret not JSON: exit 78, and the value is not echoed", async () => {
    const arn = await secret(world.key.privateKeyPem)
    const result = await runGhr(["run"], { env: { ...moto.env, ...withoutCredentials(), GHR_APP_SECRET: arn } })
    expect(result.exitCode).toBe(ExitCode.configError)
    expect(String(failed(result)["msg"])).toContain("JSON")
    expect(result.stdout + result.stderr).not.toContain(world.key.privateKeyPem.split("\n")[1]!)
  })

  test("secret missing a key: exit 78 naming the key", async () => {
    const arn = await secret(JSON.stringify({ app_id: APP_ID, private_key: world.key.privateKeyPem }))
    const result = await runGhr(["run"], { env: { ...moto.env, ...withoutCredentials(), GHR_APP_SECRET: arn } })
    expect(result.exitCode).toBe(ExitCode.configError)
    expect(String(failed(result)["msg"])).toContain('"installation_id"')
  })

  test("access denied: exit 78 naming the IAM action", async () => {
    const arn = await secret(appSecretJson(), secureMoto)
    const denied = await createIamUser(secureMoto.endpoint, "no-secrets")
    const result = await runGhr(["run"], {
      env: {
        ...secureMoto.env,
        AWS_ACCESS_KEY_ID: denied.accessKeyId,
        AWS_SECRET_ACCESS_KEY: denied.secretAccessKey,
        ...withoutCredentials(),
        GHR_APP_SECRET: arn
      }
    })
    expect(result.exitCode).toBe(ExitCode.configError)
    expect(String(failed(result)["msg"])).toContain("secretsmanager:GetSecretValue")
    expect(world.github.calls).toHaveLength(0)
  })

  test("config secret with an unknown key is a configuration problem", async () => {
    const configArn = await secret(JSON.stringify({ runner_lables: "typo" }))
    const result = await runGhr(["run"], { env: { ...moto.env, ...world.repoEnv, RUNNER_DIR: runner.dir, GHR_CONFIG_SECRET: configArn } })
    expect(result.exitCode).toBe(ExitCode.configError)
    expect(String(failed(result)["msg"])).toContain('unknown key "runner_lables"')
  })

  test("a runner handed a JIT config never reads the App secret", async () => {
    // An App secret id that does not exist would fail if it were read.
    const result = await runGhr(["run"], {
      env: { ...moto.env, GITHUB_OWNER: "solo", DOCKER_MODE: "none", GHR_HEALTH_PORT: "0", RUNNER_DIR: runner.dir, GHR_APP_SECRET: "ghr/never-read", ACTIONS_RUNNER_INPUT_JITCONFIG: "not-a-real-config" }
    })
    // The stand-in rejects the bogus JIT config itself; what matters is that ghr got that far.
    expect(result.records.some((r) => r["event"] === "runner.started")).toBe(true)
    expect(failed(result)["error"]).toBeUndefined()
  })
})
