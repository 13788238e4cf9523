/**
 * AWS Secrets Manager access. Every failure becomes a `SecretError` whose `detail` says what is
 * wrong and what to do. A secret's value never appears in an error, a log line or a message:
 * failures carry only the secret id, the setting that named it and the AWS error's name/message.
 */
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  type SecretsManagerClientConfig
} from "@aws-sdk/client-secrets-manager"
import { Context, Effect, Layer, Option, Predicate, Schema } from "effect"
import { SecretError } from "./Errors.ts"

/** What the caller was doing when the error happened; it decides which IAM actions a fix names. */
export type SecretOperation = "read" | "write"

export interface SecretErrorContext {
  readonly secretId: string
  readonly setting: string
  readonly operation: SecretOperation
  /** The client's region, when known (named in "not found" details). */
  readonly region?: string | undefined
}

/** The `setting` reported by `putString` failures: the command that writes the secret. */
export const putSetting = "ghr app secret --put"

const maxMessageLength = 300

const field = (error: unknown, key: string): unknown =>
  Predicate.hasProperty(error, key) ? error[key] : undefined

const stringField = (error: unknown, key: string): string | undefined => {
  const value = field(error, key)
  return Predicate.isString(value) && value.length > 0 ? value : undefined
}

const httpStatusOf = (error: unknown): number | undefined => {
  const status = field(field(error, "$metadata"), "httpStatusCode")
  return Predicate.isNumber(status) ? status : undefined
}

/** `Name: message` of an error, on one line and bounded; never the raw response body. */
const describe = (error: unknown): string => {
  const name = stringField(error, "name") ?? (Predicate.isError(error) ? error.constructor.name : typeof error)
  const message = stringField(error, "message") ?? (Predicate.isString(error) ? error : "")
  const code = stringField(error, "code")
  const text = [name, code !== undefined && !message.includes(code) ? ` [${code}]` : "", message ? `: ${message}` : ""]
    .join("")
    .replace(/\s+/g, " ")
    .trim()
  return text.length > maxMessageLength ? `${text.slice(0, maxMessageLength)}…` : text
}

const accessDeniedNames = new Set([
  "AccessDeniedException",
  "AccessDenied",
  "NotAuthorized",
  "UnauthorizedOperation",
  "KMSAccessDeniedException"
])

const credentialNames = new Set([
  "CredentialsProviderError",
  "UnrecognizedClientException",
  "InvalidClientTokenId",
  "InvalidSignatureException",
  "SignatureDoesNotMatch",
  "IncompleteSignature",
  "MissingAuthenticationToken",
  "ExpiredTokenException",
  "ExpiredToken"
])

const networkCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ConnectionRefused",
  "ConnectionClosed"
])

const iamActionsFor = (operation: SecretOperation): string =>
  operation === "read"
    ? "Allow secretsmanager:GetSecretValue on this secret in the IAM policy of the role ghr runs as " +
      "(on ECS the task role, not the task execution role); if the secret is encrypted with a customer-managed " +
      "KMS key, also allow kms:Decrypt on that key (and check the key policy)"
    : "Allow secretsmanager:PutSecretValue and secretsmanager:CreateSecret on this secret for the identity running " +
      "the command; if the secret uses a customer-managed KMS key, also allow kms:GenerateDataKey and kms:Decrypt on that key"

/**
 * Maps an error thrown by the AWS SDK (or the SDK's config resolution) to a `SecretError`. Pure.
 * Uses only the error's name, code, message and HTTP status — never a response body — so a secret
 * value cannot leak through it.
 */
