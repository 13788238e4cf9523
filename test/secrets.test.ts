import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { createServer, type Server } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, type Layer } from "effect"
import { SecretError } from "../src/Errors.ts"
import { putSetting, secretErrorFromAws, Secrets } from "../src/Secrets.ts"
import { runFailure, runTest } from "./support/effect.ts"
import { createIamUser, createSecret, type Moto, region, startMoto } from "./support/moto.ts"
import { generateAppKey } from "./support/keys.ts"
import { freePort } from "./support/ports.ts"

const privateKey = generateAppKey().privateKeyPem
const appSecret = { app_id: 123, installation_id: 456, private_key: privateKey }

const getJson = (layer: Layer.Layer<Secrets>, secretId: string, setting = "GHR_APP_SECRET") =>
  Effect.gen(function*() {
    const secrets = yield* Secrets
    return yield* secrets.getJson(secretId, setting)
  }).pipe(Effect.provide(layer))

const putString = (layer: Layer.Layer<Secrets>, secretId: string, value: string) =>
  Effect.gen(function*() {
    const secrets = yield* Secrets
    return yield* secrets.putString(secretId, value)
  }).pipe(Effect.provide(layer))

/** Asserts nothing about the error reveals `value` (detail, message, the encoded error). */
const expectNoLeak = (error: SecretError, value: string) => {
  for (const text of [error.detail, error.message, JSON.stringify(error), String(error)]) {
    expect(text).not.toContain(value)
    // Not even one line of it (a PEM body line is distinctive on its own).
    for (const line of value.split("\n").filter((l) => l.length > 40)) expect(text).not.toContain(line)
  }
}

let moto: Moto
let layer: Layer.Layer<Secrets>
const timings: Array<string> = []

beforeAll(async () => {
  moto = await startMoto()
  timings.push(`moto_server ready in ${moto.startupMs} ms`)
  layer = Secrets.layerWithClientConfig({ endpoint: moto.endpoint, region, credentials: moto.credentials })
})

afterAll(async () => {
  await moto?.stop()
  console.log(timings.join("; "))
})

