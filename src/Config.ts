import { Context, Effect, Layer } from "effect"
import { ConfigError, SecretError } from "./Errors.ts"
import { Secrets } from "./Secrets.ts"
import { appSecretExample, type Env, missingAppSecretKeys, resolveSettings, type SecretInputs, type Settings } from "./Settings.ts"

/**
 * Reads the JSON secrets the environment names: the config secret (`GHR_CONFIG_SECRET`) and,
 * unless `readAppSecret` is false, the App secret (`GHR_APP_SECRET`), which must then provide
 * every App credential the environment does not.
 */
export const readSecretInputs = (env: Env, options: { readonly readAppSecret: boolean }) =>
  Effect.gen(function*() {
    const secrets = yield* Secrets
    const configSecretId = env["GHR_CONFIG_SECRET"]?.trim()
    const appSecretId = env["GHR_APP_SECRET"]?.trim()
    const configSecret = configSecretId ? yield* secrets.getJson(configSecretId, "GHR_CONFIG_SECRET") : undefined
    if (!appSecretId || !options.readAppSecret) return { configSecret } satisfies SecretInputs
    const appSecret = yield* secrets.getJson(appSecretId, "GHR_APP_SECRET")
    const missing = missingAppSecretKeys(appSecret, env)
    if (missing.length > 0) {
      return yield* new SecretError({
        secretId: appSecretId,
        setting: "GHR_APP_SECRET",
        reason: "missing-key",
        detail: `the secret has no ${missing.map((k) => `"${k}"`).join(", ")} key; store JSON like ${appSecretExample}`
      })
    }
    return { configSecret, appSecret } satisfies SecretInputs
  })

/**
 * The validated settings of this process. The production layer reads the environment and, when
 * named there, the JSON config secret and the App secret from Secrets Manager.
 */
export class Config extends Context.Service<Config, Settings>()("ghr/Config") {
  static readonly fromEnv = (env: Env): Layer.Layer<Config, ConfigError | SecretError, Secrets> =>
    Layer.effect(
      Config,
      Effect.gen(function*() {
        // A runner started with a JIT config never needs, and should never read, the App key.
        const jitHandedOver = Boolean(env["ACTIONS_RUNNER_INPUT_JITCONFIG"]?.trim() || env["GHR_JITCONFIG"]?.trim())
        const inputs = yield* readSecretInputs(env, { readAppSecret: !jitHandedOver })
        const resolution = resolveSettings(env, inputs, {
          arch: process.arch,
          stdoutIsTty: process.stdout.isTTY === true
        })
        if (resolution._tag === "invalid") return yield* new ConfigError({ problems: resolution.problems })
        return Config.of(resolution.settings)
      })
    )

  static readonly layerTest = (settings: Settings) => Layer.succeed(Config, Config.of(settings))
}