export const secretErrorFromAws = (error: unknown, context: SecretErrorContext): SecretError => {
  const { operation, region, secretId, setting } = context
  const make = (reason: SecretError["reason"], detail: string) => new SecretError({ secretId, setting, reason, detail })
  const name = stringField(error, "name") ?? ""
  const message = stringField(error, "message") ?? ""
  const code = stringField(error, "code") ?? ""
  const status = httpStatusOf(error)
  const what = describe(error)

  if (name === "ResourceNotFoundException") {
    const where = region === undefined ? "" : ` in region ${region}`
    return make(
      "not-found",
      `Secrets Manager has no secret with this name or ARN${where} (${what}). ` +
        `Check that ${setting} holds the secret's exact name or full ARN, and that the region ` +
        "(AWS_REGION) is the one the secret lives in."
    )
  }
  if (name === "DecryptionFailure") {
    return make(
      "access-denied",
      `Secrets Manager could not decrypt the secret with its KMS key (${what}). ` +
        "Allow kms:Decrypt on the secret's customer-managed KMS key for the role ghr runs as (in both the IAM policy " +
        "and the key policy), in addition to secretsmanager:GetSecretValue."
    )
  }
  if (accessDeniedNames.has(name) || /not authorized|access ?denied/i.test(message)) {
    return make("access-denied", `access denied (${what}). ${iamActionsFor(operation)}.`)
  }
  if (credentialNames.has(name)) {
    return make(
      "unavailable",
      `AWS credentials are missing or were rejected (${what}). On ECS give the task a task role; elsewhere ` +
        "configure credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO) for the intended account."
    )
  }
  if (status === 403) {
    // A 403 whose body the SDK could not read (some proxies and emulators answer denials in XML/HTML).
    return make("access-denied", `access denied (the service answered HTTP 403 Forbidden; ${what}). ${iamActionsFor(operation)}.`)
  }
  if (/region is missing/i.test(message)) {
    return make(
      "unavailable",
      `no AWS region is configured (${what}). Set AWS_REGION to the secret's region (the AWS SDK for JavaScript ` +
        "does not read AWS_DEFAULT_REGION; a region in the AWS config file's profile also works); ECS sets AWS_REGION " +
        "inside a task."
    )
  }
  if (networkCodes.has(code) || name === "TimeoutError" || name === "RequestTimeout" || name === "AbortError") {
    return make(
      "unavailable",
      `could not reach AWS Secrets Manager (${what}). Check the task's network path to the Secrets Manager endpoint ` +
        "(NAT gateway, public IP or a com.amazonaws.<region>.secretsmanager VPC endpoint), and any endpoint override " +
        "in AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL."
    )
  }
  if (name === "SyntaxError" || (status !== undefined && status >= 500)) {
    return make(
      "unavailable",
      `Secrets Manager did not give a usable answer${status === undefined ? "" : ` (HTTP ${status})`} (${what}). ` +
        "Retry later; if it persists check any endpoint override or proxy in front of Secrets Manager."
    )
  }
  return make("unavailable", `the Secrets Manager request failed (${what}).`)
}

const kindOf = (value: unknown): string =>
  Array.isArray(value) ? "a JSON array" : value === null ? "JSON null" : `a JSON ${typeof value}`

const decodeJson = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Unknown))

/**
 * Parses a secret's value as a JSON object. Failures describe only the value's kind, never its
 * content (it may be a private key).
 */
export const parseSecretJson = (
  value: { readonly secretString?: string | undefined; readonly hasBinary?: boolean },
  context: { readonly secretId: string; readonly setting: string }
): Effect.Effect<Readonly<Record<string, unknown>>, SecretError> => {
  const notJson = (found: string) =>
    Effect.fail(
      new SecretError({
        ...context,
        reason: "not-json",
        detail: `the secret's value is ${found}, but ${context.setting} must name a secret whose value is a JSON object ` +
          `like {"key": "value"}. Store the value as a JSON object string (SecretString).`
      })
    )
  if (value.secretString === undefined) {
    return notJson(value.hasBinary === true ? "binary (SecretBinary)" : "empty")
  }
  const parsed = decodeJson(value.secretString)
  if (Option.isNone(parsed)) return notJson("not valid JSON")
  if (!Predicate.isObject(parsed.value)) return notJson(kindOf(parsed.value))
  return Effect.succeed(parsed.value)
}

const redact = (error: SecretError, value: string): SecretError =>
  value.length >= 4 && error.detail.includes(value)
    ? new SecretError({ ...error, detail: error.detail.replaceAll(value, "[redacted]") })
    : error

const testArn = (secretId: string) =>
  secretId.startsWith("arn:") ? secretId : `arn:aws:secretsmanager:us-east-1:123456789012:secret:${secretId}`