describe("Secrets against moto_server", () => {
  test("reads a JSON object secret by name and by ARN", async () => {
    const arn = await createSecret(moto.endpoint, "ghr/app-read", JSON.stringify(appSecret))
    expect(arn).toStartWith("arn:aws:secretsmanager:us-east-1:")
    expect(await runTest(getJson(layer, "ghr/app-read"))).toEqual(appSecret)
    expect(await runTest(getJson(layer, arn))).toEqual(appSecret)
  })

  test("an unknown secret is not-found, naming the id, the setting and the region", async () => {
    const error = await runFailure(getJson(layer, "ghr/does-not-exist", "GHR_CONFIG_SECRET"))
    expect(error).toBeInstanceOf(SecretError)
    expect(error.reason).toBe("not-found")
    expect(error.secretId).toBe("ghr/does-not-exist")
    expect(error.message).toStartWith("GHR_CONFIG_SECRET=ghr/does-not-exist: ")
    expect(error.detail).toContain("region us-east-1")
    expect(error.detail).toContain("name or full ARN")
  })

  test("a value that is not JSON is not-json and the value is never echoed", async () => {
    await createSecret(moto.endpoint, "ghr/pem", privateKey)
    const error = await runFailure(getJson(layer, "ghr/pem"))
    expect(error.reason).toBe("not-json")
    expect(error.detail).toContain("not valid JSON")
    expect(error.detail).toContain("JSON object")
    expectNoLeak(error, privateKey)
  })

  test("a JSON array or a JSON string is not-json", async () => {
    await createSecret(moto.endpoint, "ghr/array", JSON.stringify(["secretkeymaterial"]))
    await createSecret(moto.endpoint, "ghr/string", JSON.stringify(privateKey))
    const array = await runFailure(getJson(layer, "ghr/array"))
    expect(array.reason).toBe("not-json")
    expect(array.detail).toContain("a JSON array")
    expectNoLeak(array, privateKey)
    const string = await runFailure(getJson(layer, "ghr/string"))
    expect(string.reason).toBe("not-json")
    expect(string.detail).toContain("a JSON string")
    expectNoLeak(string, privateKey)
  })

  test("a binary-only secret is not-json", async () => {
    await createSecret(moto.endpoint, "ghr/binary", new TextEncoder().encode(JSON.stringify(appSecret)))
    const error = await runFailure(getJson(layer, "ghr/binary"))
    expect(error.reason).toBe("not-json")
    expect(error.detail).toContain("binary (SecretBinary)")
    expectNoLeak(error, privateKey)
  })

  test("putString creates a secret, then overwrites it", async () => {
    const created = await runTest(putString(layer, "ghr/put", JSON.stringify({ v: 1 })))
    expect(created.arn).toStartWith("arn:aws:secretsmanager:us-east-1:")
    expect(created.arn).toContain(":secret:ghr/put-")
    expect(await runTest(getJson(layer, "ghr/put"))).toEqual({ v: 1 })
    const overwritten = await runTest(putString(layer, "ghr/put", JSON.stringify({ v: 2 })))
    expect(overwritten.arn).toBe(created.arn)
    expect(await runTest(getJson(layer, "ghr/put"))).toEqual({ v: 2 })
    // Overwriting by ARN works too.
    await runTest(putString(layer, created.arn, JSON.stringify({ v: 3 })))
    expect(await runTest(getJson(layer, created.arn))).toEqual({ v: 3 })
  })

  test("a closed port is unavailable, quickly (bounded retries)", async () => {
    const port = await freePort()
    const closed = Secrets.layerWithClientConfig({
      endpoint: `http://127.0.0.1:${port}`,
      region,
      credentials: moto.credentials
    })
    const started = performance.now()
    const error = await runFailure(getJson(closed, "ghr/app-read"))
    const elapsed = performance.now() - started
    timings.push(`closed port failed after ${Math.round(elapsed)} ms`)
    expect(error.reason).toBe("unavailable")
    expect(error.detail).toContain("could not reach AWS Secrets Manager")
    expect(error.detail).toContain("ECONNREFUSED")
    expect(elapsed).toBeLessThan(10_000)
  })

  test("a server that never answers is unavailable once the request timeout fires", async () => {
    const sockets: Array<import("node:net").Socket> = []
    const silent: Server = createServer((socket) => void sockets.push(socket))
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
    const port = (silent.address() as import("node:net").AddressInfo).port
    try {
      const hanging = Secrets.layerWithClientConfig({
        endpoint: `http://127.0.0.1:${port}`,
        region,
        credentials: moto.credentials,
        maxAttempts: 2,
        requestHandler: { connectionTimeout: 300, requestTimeout: 300, throwOnRequestTimeout: true }
      })
      const started = performance.now()
      const error = await runFailure(getJson(hanging, "ghr/app-read"))
      const elapsed = performance.now() - started
      timings.push(`silent server failed after ${Math.round(elapsed)} ms`)
      expect(error.reason).toBe("unavailable")
      expect(error.detail).toContain("TimeoutError")
      expect(elapsed).toBeLessThan(5_000)
    } finally {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => silent.close(resolve))
    }
  })
})

/** Runs `Secrets.layer` (the production layer: SDK env resolution) in a child process with exactly `env`. */
const childGetJson = async (env: Record<string, string>, secretId: string) => {
  const home = join(tmpdir(), "ghr-secrets-test-home")
  const script = `
    import { Effect, Exit, Cause } from "effect"
    import { Secrets } from ${JSON.stringify(join(import.meta.dir, "../src/Secrets.ts"))}
    const exit = await Effect.runPromiseExit(Effect.gen(function*() {
      const secrets = yield* Secrets
      return yield* secrets.getJson(${JSON.stringify(secretId)}, "GHR_APP_SECRET")
    }).pipe(Effect.provide(Secrets.layer)))
    if (Exit.isSuccess(exit)) console.log(JSON.stringify({ ok: exit.value }))
    else {
      const failure = exit.cause.reasons.find(Cause.isFailReason)
      console.log(JSON.stringify(failure ? { error: { reason: failure.error.reason, detail: failure.error.detail } } : { defect: Cause.pretty(exit.cause) }))
    }
  `
  const child = Bun.spawn([process.execPath, "-e", script], {
    cwd: join(import.meta.dir, ".."),
    env: {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      HOME: home,
      AWS_CONFIG_FILE: join(home, "no-config"),
      AWS_SHARED_CREDENTIALS_FILE: join(home, "no-credentials"),
      AWS_EC2_METADATA_DISABLED: "true",
      ...env
    },
    stdout: "pipe",
    stderr: "pipe",
    timeout: 30_000
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited
  ])
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" })
  return JSON.parse(stdout.trim()) as {
    ok?: unknown
    error?: { reason: string; detail: string }
    defect?: string
  }
}

