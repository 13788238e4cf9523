/**
 * A real AWS API emulator for tests: starts `moto_server` on 127.0.0.1 and talks to it.
 *
 * Each `startMoto()` starts its own server on a free port. With `enforceIam: true` the server
 * checks SigV4 signatures and IAM policies (moto's `/moto-api/reset-auth` switch, the mechanism
 * behind moto's own `set_initial_no_auth_action_count`): callers then need keys of an IAM user that
 * exists in moto — `startMoto` creates an all-allowed "admin" user for `env`/`credentials`, and
 * `createIamUser` makes users with or without `secretsmanager:GetSecretValue`.
 *
 * Known moto 5.2.1 quirk: under enforcement a denied call is answered with HTTP 403 and an XML/HTML
 * body even on the JSON protocol of Secrets Manager, so the AWS SDK cannot read the error code and
 * throws a deserialization `SyntaxError` whose `$metadata.httpStatusCode` is 403 (real AWS answers
 * `AccessDeniedException` as JSON).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { freePort } from "./ports.ts"
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager"

export interface AwsCredentials {
  readonly accessKeyId: string
  readonly secretAccessKey: string
}

export interface Moto {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string
  /** Exactly the AWS variables a child process needs to use this server (and no others). */
  readonly env: Record<string, string>
  /** The credentials in `env`: `testing`/`testing`, or the admin user's keys under `enforceIam`. */
  readonly credentials: AwsCredentials
  /** Milliseconds from spawning the process until it answered. */
  readonly startupMs: number
  stop(): Promise<void>
}

export const region = "us-east-1"
export const testingCredentials: AwsCredentials = { accessKeyId: "testing", secretAccessKey: "testing" }

const startupTimeoutMs = 20_000
const pollIntervalMs = 100
const killGraceMs = 3_000

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const waitForExit = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()))

const stopProcess = async (child: ChildProcess): Promise<void> => {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = waitForExit(child)
  child.kill("SIGTERM")
  const timer = setTimeout(() => child.kill("SIGKILL"), killGraceMs)
  await exited
  clearTimeout(timer)
}

/** The environment of this process without any AWS_* variable (so nothing leaks into moto or a child). */
const envWithoutAws = (): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("AWS_")) env[key] = value
  }
  return env
}

export async function startMoto(options: { readonly enforceIam?: boolean } = {}): Promise<Moto> {
  const executable = Bun.which("moto_server", { PATH: process.env["PATH"] ?? "" })
  if (executable === null) {
    throw new Error(
      "moto_server is not on PATH; the AWS tests need the moto emulator. Install it with: pip install 'moto[server]'"
    )
  }
  const port = await freePort()
  const endpoint = `http://127.0.0.1:${port}`
  const started = performance.now()
  const child = spawn(executable, ["-H", "127.0.0.1", "-p", String(port)], {
    env: envWithoutAws(),
    stdio: ["ignore", "pipe", "pipe"]
  })
  // moto logs every request; keep draining the pipes (a full pipe would block it) and keep the tail.
  let output = ""
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-4_000)
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  let spawnError: Error | undefined
  child.once("error", (error) => {
    spawnError = error
  })

  const fail = async (why: string): Promise<never> => {
    await stopProcess(child)
    throw new Error(`moto_server on ${endpoint} ${why}\n--- moto output ---\n${output}`)
  }

  const deadline = started + startupTimeoutMs
  for (;;) {
    if (spawnError !== undefined) return fail(`could not be started: ${spawnError.message}`)
    if (child.exitCode !== null || child.signalCode !== null) {
      return fail(`exited during startup (code ${child.exitCode}, signal ${child.signalCode})`)
    }
    const ready = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) }).then(
      (response) => response.ok,
      () => false
    )
    if (ready) break
    if (performance.now() > deadline) return fail(`did not answer within ${startupTimeoutMs / 1000} s`)
    await sleep(pollIntervalMs)
  }
  const startupMs = Math.round(performance.now() - started)

  let credentials = testingCredentials
  if (options.enforceIam === true) {
    try {
      credentials = await createIamUser(endpoint, "moto-admin", {
        policy: { Effect: "Allow", Action: "*", Resource: "*" }
      })
      await setAuthCount(endpoint, "0")
    } catch (error) {
      return fail(`could not be switched to IAM enforcement: ${String(error)}`)
    }
  }

  return {
    endpoint,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey
    },
    credentials,
    startupMs,
    stop: () => stopProcess(child)
  }
}

/**
 * Sets moto's "unauthenticated requests allowed" counter: "0" enforces IAM from now on, "inf" turns
 * it off. Returns the previous value. The switch is global to the server.
 */