export class Secrets extends Context.Service<Secrets, {
  /** Reads a secret whose value is a JSON object; `setting` is the env var that named it (for messages). */
  getJson(secretId: string, setting: string): Effect.Effect<Readonly<Record<string, unknown>>, SecretError>
  /** Creates or overwrites a secret's string value (used by `ghr app secret --put`). */
  putString(secretId: string, value: string): Effect.Effect<{ arn: string }, SecretError>
}>()("ghr/Secrets") {
  /**
   * A client-backed layer. `config` is merged over the bounded defaults (3 attempts, 5 s connect,
   * 10 s per request); region, endpoint and credentials not given here come from the SDK's
   * standard resolution (AWS_REGION or the profile's region — not AWS_DEFAULT_REGION, which the
   * JavaScript SDK ignores —, AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL, the credential
   * provider chain).
   */
  static readonly layerWithClientConfig = (config: SecretsManagerClientConfig = {}): Layer.Layer<Secrets> =>
    Layer.effect(
      Secrets,
      Effect.gen(function*() {
        const client = yield* Effect.acquireRelease(
          Effect.sync(() =>
            new SecretsManagerClient({
              maxAttempts: 3,
              requestHandler: { connectionTimeout: 5_000, requestTimeout: 10_000, throwOnRequestTimeout: true },
              ...config
            })
          ),
          (client) => Effect.sync(() => client.destroy())
        )

        const region = Effect.tryPromise(() => client.config.region()).pipe(
          Effect.map(Option.some),
          Effect.orElseSucceed(() => Option.none<string>())
        )

        /** Sends a command; a failure stays the SDK's raw error so the caller can branch on it. */
        const send = <A>(run: (signal: AbortSignal) => Promise<A>) =>
          Effect.tryPromise({ try: run, catch: (error): unknown => error })

        const toSecretError = (context: Omit<SecretErrorContext, "region">) => (error: unknown) =>
          region.pipe(
            Effect.map((region) => secretErrorFromAws(error, { ...context, region: Option.getOrUndefined(region) }))
          )

        const getJson = Effect.fn("Secrets.getJson")(function*(secretId: string, setting: string) {
          const out = yield* send((abortSignal) =>
            client.send(new GetSecretValueCommand({ SecretId: secretId }), { abortSignal })
          ).pipe(Effect.catch((error) => Effect.flip(toSecretError({ secretId, setting, operation: "read" })(error))))
          return yield* parseSecretJson(
            { secretString: out.SecretString, hasBinary: out.SecretBinary !== undefined },
            { secretId, setting }
          )
        })

        const isNotFound = (error: unknown) => stringField(error, "name") === "ResourceNotFoundException"
        const isExists = (error: unknown) => stringField(error, "name") === "ResourceExistsException"

        const putString = Effect.fn("Secrets.putString")(function*(secretId: string, value: string) {
          const put = send((abortSignal) =>
            client.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: value }), { abortSignal })
          )
          const create = send((abortSignal) =>
            client.send(new CreateSecretCommand({ Name: secretId, SecretString: value }), { abortSignal })
          )
          const out = yield* put.pipe(
            Effect.catchIf(isNotFound, () => create.pipe(Effect.catchIf(isExists, () => put))),
            Effect.catch((error) =>
              Effect.flip(
                toSecretError({ secretId, setting: putSetting, operation: "write" })(error).pipe(
                  Effect.map((e) => redact(e, value))
                )
              )
            )
          )
          return { arn: out.ARN ?? secretId }
        })

        return Secrets.of({ getJson, putString })
      })
    )

  /** Production: the SDK's standard configuration resolution, bounded retries and timeouts. */
  static readonly layer: Layer.Layer<Secrets> = Secrets.layerWithClientConfig()

  /** In memory, keyed by exact secret id; same parsing and error mapping (unknown id → not-found). */
  static readonly layerTest = (secrets: Record<string, string>): Layer.Layer<Secrets> =>
    Layer.sync(Secrets, () => {
      const store = new Map(Object.entries(secrets))
      const notFound = { name: "ResourceNotFoundException", message: "Secrets Manager can't find the specified secret." }
      return Secrets.of({
        getJson: (secretId, setting) => {
          const secretString = store.get(secretId)
          return secretString === undefined
            ? Effect.fail(secretErrorFromAws(notFound, { secretId, setting, operation: "read" }))
            : parseSecretJson({ secretString }, { secretId, setting })
        },
        putString: (secretId, value) =>
          Effect.sync(() => {
            store.set(secretId, value)
            return { arn: testArn(secretId) }
          })
      })
    })
}