describe("Secrets.layer (the SDK's own configuration resolution, in a child process)", () => {
  test("reads region, endpoint and credentials from AWS_REGION / AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID", async () => {
    await createSecret(moto.endpoint, "ghr/env", JSON.stringify({ via: "env" }))
    expect(await childGetJson(moto.env, "ghr/env")).toEqual({ ok: { via: "env" } })
  })

  test("honours the service-specific AWS_ENDPOINT_URL_SECRETS_MANAGER", async () => {
    const { AWS_ENDPOINT_URL, ...rest } = moto.env
    const env = { ...rest, AWS_ENDPOINT_URL_SECRETS_MANAGER: AWS_ENDPOINT_URL! }
    expect(await childGetJson(env, "ghr/env")).toEqual({ ok: { via: "env" } })
  })

  test("no region configured is unavailable and says to set AWS_REGION", async () => {
    const { AWS_REGION: _, ...env } = moto.env
    const result = await childGetJson(env, "ghr/env")
    expect(result.error?.reason).toBe("unavailable")
    expect(result.error?.detail).toContain("no AWS region is configured")
    expect(result.error?.detail).toContain("Set AWS_REGION")
  })

  test("AWS_DEFAULT_REGION alone is not read by the JavaScript SDK, and the message says so", async () => {
    const { AWS_REGION, ...rest } = moto.env
    const result = await childGetJson({ ...rest, AWS_DEFAULT_REGION: AWS_REGION! }, "ghr/env")
    expect(result.error?.reason).toBe("unavailable")
    expect(result.error?.detail).toContain("does not read AWS_DEFAULT_REGION")
  })
})

describe("Secrets against moto_server with IAM enforcement", () => {
  let iamMoto: Moto
  beforeAll(async () => {
    iamMoto = await startMoto({ enforceIam: true })
    timings.push(`moto_server (IAM enforced) ready in ${iamMoto.startupMs} ms`)
    await createSecret(iamMoto.endpoint, "ghr/app", JSON.stringify(appSecret))
  })
  afterAll(async () => {
    await iamMoto?.stop()
  })

  const layerAs = (credentials: { accessKeyId: string; secretAccessKey: string }) =>
    Secrets.layerWithClientConfig({ endpoint: iamMoto.endpoint, region, credentials })

  test("a user allowed secretsmanager:GetSecretValue reads the secret", async () => {
    const reader = await createIamUser(iamMoto.endpoint, "reader", { allowGetSecretValue: true })
    expect(await runTest(getJson(layerAs(reader), "ghr/app"))).toEqual(appSecret)
  })

  test("a user without the permission gets access-denied naming the IAM actions", async () => {
    const nobody = await createIamUser(iamMoto.endpoint, "nobody")
    const error = await runFailure(getJson(layerAs(nobody), "ghr/app"))
    expect(error.reason).toBe("access-denied")
    expect(error.detail).toContain("HTTP 403")
    expect(error.detail).toContain("secretsmanager:GetSecretValue")
    expect(error.detail).toContain("kms:Decrypt")
    expect(error.message).toStartWith("GHR_APP_SECRET=ghr/app: ")
    expectNoLeak(error, privateKey)
  })

  test("putString by a read-only user is access-denied naming the write actions, without the value", async () => {
    const reader = await createIamUser(iamMoto.endpoint, "reader2", { allowGetSecretValue: true })
    const error = await runFailure(putString(layerAs(reader), "ghr/app", privateKey))
    expect(error.reason).toBe("access-denied")
    expect(error.setting).toBe(putSetting)
    expect(error.detail).toContain("secretsmanager:PutSecretValue")
    expectNoLeak(error, privateKey)
  })

  test("the admin credentials in env are accepted", async () => {
    expect(iamMoto.env["AWS_ACCESS_KEY_ID"]).not.toBe("testing")
    expect(await runTest(getJson(layerAs(iamMoto.credentials), "ghr/app"))).toEqual(appSecret)
  })
})