const setAuthCount = async (endpoint: string, count: string): Promise<string> => {
  const response = await fetch(`${endpoint}/moto-api/reset-auth`, {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: count,
    signal: AbortSignal.timeout(5_000)
  })
  const body = (await response.json()) as { PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT?: string }
  if (!response.ok || body.PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT === undefined) {
    throw new Error(`moto reset-auth failed with HTTP ${response.status}`)
  }
  return body.PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT
}

/** Runs test setup as moto's superuser: IAM checks are suspended for its duration, then restored. */
const asSetup = async <A>(endpoint: string, f: () => Promise<A>): Promise<A> => {
  const previous = await setAuthCount(endpoint, "inf")
  try {
    return await f()
  } finally {
    await setAuthCount(endpoint, previous)
  }
}

const setupClient = (endpoint: string) =>
  new SecretsManagerClient({ endpoint, region, credentials: testingCredentials, maxAttempts: 1 })

/** Creates a secret (string, or binary when given bytes) and returns its ARN. Works with or without `enforceIam`. */
export async function createSecret(endpoint: string, name: string, value: string | Uint8Array): Promise<string> {
  return asSetup(endpoint, async () => {
    const client = setupClient(endpoint)
    try {
      const out = await client.send(
        new CreateSecretCommand(
          typeof value === "string" ? { Name: name, SecretString: value } : { Name: name, SecretBinary: value }
        )
      )
      if (out.ARN === undefined) throw new Error(`moto returned no ARN for secret ${name}`)
      return out.ARN
    } finally {
      client.destroy()
    }
  })
}

/**
 * One raw AWS API call to moto, for setup and inspection the repo has no SDK client for. moto
 * routes by the credential scope of the Authorization header and, unless IAM is enforced, does not
 * check the signature.
 */
export const motoCall = async (endpoint: string, service: string, body: string, headers: Record<string, string>): Promise<string> => {
  const response = await fetch(`${endpoint}/`, {
    method: "POST",
    headers: {
      authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/${region}/${service}/aws4_request, SignedHeaders=host, Signature=0`,
      ...headers
    },
    body,
    signal: AbortSignal.timeout(10_000)
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${service} call failed (HTTP ${response.status}): ${text.slice(0, 500)}`)
  return text
}

/** A query-protocol call (IAM, EC2): form-encoded parameters, XML answer. */
export const motoQueryCall = (endpoint: string, service: string, params: Record<string, string>) =>
  motoCall(endpoint, service, new URLSearchParams(params).toString(), { "content-type": "application/x-www-form-urlencoded" })

/** A JSON-protocol call (ECS, CloudWatch Logs). */
export const motoJsonCall = async (endpoint: string, service: string, target: string, body: unknown) =>
  JSON.parse(await motoCall(endpoint, service, JSON.stringify(body), {
    "content-type": "application/x-amz-json-1.1",
    "x-amz-target": target
  }))

const iamCall = (endpoint: string, params: Record<string, string>) =>
  motoQueryCall(endpoint, "iam", { ...params, Version: "2010-05-08" })

const xmlField = (xml: string, field: string): string => {
  const match = new RegExp(`<${field}>([^<]*)</${field}>`).exec(xml)
  if (match?.[1] === undefined) throw new Error(`IAM response has no <${field}>`)
  return match[1]
}

export interface IamUserOptions {
  /** Grants `secretsmanager:GetSecretValue` on `resource` (default "*"). */
  readonly allowGetSecretValue?: boolean
  readonly resource?: string
  /** A whole inline policy statement instead (overrides `allowGetSecretValue`). */
  readonly policy?: Record<string, unknown>
}

/** Creates an IAM user (with an inline policy when asked) and returns its access keys. */
export async function createIamUser(endpoint: string, userName: string, options: IamUserOptions = {}): Promise<AwsCredentials> {
  return asSetup(endpoint, async () => {
    await iamCall(endpoint, { Action: "CreateUser", UserName: userName })
    const statement = options.policy ??
      (options.allowGetSecretValue === true
        ? { Effect: "Allow", Action: "secretsmanager:GetSecretValue", Resource: options.resource ?? "*" }
        : undefined)
    if (statement !== undefined) {
      await iamCall(endpoint, {
        Action: "PutUserPolicy",
        UserName: userName,
        PolicyName: `${userName}-policy`,
        PolicyDocument: JSON.stringify({ Version: "2012-10-17", Statement: [statement] })
      })
    }
    const xml = await iamCall(endpoint, { Action: "CreateAccessKey", UserName: userName })
    return { accessKeyId: xmlField(xml, "AccessKeyId"), secretAccessKey: xmlField(xml, "SecretAccessKey") }
  })
}
