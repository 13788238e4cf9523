import { Runtime, Schema } from "effect"

/**
 * Exit codes are part of ghr's contract (docs/configuration.md#exit-codes). Each error class
 * carries its own through `Runtime.errorExitCode`, which bin.ts reads. The actions runner itself
 * exits with 0–4, so ghr's own codes live above 64 and never collide with a propagated runner
 * exit code.
 */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 64,
  githubUnavailable: 69,
  runnerFailure: 70,
  dockerNotReady: 75,
  authError: 77,
  configError: 78,
  sigint: 130,
  sigterm: 143
} as const

export interface ConfigProblem {
  readonly setting: string
  readonly problem: string
}

/** Every configuration problem found, reported together so a user fixes them in one pass. */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  problems: Schema.Array(Schema.Struct({ setting: Schema.String, problem: Schema.String }))
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.configError
  }
  override get message(): string {
    const lines = this.problems.map((p) => `  - ${p.setting}: ${p.problem}`)
    return `invalid configuration (${this.problems.length} problem${this.problems.length === 1 ? "" : "s"}):\n${lines.join("\n")}`
  }
}

/** A Secrets Manager secret could not be used; `reason` says which of the distinct failures it was. */
export class SecretError extends Schema.TaggedError<SecretError>()("SecretError", {
  secretId: Schema.String,
  setting: Schema.String,
  reason: Schema.Literals(["not-found", "access-denied", "not-json", "missing-key", "unavailable"]),
  detail: Schema.String
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.configError
  }
  override get message(): string {
    return `${this.setting}=${this.secretId}: ${this.detail}`
  }
}

/** GitHub rejected the App's credentials or the App lacks a permission. */
export class AuthError extends Schema.TaggedError<AuthError>()("AuthError", {
  status: Schema.Number,
  detail: Schema.String,
  fix: Schema.String
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.authError
  }
  override get message(): string {
    return `${this.detail} — ${this.fix}`
  }
}

/** A GitHub API call failed for a reason other than credentials (unreachable, 5xx after retries, 4xx). */
export class GitHubApiError extends Schema.TaggedError<GitHubApiError>()("GitHubApiError", {
  operation: Schema.String,
  status: Schema.optional(Schema.Number),
  detail: Schema.String,
  fix: Schema.String
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.githubUnavailable
  }
  override get message(): string {
    const status = this.status === undefined ? "" : ` (HTTP ${this.status})`
    return `${this.operation} failed${status}: ${this.detail} — ${this.fix}`
  }
}

export class DockerNotReady extends Schema.TaggedError<DockerNotReady>()("DockerNotReady", {
  dockerHost: Schema.String,
  waitedSeconds: Schema.Number,
  lastError: Schema.String
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.dockerNotReady
  }
  override get message(): string {
    return `Docker daemon at ${this.dockerHost} was not ready after ${this.waitedSeconds}s (last error: ${this.lastError}). ` +
      "Check that the dind sidecar is running and shares the socket volume. On AWS Fargate a Docker daemon cannot run at all " +
      "(no privileged containers): use the ManagedInstances capacity for DockerMode=dind, or set DOCKER_MODE=none."
  }
}

export class RunnerError extends Schema.TaggedError<RunnerError>()("RunnerError", {
  detail: Schema.String,
  fix: Schema.String
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.runnerFailure
  }
  override get message(): string {
    return `${this.detail} — ${this.fix}`
  }
}

/** ghr was asked to stop (SIGTERM/SIGINT) before the runner started. */
export class Terminated extends Schema.TaggedError<Terminated>()("Terminated", {
  signal: Schema.Literals(["SIGTERM", "SIGINT"])
}) {
  get [Runtime.errorExitCode](): number {
    return this.signal === "SIGINT" ? ExitCode.sigint : ExitCode.sigterm
  }
  override get message(): string {
    return `received ${this.signal} before the runner started`
  }
}