describe("secretErrorFromAws (pure mapping)", () => {
  const context = { secretId: "ghr/app", setting: "GHR_APP_SECRET", operation: "read" as const }
  const awsError = (name: string, message: string, httpStatusCode = 400, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(message), { name, $metadata: { httpStatusCode }, ...extra })

  test("AccessDeniedException as real AWS sends it", () => {
    const error = secretErrorFromAws(
      awsError(
        "AccessDeniedException",
        "User: arn:aws:sts::1:assumed-role/task/x is not authorized to perform: secretsmanager:GetSecretValue on resource: ghr/app"
      ),
      context
    )
    expect(error.reason).toBe("access-denied")
    expect(error.detail).toContain("secretsmanager:GetSecretValue")
    expect(error.detail).toContain("kms:Decrypt")
    expect(error.detail).toContain("task role")
  })

  test("a 'not authorized' message without a known name is access-denied", () => {
    expect(secretErrorFromAws(awsError("SomethingElse", "x is not authorized to perform y"), context).reason).toBe(
      "access-denied"
    )
  })

  test("DecryptionFailure points at kms:Decrypt", () => {
    const error = secretErrorFromAws(awsError("DecryptionFailure", "can't decrypt"), context)
    expect(error.reason).toBe("access-denied")
    expect(error.detail).toContain("kms:Decrypt")
  })

  test("write operations name the write actions", () => {
    const error = secretErrorFromAws(awsError("AccessDeniedException", "denied"), { ...context, operation: "write" })
    expect(error.detail).toContain("secretsmanager:PutSecretValue")
    expect(error.detail).toContain("secretsmanager:CreateSecret")
    expect(error.detail).not.toContain("GetSecretValue")
  })

  test("ResourceNotFoundException is not-found, with the region when known", () => {
    const error = secretErrorFromAws(awsError("ResourceNotFoundException", "can't find"), { ...context, region: "eu-west-1" })
    expect(error.reason).toBe("not-found")
    expect(error.detail).toContain("region eu-west-1")
    expect(error.detail).toContain("GHR_APP_SECRET")
  })

  test("missing region, credentials, network and anything else are unavailable with name and message", () => {
    const cases: Array<[unknown, string]> = [
      [new Error("Region is missing"), "AWS_REGION"],
      [awsError("CredentialsProviderError", "Could not load credentials from any providers"), "task role"],
      [awsError("UnrecognizedClientException", "The security token included in the request is invalid."), "rejected"],
      [Object.assign(new Error("getaddrinfo ENOTFOUND secretsmanager.x"), { code: "ENOTFOUND" }), "VPC endpoint"],
      [awsError("InternalServiceError", "boom", 500), "HTTP 500"],
      [awsError("ThrottlingException", "Rate exceeded"), "ThrottlingException: Rate exceeded"],
      ["a string", "a string"]
    ]
    for (const [input, expected] of cases) {
      const error = secretErrorFromAws(input, context)
      expect(error.reason).toBe("unavailable")
      expect(error.detail).toContain(expected)
    }
  })

  test("never reads the response body (where a value could be)", () => {
    const error = secretErrorFromAws(
      awsError("SyntaxError", "Unexpected token", 200, {
        $response: { body: privateKey },
        $responseBodyText: privateKey
      }),
      context
    )
    expect(error.reason).toBe("unavailable")
    expectNoLeak(error, privateKey)
  })
})

describe("Secrets.layerTest", () => {
  const test_ = Secrets.layerTest({
    "ghr/app": JSON.stringify(appSecret),
    "ghr/pem": privateKey
  })

  test("reads a JSON object", async () => {
    expect(await runTest(getJson(test_, "ghr/app"))).toEqual(appSecret)
  })

  test("an unknown id is not-found, like the real layer", async () => {
    const error = await runFailure(getJson(test_, "ghr/missing", "GHR_CONFIG_SECRET"))
    expect(error.reason).toBe("not-found")
    expect(error.message).toStartWith("GHR_CONFIG_SECRET=ghr/missing: ")
  })

  test("a non-JSON value is not-json without echoing it", async () => {
    const error = await runFailure(getJson(test_, "ghr/pem"))
    expect(error.reason).toBe("not-json")
    expectNoLeak(error, privateKey)
  })

  test("putString stores a value that getJson then reads, within one layer build", async () => {
    const result = await runTest(
      Effect.gen(function*() {
        const secrets = yield* Secrets
        const { arn } = yield* secrets.putString("ghr/new", JSON.stringify({ k: "v" }))
        const value = yield* secrets.getJson("ghr/new", "GHR_APP_SECRET")
        return { arn, value }
      }).pipe(Effect.provide(test_))
    )
    expect(result).toEqual({ arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:ghr/new", value: { k: "v" } })
  })
})
