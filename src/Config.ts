import { Context, Effect, Layer } from "effect"
import { ConfigError, SecretError } from "./Errors.ts"
import { Secrets } from "./Secrets.ts"
import { type Env, missingAppSecretKeys, resolveSettings, type Settings } from "./Settings.ts"

/**
 * The validated settings of this process. The production layer reads the environment and, when
 * named there, the JSON config secret and the App secret from Secrets Manager.
 */
export class Config extends Context.Service<Config, Settings>()("ghr/Config") {
  static readonly fromEnv = (env: Env): Layer.Layer<Config, ConfigError | SecretError, Secrets> =>
    Layer.effect(
      Config,
      Effect.gen(function*() {
        const secrets = yield* Secrets
        const configSecretId = env["GHR_CONFIG_SECRET"]?.trim()
        const appSecretId = env["GHR_APP_SECRET"]?.trim()
        const jitHandedOver = Boolean(env["ACTIONS_RUNNER_INPUT_JITCONFIG"]?.trim() || env["GHR_JITCONFIG"]?.trim())
        const configSecret = configSecretId
          ? yield* secrets.getJson(configSecretId, "GHR_CONFIG_SECRET")
          : undefined
        // A runner started with a JIT config never needs, and should never read, the App key.
        const appSecret = appSecretId && !jitHandedOver
          ? yield* secrets.getJson(appSecretId, "GHR_APP_SECRET")
          : undefined
        if (appSecretId && appSecret !== undefined) {
          const missing = missingAppSecretKeys(appSecret, env)
          if (missing.length > 0) {
            return yield* new SecretError({
              secretId: appSecretId,
              setting: "GHR_APP_SECRET",
              reason: "missing-key",
              detail: `the secret has no ${missing.map((k) => `"${k}"`).join(", ")} key; ` +
                'store JSON like {"app_id": 123, "installation_id": 456, "private_key": "-----BEGIN RSA PRIVATE KEY-----\\n…"}'
            })
          }
        }
        const resolution = resolveSettings(env, { configSecret, appSecret }, {
          arch: process.arch,
          stdoutIsTty: process.stdout.isTTY === true
        })
        if (resolution._tag === "invalid") return yield* new ConfigError({ problems: resolution.problems })
        return Config.of(resolution.settings)
      })
    )

  static readonly layerTest = (settings: Settings) => Layer.succeed(Config, Config.of(settings))
}
