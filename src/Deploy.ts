/**
 * `ghr deploy`: creates, updates or deletes the ghr stack through CloudFormation change sets.
 *
 * Pure helpers come first (parameter parsing and validation against the template's Parameters and
 * Rules, change-set summaries, failure analysis); then the typed errors; then the `Deploy` service,
 * which runs the change-set workflow over a small `CfnApi` (the AWS SDK in production, a fake in tests).
 */
import {
  CloudFormationClient,
  CreateChangeSetCommand,
  DeleteChangeSetCommand,
  DeleteStackCommand,
  DescribeChangeSetCommand,
  DescribeStackEventsCommand,
  DescribeStacksCommand,
  ExecuteChangeSetCommand
} from "@aws-sdk/client-cloudformation"
import type { Change, Stack } from "@aws-sdk/client-cloudformation"
import { Clock, Context, Duration, Effect, Layer, Option, Runtime, Schema } from "effect"
import { CliError } from "effect/cli"
import { parse as parseYaml } from "yaml"
import { ExitCode } from "./Errors.ts"

// =============================================================================================
// Template parameters
// =============================================================================================

const Scalar = Schema.Union([Schema.String, Schema.Number, Schema.Boolean])

const ParameterDeclaration = Schema.Struct({
  Type: Schema.String,
  Default: Schema.optionalKey(Scalar),
  Description: Schema.optionalKey(Schema.String),
  AllowedValues: Schema.optionalKey(Schema.Array(Scalar)),
  AllowedPattern: Schema.optionalKey(Schema.String),
  ConstraintDescription: Schema.optionalKey(Schema.String),
  MinLength: Schema.optionalKey(Schema.Number),
  MaxLength: Schema.optionalKey(Schema.Number),
  MinValue: Schema.optionalKey(Schema.Number),
  MaxValue: Schema.optionalKey(Schema.Number),
  NoEcho: Schema.optionalKey(Scalar)
})

const TemplateShape = Schema.Struct({
  Parameters: Schema.optionalKey(Schema.Record(Schema.String, ParameterDeclaration)),
  Rules: Schema.optionalKey(
    Schema.Record(
      Schema.String,
      Schema.Struct({
        RuleCondition: Schema.optionalKey(Schema.Unknown),
        Assertions: Schema.Array(Schema.Struct({ Assert: Schema.Unknown, AssertDescription: Schema.optionalKey(Schema.String) }))
      })
    )
  )
})

export interface ParameterSpec {
  readonly name: string
  readonly type: string
  readonly default: string | undefined
  readonly description: string
  readonly allowedValues: ReadonlyArray<string> | undefined
  readonly allowedPattern: string | undefined
  readonly constraintDescription: string | undefined
  readonly minLength: number | undefined
  readonly maxLength: number | undefined
  readonly minValue: number | undefined
  readonly maxValue: number | undefined
}

export interface RuleSpec {
  readonly name: string
  readonly condition: unknown
  readonly assertions: ReadonlyArray<{ readonly assert: unknown; readonly description: string | undefined }>
}

export interface TemplateSpec {
  readonly parameters: ReadonlyArray<ParameterSpec>
  readonly rules: ReadonlyArray<RuleSpec>
}

/** Reads Parameters and Rules from a template document (long-form intrinsics, as `parseTemplate` returns). */
export const templateSpec = (document: unknown): TemplateSpec => {
  const shape = Schema.decodeUnknownSync(TemplateShape)(document)
  const parameters = Object.entries(shape.Parameters ?? {}).map(([name, p]): ParameterSpec => ({
    name,
    type: p.Type,
    default: p.Default === undefined ? undefined : String(p.Default),
    description: p.Description ?? "",
    allowedValues: p.AllowedValues?.map(String),
    allowedPattern: p.AllowedPattern,
    constraintDescription: p.ConstraintDescription,
    minLength: p.MinLength,
    maxLength: p.MaxLength,
    minValue: p.MinValue,
    maxValue: p.MaxValue
  }))
  const rules = Object.entries(shape.Rules ?? {}).map(([name, r]): RuleSpec => ({
    name,
    condition: r.RuleCondition,
    assertions: r.Assertions.map((a) => ({ assert: a.Assert, description: a.AssertDescription }))
  }))
  return { parameters, rules }
}

export interface ParameterProblem {
  readonly parameter: string
  readonly problem: string
}

const parameterKey = /^[A-Za-z0-9]{1,255}$/

/** Parses repeated `--param KEY=VALUE` arguments; the value is everything after the first `=`. */
export const parseParamArgs = (
  args: ReadonlyArray<string>
): { readonly values: Readonly<Record<string, string>>; readonly problems: ReadonlyArray<ParameterProblem> } => {
  const values: Record<string, string> = {}
  const problems: Array<ParameterProblem> = []
  for (const arg of args) {
    const eq = arg.indexOf("=")
    const key = eq < 0 ? arg : arg.slice(0, eq)
    if (eq < 0 || !parameterKey.test(key)) {
      problems.push({
        parameter: `--param ${arg}`,
        problem: "expected KEY=VALUE with a parameter name such as Capacity (e.g. --param Capacity=FargateSpot)"
      })
      continue
    }
    values[key] = arg.slice(eq + 1)
  }
  return { values, problems }
}

const valueText = (value: unknown): string | undefined => {
  if (typeof value === "string") return value
  if (typeof value === "number" || typeof value === "boolean") return String(value)
  if (Array.isArray(value) && value.every((v) => ["string", "number", "boolean"].includes(typeof v))) {
    return value.map(String).join(",")
  }
  return undefined
}

/**
 * Parses the text of a `--param-file`: JSON or YAML, either a mapping `{Name: value}`, CloudFormation's
 * template configuration file `{"Parameters": {...}}`, or the AWS CLI's
 * `[{"ParameterKey": ..., "ParameterValue": ...}]`. Lists become comma-separated values.
 */
export const parseParamFile = (text: string): { readonly values: Record<string, string> } | { readonly error: string } => {
  let data: unknown
  try {
    data = parseYaml(text)
  } catch (e) {
    return { error: `it is neither JSON nor YAML (${e instanceof Error ? e.message.split("\n")[0] : String(e)})` }
  }
  const shapeHelp =
    'expected a mapping of parameter names to values (e.g. {"Capacity": "FargateSpot"}) or the AWS CLI list ' +
    '[{"ParameterKey": "Capacity", "ParameterValue": "FargateSpot"}]'
  const values: Record<string, string> = {}
  if (Array.isArray(data)) {
    for (const [i, item] of data.entries()) {
      const key = item !== null && typeof item === "object" ? (item as Record<string, unknown>)["ParameterKey"] : undefined
      const value = item !== null && typeof item === "object"
        ? valueText((item as Record<string, unknown>)["ParameterValue"])
        : undefined
      if (typeof key !== "string" || value === undefined) {
        return { error: `entry ${i + 1} has no ParameterKey and ParameterValue; ${shapeHelp}` }
      }
      values[key] = value
    }
    return { values }
  }
  if (data === null || typeof data !== "object") return { error: shapeHelp }
  let record = data as Record<string, unknown>
  const nested = record["Parameters"]
  if (Object.keys(record).length === 1 && nested !== null && typeof nested === "object" && !Array.isArray(nested)) {
    record = nested as Record<string, unknown>
  }
  for (const [key, raw] of Object.entries(record)) {
    const value = valueText(raw)
    if (value === undefined) return { error: `the value of ${key} is not text, a number, a boolean or a list of them` }
    values[key] = value
  }
  return { values }
}

const levenshtein = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = current
    }
  }
  return row[b.length]!
}

const suggestion = (name: string, specs: ReadonlyArray<ParameterSpec>): string | undefined => {
  const lower = name.toLowerCase()
  const ranked = specs
    .map((s) => ({ name: s.name, distance: s.name.toLowerCase() === lower ? 0 : levenshtein(lower, s.name.toLowerCase()) }))
    .sort((a, b) => a.distance - b.distance)
  const best = ranked[0]
  return best !== undefined && best.distance <= Math.max(2, Math.floor(name.length / 4)) ? best.name : undefined
}

const isListType = (type: string): boolean => type === "CommaDelimitedList" || type.startsWith("List<")
const isNumberType = (type: string): boolean => type === "Number" || type === "List<Number>"

/** Shapes of the AWS-specific parameter types ghr uses; CloudFormation checks that the resources exist. */
const awsIdShapes: Readonly<Record<string, { readonly pattern: RegExp; readonly example: string }>> = {
  "AWS::EC2::VPC::Id": { pattern: /^vpc-[0-9a-f]{8,17}$/, example: "vpc-0123456789abcdef0" },
  "AWS::EC2::Subnet::Id": { pattern: /^subnet-[0-9a-f]{8,17}$/, example: "subnet-0123456789abcdef0" },
  "AWS::EC2::SecurityGroup::Id": { pattern: /^sg-[0-9a-f]{8,17}$/, example: "sg-0123456789abcdef0" }
}

const elementType = (type: string): string => (type.startsWith("List<") ? type.slice(5, -1) : type)

const numberText = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/

/** Problems with one given value, judged by its declaration alone. */
export const valueProblems = (spec: ParameterSpec, value: string): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const because = spec.constraintDescription === undefined ? "" : ` (${spec.constraintDescription})`
  const items = isListType(spec.type) ? value.split(",").map((v) => v.trim()) : [value]
  const itemType = elementType(spec.type)
  if (isListType(spec.type) && spec.type !== "CommaDelimitedList" && items.some((v) => v === "")) {
    problems.push(`needs at least one value, comma-separated without empty items (got "${value}")`)
    return problems
  }
  for (const item of items) {
    const shape = awsIdShapes[itemType]
    if (shape !== undefined && !shape.pattern.test(item)) {
      problems.push(`"${item}" is not a ${itemType.split("::")[2]} ID like ${shape.example}`)
    }
    if (isNumberType(spec.type)) {
      if (!numberText.test(item)) {
        problems.push(`expected a number, got "${item}"`)
        continue
      }
      const n = Number(item)
      if (spec.minValue !== undefined && n < spec.minValue) problems.push(`${item} is below the minimum ${spec.minValue}${because}`)
      if (spec.maxValue !== undefined && n > spec.maxValue) problems.push(`${item} is above the maximum ${spec.maxValue}${because}`)
    }
    if (spec.allowedPattern !== undefined && !new RegExp(`^(?:${spec.allowedPattern})$`).test(item)) {
      problems.push(`"${item}" does not match ${spec.allowedPattern}${because}`)
    }
  }
  if (spec.allowedValues !== undefined) {
    const allowed = spec.allowedValues
    const bad = isNumberType(spec.type)
      ? items.filter((v) => !allowed.some((a) => Number(a) === Number(v)))
      : items.filter((v) => !allowed.includes(v))
    if (bad.length > 0) problems.push(`must be one of ${allowed.join(", ")} (got "${value}")`)
  }
  if (!isListType(spec.type)) {
    if (spec.minLength !== undefined && value.length < spec.minLength) {
      problems.push(`is shorter than ${spec.minLength} characters${because}`)
    }
    if (spec.maxLength !== undefined && value.length > spec.maxLength) {
      problems.push(`is longer than ${spec.maxLength} characters${because}`)
    }
  }
  return problems
}

/** Unknown names and bad values among the given parameters — everything knowable without AWS. */
export const givenParameterProblems = (
  specs: ReadonlyArray<ParameterSpec>,
  given: Readonly<Record<string, string>>
): ReadonlyArray<ParameterProblem> => {
  const problems: Array<ParameterProblem> = []
  for (const [name, value] of Object.entries(given)) {
    const spec = specs.find((s) => s.name === name)
    if (spec === undefined) {
      const hint = suggestion(name, specs)
      problems.push({
        parameter: name,
        problem: `unknown parameter${hint === undefined ? "" : ` — did you mean ${hint}?`} ` +
          `(parameters: ${specs.map((s) => s.name).join(", ")})`
      })
      continue
    }
    for (const problem of valueProblems(spec, value)) problems.push({ parameter: name, problem })
  }
  return problems
}

/** Parameters without a default that neither the command line nor the existing stack supplies. */
export const missingParameterProblems = (
  specs: ReadonlyArray<ParameterSpec>,
  given: Readonly<Record<string, string>>,
  previous: Readonly<Record<string, string>>
): ReadonlyArray<ParameterProblem> =>
  specs
    .filter((s) => s.default === undefined && !(s.name in given) && !(s.name in previous))
    .map((s) => ({
      parameter: s.name,
      problem: `is required: ${s.description} Pass --param ${s.name}=<value> or put it in --param-file.`
    }))

/** The values CloudFormation will use: given, else the stack's previous value, else the default. */
export const effectiveValues = (
  specs: ReadonlyArray<ParameterSpec>,
  given: Readonly<Record<string, string>>,
  previous: Readonly<Record<string, string>>
): Record<string, string> => {
  const values: Record<string, string> = {}
  for (const spec of specs) {
    const value = given[spec.name] ?? previous[spec.name] ?? spec.default
    if (value !== undefined) values[spec.name] = value
  }
  return values
}

// --- Rules -------------------------------------------------------------------------------------

type RuleValue = string | ReadonlyArray<string> | boolean

class Unsupported extends Error {}

const refsIn = (node: unknown, into: Set<string>): Set<string> => {
  if (Array.isArray(node)) node.forEach((n) => refsIn(n, into))
  else if (node !== null && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key === "Ref" && typeof value === "string") into.add(value)
      else refsIn(value, into)
    }
  }
  return into
}

const evaluateRuleNode = (
  node: unknown,
  values: Readonly<Record<string, string>>,
  specs: ReadonlyArray<ParameterSpec>
): RuleValue => {
  if (typeof node === "string") return node
  if (typeof node === "number") return String(node)
  if (typeof node === "boolean") return node
  if (Array.isArray(node)) return node.map((n) => String(evaluateRuleNode(n, values, specs)))
  if (node === null || typeof node !== "object") throw new Unsupported()
  const [fn, args] = Object.entries(node)[0] ?? []
  const arg = (i: number) => evaluateRuleNode((args as ReadonlyArray<unknown>)[i], values, specs)
  const asBool = (v: RuleValue): boolean => (typeof v === "boolean" ? v : v === "true")
  const asList = (v: RuleValue): ReadonlyArray<string> => (Array.isArray(v) ? v : [String(v)])
  switch (fn) {
    case "Ref": {
      const name = String(args)
      const value = values[name]
      if (value === undefined) throw new Unsupported()
      const spec = specs.find((s) => s.name === name)
      return spec !== undefined && isListType(spec.type) ? value.split(",") : value
    }
    case "Fn::Equals":
      return String(arg(0)) === String(arg(1))
    case "Fn::Not":
      return !asBool(arg(0))
    case "Fn::And":
      return (args as ReadonlyArray<unknown>).every((_, i) => asBool(arg(i)))
    case "Fn::Or":
      return (args as ReadonlyArray<unknown>).some((_, i) => asBool(arg(i)))
    case "Fn::Contains":
      return asList(arg(0)).includes(String(arg(1)))
    case "Fn::EachMemberEquals":
      return asList(arg(0)).every((v) => v === String(arg(1)))
    case "Fn::EachMemberIn": {
      const allowed = asList(arg(1))
      return asList(arg(0)).every((v) => allowed.includes(v))
    }
    default:
      // Fn::ValueOf and friends need AWS; CloudFormation evaluates those itself.
      throw new Unsupported()
  }
}

/**
 * Evaluates the template's Rules the way CloudFormation does, so an impossible combination fails
 * before anything is sent, with the rule's own message and the values involved.
 */
export const ruleProblems = (
  rules: ReadonlyArray<RuleSpec>,
  values: Readonly<Record<string, string>>,
  specs: ReadonlyArray<ParameterSpec>
): ReadonlyArray<ParameterProblem> => {
  const problems: Array<ParameterProblem> = []
  for (const rule of rules) {
    try {
      const applies = rule.condition === undefined || evaluateRuleNode(rule.condition, values, specs) === true
      if (!applies) continue
      for (const assertion of rule.assertions) {
        if (evaluateRuleNode(assertion.assert, values, specs) === true) continue
        const names = [...refsIn([rule.condition, assertion.assert], new Set())]
        problems.push({
          parameter: names.map((n) => `${n}=${values[n] ?? ""}`).join(", "),
          problem: assertion.description ?? `violates rule ${rule.name}`
        })
      }
    } catch (e) {
      if (!(e instanceof Unsupported)) throw e
    }
  }
  return problems
}

/** Checks CloudFormation cannot express (Rules cannot compare numbers). */
export const crossParameterProblems = (values: Readonly<Record<string, string>>): ReadonlyArray<ParameterProblem> => {
  const min = Number(values["MinRunners"])
  const max = Number(values["MaxRunners"])
  return Number.isFinite(min) && Number.isFinite(max) && min > max
    ? [{ parameter: `MinRunners=${min}, MaxRunners=${max}`, problem: "MinRunners must not exceed MaxRunners" }]
    : []
}

const stackNamePattern = /^[A-Za-z][A-Za-z0-9-]{0,127}$/

export const stackNameProblems = (name: string): ReadonlyArray<ParameterProblem> =>
  stackNamePattern.test(name)
    ? []
    : [{
      parameter: "--stack-name",
      problem: `"${name}" is not a stack name: start with a letter, then letters, digits and hyphens, at most 128 characters`
    }]

// --- Change sets and events --------------------------------------------------------------------

export interface ResourceChangeInfo {
  readonly action: string
  readonly logicalId: string
  readonly resourceType: string
  readonly replacement: string | undefined
}

export interface ChangeSetSummary {
  readonly add: number
  readonly modify: number
  readonly remove: number
  readonly other: number
  readonly lines: ReadonlyArray<string>
}

const actionMarks: Readonly<Record<string, string>> = { Add: "+", Modify: "~", Remove: "-", Import: ">", Dynamic: "?" }

/** One line per resource change, aligned, with replacements called out (they recreate the resource). */
export const summarizeChangeSet = (changes: ReadonlyArray<ResourceChangeInfo>): ChangeSetSummary => {
  const idWidth = Math.max(0, ...changes.map((c) => c.logicalId.length))
  const typeWidth = Math.max(0, ...changes.map((c) => c.resourceType.length))
  const lines = changes.map((c) => {
    const replace = c.action === "Modify" && c.replacement !== undefined && c.replacement !== "False"
      ? `  replacement: ${c.replacement === "True" ? "yes (recreated)" : "conditional"}`
      : ""
    return `  ${actionMarks[c.action] ?? "?"} ${c.action.padEnd(6)} ${c.logicalId.padEnd(idWidth)}  ${c.resourceType.padEnd(typeWidth)}${replace}`
      .trimEnd()
  })
  const count = (action: string) => changes.filter((c) => c.action === action).length
  return {
    add: count("Add"),
    modify: count("Modify"),
    remove: count("Remove"),
    other: changes.length - count("Add") - count("Modify") - count("Remove"),
    lines
  }
}

const noChangeReasons = [/didn't contain changes/i, /no updates are to be performed/i]

/** CloudFormation reports "nothing to do" as a failed change set or a ValidationError; both mean success. */
export const isNoChangeReason = (reason: string | undefined): boolean =>
  reason !== undefined && noChangeReasons.some((r) => r.test(reason))

export interface StackEvent {
  readonly id: string
  readonly timestamp: Date
  readonly logicalId: string
  readonly resourceType: string
  readonly status: string
  readonly reason: string | undefined
}

export type StatusOutcome = "in-progress" | "success" | "failure"

const successStatuses = new Set(["CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE"])

export const statusOutcome = (status: string): StatusOutcome =>
  status.endsWith("_IN_PROGRESS") ? "in-progress" : successStatuses.has(status) ? "success" : "failure"

const cancelled = /^Resource (creation|update|deletion) cancelled/i

/**
 * The failure that explains a failed operation: the earliest resource event in a *_FAILED state that
 * is not merely "cancelled" because something else failed first.
 */
export const firstFailure = (events: ReadonlyArray<StackEvent>): StackEvent | undefined => {
  const failed = [...events]
    .filter((e) => e.status.endsWith("_FAILED") && e.resourceType !== "AWS::CloudFormation::Stack")
    .sort((a, b) => a.timestamp.getTime() - b.timestamp.getTime())
  return failed.find((e) => e.reason === undefined || !cancelled.test(e.reason)) ?? failed[0]
}

export const formatEvent = (event: StackEvent): string =>
  `${event.timestamp.toISOString().slice(11, 19)}  ${event.status.padEnd(28)} ${event.logicalId}  ${event.resourceType}` +
  (event.reason === undefined || event.reason === "" ? "" : `  — ${event.reason}`)

/** CloudFormation accepts template bodies up to 51,200 bytes; the JSON form is the fallback (same document). */
export const templateBodyLimit = 51_200

export const chooseTemplateBody = (yamlText: string, document: unknown): string | undefined => {
  if (Buffer.byteLength(yamlText, "utf8") <= templateBodyLimit) return yamlText
  const json = JSON.stringify(document)
  return Buffer.byteLength(json, "utf8") <= templateBodyLimit ? json : undefined
}

// =============================================================================================
// Errors
// =============================================================================================

/** Bad `--param` values, unknown or missing parameters, or a combination the template's Rules reject. */
export class DeployParameterError extends Schema.TaggedError<DeployParameterError>()("DeployParameterError", {
  problems: Schema.Array(Schema.Struct({ parameter: Schema.String, problem: Schema.String }))
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.configError
  }
  override get message(): string {
    const n = this.problems.length
    return `invalid stack parameters (${n} problem${n === 1 ? "" : "s"}):\n` +
      this.problems.map((p) => `  - ${p.parameter}: ${p.problem}`).join("\n") +
      "\nRun `ghr template` to see every parameter with its description and allowed values."
  }
  get [CliError.userMessage](): string {
    return this.message
  }
}

/** The `--param-file` could not be read or understood. */
export class ParamFileError extends Schema.TaggedError<ParamFileError>()("ParamFileError", {
  path: Schema.String,
  detail: Schema.String
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.configError
  }
  override get message(): string {
    return `cannot use parameter file ${this.path}: ${this.detail}`
  }
  get [CliError.userMessage](): string {
    return this.message
  }
}

/** The stack is in a state that does not allow the requested operation. */
export class StackStateError extends Schema.TaggedError<StackStateError>()("StackStateError", {
  stackName: Schema.String,
  status: Schema.String,
  detail: Schema.String,
  fix: Schema.String
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.unexpected
  }
  override get message(): string {
    return `stack ${this.stackName} is ${this.status}: ${this.detail}\n${this.fix}`
  }
  get [CliError.userMessage](): string {
    return this.message
  }
}

/** CloudFormation ran the operation and it failed (the stack rolled back or could not be deleted). */
export class StackOperationFailed extends Schema.TaggedError<StackOperationFailed>()("StackOperationFailed", {
  stackName: Schema.String,
  operation: Schema.String,
  status: Schema.String,
  resource: Schema.optionalKey(Schema.String),
  resourceType: Schema.optionalKey(Schema.String),
  reason: Schema.String,
  fix: Schema.String
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.unexpected
  }
  override get message(): string {
    const where = this.resource === undefined ? "" : `${this.resource} (${this.resourceType ?? "?"}): `
    return `${this.operation} of stack ${this.stackName} failed (${this.status}).\nFirst failure: ${where}${this.reason}\n${this.fix}`
  }
  get [CliError.userMessage](): string {
    return this.message
  }
}

/** An AWS call failed before CloudFormation could act (credentials, region, permissions, throttling). */
export class DeployAwsError extends Schema.TaggedError<DeployAwsError>()("DeployAwsError", {
  operation: Schema.String,
  code: Schema.String,
  detail: Schema.String,
  fix: Schema.String
}) {
  get [Runtime.errorExitCode](): number {
    return ExitCode.unexpected
  }
  override get message(): string {
    return `${this.operation} failed: ${this.detail}${this.fix === "" ? "" : `\n${this.fix}`}`
  }
  get [CliError.userMessage](): string {
    return this.message
  }
}

export type DeployError = DeployParameterError | ParamFileError | StackStateError | StackOperationFailed | DeployAwsError

// =============================================================================================
// The CloudFormation calls ghr makes
// =============================================================================================

export interface StackOutput {
  readonly key: string
  readonly value: string
  readonly description: string | undefined
}

export interface StackInfo {
  readonly stackId: string
  readonly stackName: string
  readonly status: string
  readonly statusReason: string | undefined
  readonly parameters: Readonly<Record<string, string>>
  readonly outputs: ReadonlyArray<StackOutput>
}

export interface ChangeSetInfo {
  readonly status: string
  readonly statusReason: string | undefined
  readonly changes: ReadonlyArray<ResourceChangeInfo>
}

export interface CreateChangeSetRequest {
  readonly stackName: string
  readonly changeSetName: string
  readonly type: "CREATE" | "UPDATE"
  readonly templateBody: string
  readonly parameters: ReadonlyArray<
    { readonly key: string; readonly value: string } | { readonly key: string; readonly usePrevious: true }
  >
  readonly description: string
}

/** The few CloudFormation operations ghr needs; `sdkApi` implements them with the AWS SDK. */
export interface CfnApi {
  readonly region: Effect.Effect<string, DeployAwsError>
  readonly describeStack: (nameOrId: string) => Effect.Effect<StackInfo | undefined, DeployAwsError>
  /** Fails with reason "no-changes" (a `DeployAwsError` with code NoChanges) when CloudFormation says so up front. */
  readonly createChangeSet: (
    request: CreateChangeSetRequest
  ) => Effect.Effect<{ readonly id: string; readonly stackId: string }, DeployAwsError>
  readonly describeChangeSet: (id: string) => Effect.Effect<ChangeSetInfo, DeployAwsError>
  /** `disableRollback` keeps what a failed creation made (CREATE_FAILED), so its logs can be read. */
  readonly executeChangeSet: (
    id: string,
    options: { readonly disableRollback: boolean }
  ) => Effect.Effect<void, DeployAwsError>
  readonly deleteChangeSet: (id: string) => Effect.Effect<void, DeployAwsError>
  readonly deleteStack: (stackId: string) => Effect.Effect<void, DeployAwsError>
  /** Events newest first, following pages until `stopAt` returns true for an event. */
  readonly events: (
    stackId: string,
    stopAt: (event: StackEvent) => boolean
  ) => Effect.Effect<ReadonlyArray<StackEvent>, DeployAwsError>
}

const errorName = (e: unknown): string =>
  e !== null && typeof e === "object" && "name" in e && typeof e.name === "string" ? e.name : "Error"

const errorMessage = (e: unknown): string =>
  e instanceof Error ? e.message : typeof e === "string" ? e : JSON.stringify(e)

/** Turns an SDK failure into a message with what to do about it. */
export const awsError = (operation: string, e: unknown): DeployAwsError => {
  const code = errorName(e)
  const detail = errorMessage(e)
  let fix = ""
  if (code === "CredentialsProviderError" || /credential/i.test(detail)) {
    fix = "Configure AWS credentials: `aws configure`, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."
  } else if (/region is missing/i.test(detail)) {
    fix = "Set the Region: AWS_REGION=eu-west-1 (or `region` in your AWS profile)."
  } else if (/AccessDenied|not authorized/i.test(code + detail)) {
    fix = "Your AWS identity lacks a permission ghr needs (CloudFormation, and IAM/ECS/Logs to create the resources); see docs/deploy.md."
  } else if (code === "InsufficientCapabilitiesException") {
    fix = "This is a bug in ghr: it should always pass CAPABILITY_IAM."
  } else if (/ECONNREFUSED|ENOTFOUND|fetch failed|socket/i.test(detail)) {
    fix = "CloudFormation could not be reached; check the network, AWS_REGION and AWS_ENDPOINT_URL."
  }
  return new DeployAwsError({ operation, code, detail, fix })
}

const toStackInfo = (s: Stack): StackInfo => ({
  stackId: s.StackId ?? "",
  stackName: s.StackName ?? "",
  status: s.StackStatus ?? "UNKNOWN",
  statusReason: s.StackStatusReason ?? undefined,
  parameters: Object.fromEntries((s.Parameters ?? []).map((p) => [p.ParameterKey ?? "", p.ParameterValue ?? ""])),
  outputs: (s.Outputs ?? []).map((o) => ({ key: o.OutputKey ?? "", value: o.OutputValue ?? "", description: o.Description }))
})

const toChange = (c: Change): ResourceChangeInfo => ({
  action: c.ResourceChange?.Action ?? c.Type ?? "?",
  logicalId: c.ResourceChange?.LogicalResourceId ?? "?",
  resourceType: c.ResourceChange?.ResourceType ?? "?",
  replacement: c.ResourceChange?.Replacement
})

const doesNotExist = (e: unknown): boolean => errorName(e) === "ValidationError" && /does not exist/i.test(errorMessage(e))

/** CloudFormation through the AWS SDK, with its standard region, credential and endpoint resolution. */
export const sdkApi = (client: CloudFormationClient): CfnApi => {
  const call = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, DeployAwsError> =>
    Effect.tryPromise({ try: f, catch: (e) => awsError(operation, e) })
  return {
    region: call("resolving the AWS Region", () => client.config.region()),
    describeStack: (nameOrId) =>
      Effect.tryPromise({
        try: async () => {
          try {
            const out = await client.send(new DescribeStacksCommand({ StackName: nameOrId }))
            const stack = out.Stacks?.[0]
            return stack === undefined ? undefined : toStackInfo(stack)
          } catch (e) {
            if (doesNotExist(e)) return undefined
            throw e
          }
        },
        catch: (e) => awsError("DescribeStacks", e)
      }),
    createChangeSet: (request) =>
      Effect.tryPromise({
        try: () =>
          client.send(
            new CreateChangeSetCommand({
              StackName: request.stackName,
              ChangeSetName: request.changeSetName,
              ChangeSetType: request.type,
              TemplateBody: request.templateBody,
              Description: request.description,
              Capabilities: ["CAPABILITY_IAM"],
              Parameters: request.parameters.map((p) =>
                "usePrevious" in p
                  ? { ParameterKey: p.key, UsePreviousValue: true }
                  : { ParameterKey: p.key, ParameterValue: p.value }
              )
            })
          ),
        catch: (e) =>
          isNoChangeReason(errorMessage(e))
            ? new DeployAwsError({ operation: "CreateChangeSet", code: "NoChanges", detail: errorMessage(e), fix: "" })
            : awsError("CreateChangeSet", e)
      }).pipe(Effect.map((out) => ({ id: out.Id ?? request.changeSetName, stackId: out.StackId ?? request.stackName }))),
    describeChangeSet: (id) =>
      call("DescribeChangeSet", async () => {
        const changes: Array<ResourceChangeInfo> = []
        let token: string | undefined
        let first: { Status?: string | undefined; StatusReason?: string | undefined } | undefined
        do {
          const out = await client.send(new DescribeChangeSetCommand({ ChangeSetName: id, NextToken: token }))
          first ??= out
          changes.push(...(out.Changes ?? []).map(toChange))
          token = out.NextToken ?? undefined
        } while (token !== undefined)
        return { status: first?.Status ?? "UNKNOWN", statusReason: first?.StatusReason ?? undefined, changes }
      }),
    executeChangeSet: (id, options) =>
      call("ExecuteChangeSet", () =>
        client.send(new ExecuteChangeSetCommand({ ChangeSetName: id, DisableRollback: options.disableRollback }))).pipe(
          Effect.asVoid
        ),
    deleteChangeSet: (id) => call("DeleteChangeSet", () => client.send(new DeleteChangeSetCommand({ ChangeSetName: id }))).pipe(Effect.asVoid),
    deleteStack: (stackId) => call("DeleteStack", () => client.send(new DeleteStackCommand({ StackName: stackId }))).pipe(Effect.asVoid),
    events: (stackId, stopAt) =>
      call("DescribeStackEvents", async () => {
        const events: Array<StackEvent> = []
        let token: string | undefined
        for (let page = 0; page < 20; page++) {
          const out = await client.send(new DescribeStackEventsCommand({ StackName: stackId, NextToken: token }))
          for (const e of out.StackEvents ?? []) {
            const event: StackEvent = {
              id: e.EventId ?? "",
              timestamp: e.Timestamp ?? new Date(0),
              logicalId: e.LogicalResourceId ?? "",
              resourceType: e.ResourceType ?? "",
              status: e.ResourceStatus ?? "",
              reason: e.ResourceStatusReason ?? undefined
            }
            if (stopAt(event)) return events
            events.push(event)
          }
          token = out.NextToken ?? undefined
          if (token === undefined) break
        }
        return events
      })
  }
}

// =============================================================================================
// The Deploy service
// =============================================================================================

/** What the command shows while deploying; a live display on a terminal, plain lines otherwise. */
export interface DeployUi {
  readonly info: (line: string) => Effect.Effect<void>
  readonly changeSet: (title: string, summary: ChangeSetSummary) => Effect.Effect<void>
  /** New events (oldest first) and the stack's status after each poll. */
  readonly progress: (events: ReadonlyArray<StackEvent>, stackStatus: string) => Effect.Effect<void>
  readonly outputs: (outputs: ReadonlyArray<StackOutput>) => Effect.Effect<void>
}

export interface DeployRequest {
  readonly stackName: string
  readonly templateText: string
  readonly templateDocument: unknown
  readonly parameters: Readonly<Record<string, string>>
  readonly dryRun: boolean
  readonly description: string
}

export type DeployOutcome = "created" | "updated" | "unchanged" | "planned" | "deleted" | "absent"

export interface DeployOptions {
  readonly pollInterval: Duration.Input
}

const inProgress = (status: string) => statusOutcome(status) === "in-progress" && status !== "REVIEW_IN_PROGRESS"

const stateError = (stack: StackInfo): StackStateError | undefined => {
  const name = stack.stackName
  const reason = stack.statusReason === undefined ? "" : ` (CloudFormation: ${stack.statusReason})`
  switch (stack.status) {
    case "ROLLBACK_COMPLETE":
    case "ROLLBACK_FAILED":
      return new StackStateError({
        stackName: name,
        status: stack.status,
        detail: `its creation failed and it was rolled back${reason}; CloudFormation cannot update a stack in this state`,
        fix: `Delete it with \`ghr deploy --stack-name ${name} --delete\`, fix the cause, then deploy again.`
      })
    case "UPDATE_ROLLBACK_FAILED":
      return new StackStateError({
        stackName: name,
        status: stack.status,
        detail: `an update failed and so did its rollback${reason}`,
        fix: `Fix the resource named in the stack events, then run \`aws cloudformation continue-update-rollback --stack-name ${name}\`.`
      })
    case "DELETE_FAILED":
      return new StackStateError({
        stackName: name,
        status: stack.status,
        detail: `an earlier delete failed${reason}`,
        fix: `Run \`ghr deploy --stack-name ${name} --delete\` again after removing what blocked it.`
      })
    default:
      return inProgress(stack.status)
        ? new StackStateError({
          stackName: name,
          status: stack.status,
          detail: "another operation on it is still running",
          fix: "Wait until it finishes (CloudFormation console, or `aws cloudformation describe-stacks`), then run ghr deploy again."
        })
        : undefined
  }
}

const makeDeploy = (api: CfnApi, options: DeployOptions) => {
  /** Polls events and status until the stack leaves *_IN_PROGRESS; returns everything seen. */
  const watch = Effect.fnUntraced(function*(stackId: string, seen: Set<string>, ui: DeployUi) {
    const collected: Array<StackEvent> = []
    const poll = Effect.gen(function*() {
      const fresh = [...(yield* api.events(stackId, (e) => seen.has(e.id)))].reverse()
      for (const e of fresh) seen.add(e.id)
      collected.push(...fresh)
      return fresh
    })
    while (true) {
      const fresh = yield* poll
      const stack = yield* api.describeStack(stackId)
      const status = stack?.status ?? "DELETE_COMPLETE"
      if (!status.endsWith("_IN_PROGRESS")) {
        const last = yield* poll
        yield* ui.progress([...fresh, ...last], status)
        return { stack, status, events: collected }
      }
      yield* ui.progress(fresh, status)
      yield* Effect.sleep(options.pollInterval)
    }
  }, (effect) =>
    Effect.onInterrupt(
      effect,
      () =>
        Effect.sync(() =>
          process.stderr.write("\nStopped watching; CloudFormation carries on with the operation. Follow it in the console.\n")
        )
    ))

  const failure = (
    stackName: string,
    operation: string,
    status: string,
    events: ReadonlyArray<StackEvent>,
    statusReason: string | undefined,
    fix: string
  ) => {
    const first = firstFailure(events)
    return new StackOperationFailed({
      stackName,
      operation,
      status,
      ...(first === undefined ? {} : { resource: first.logicalId, resourceType: first.resourceType }),
      reason: first?.reason ?? statusReason ?? "no reason given",
      fix
    })
  }

  const ignoreErrors = <A, E>(effect: Effect.Effect<A, E>) => effect.pipe(Effect.asVoid, Effect.catch(() => Effect.void))

  const deploy = Effect.fn("Deploy.deploy")(function*(request: DeployRequest, ui: DeployUi) {
    const { stackName } = request
    const spec = templateSpec(request.templateDocument)
    const offline = [...stackNameProblems(stackName), ...givenParameterProblems(spec.parameters, request.parameters)]
    if (offline.length > 0) return yield* new DeployParameterError({ problems: offline })

    const templateBody = chooseTemplateBody(request.templateText, request.templateDocument)
    if (templateBody === undefined) {
      return yield* new DeployAwsError({
        operation: "preparing the template",
        code: "TemplateTooLarge",
        detail: `the template exceeds CloudFormation's ${templateBodyLimit}-byte limit for inline templates`,
        fix: "This is a bug in ghr; upload `ghr template` to S3 and deploy it from the console meanwhile."
      })
    }

    const region = yield* api.region
    const existing = yield* api.describeStack(stackName)
    if (existing !== undefined) {
      const blocked = stateError(existing)
      if (blocked !== undefined) return yield* blocked
    }
    const type = existing === undefined || existing.status === "REVIEW_IN_PROGRESS" ? "CREATE" : "UPDATE"
    const previous = type === "UPDATE" && existing !== undefined ? existing.parameters : {}
    const values = effectiveValues(spec.parameters, request.parameters, previous)
    const online = [
      ...missingParameterProblems(spec.parameters, request.parameters, previous),
      ...ruleProblems(spec.rules, values, spec.parameters),
      ...crossParameterProblems(values)
    ]
    if (online.length > 0) return yield* new DeployParameterError({ problems: online })

    const parameters = spec.parameters.flatMap((p): CreateChangeSetRequest["parameters"] => {
      const value = request.parameters[p.name]
      if (value !== undefined) return [{ key: p.name, value }]
      if (p.name in previous) return [{ key: p.name, usePrevious: true as const }]
      return []
    })

    yield* ui.info(`${type === "CREATE" ? "Creating" : "Updating"} stack ${stackName} in ${region} through a change set`)
    const changeSetName = `ghr-${yield* Clock.currentTimeMillis}`
    const created = yield* api.createChangeSet({
      stackName,
      changeSetName,
      type,
      templateBody,
      parameters,
      description: request.description
    }).pipe(
      Effect.map(Option.some),
      Effect.catchIf((e) => e.code === "NoChanges", () => Effect.succeedNone)
    )
    if (Option.isNone(created)) {
      yield* ui.info(`No changes: stack ${stackName} already matches this template and these parameters.`)
      return "unchanged" as DeployOutcome
    }
    const { id, stackId } = created.value

    let changeSet = yield* api.describeChangeSet(id)
    while (changeSet.status.endsWith("_PENDING") || changeSet.status.endsWith("_IN_PROGRESS")) {
      yield* Effect.sleep(options.pollInterval)
      changeSet = yield* api.describeChangeSet(id)
    }
    const cleanUp = Effect.gen(function*() {
      yield* ignoreErrors(api.deleteChangeSet(id))
      // A change set of type CREATE leaves an empty stack in REVIEW_IN_PROGRESS behind.
      if (type === "CREATE") yield* ignoreErrors(api.deleteStack(stackId))
    })
    if (changeSet.status === "FAILED") {
      yield* cleanUp
      if (isNoChangeReason(changeSet.statusReason)) {
        yield* ui.info(`No changes: stack ${stackName} already matches this template and these parameters.`)
        return "unchanged" as DeployOutcome
      }
      return yield* new StackOperationFailed({
        stackName,
        operation: "change set",
        status: changeSet.status,
        reason: changeSet.statusReason ?? "CloudFormation gave no reason",
        fix: "Nothing was changed. Fix the cause and run ghr deploy again."
      })
    }

    const summary = summarizeChangeSet(changeSet.changes)
    yield* ui.changeSet(
      `Change set ${changeSetName}: ${summary.add} to add, ${summary.modify} to modify, ${summary.remove} to remove`,
      summary
    )
    if (request.dryRun) {
      yield* cleanUp
      yield* ui.info("Dry run: the change set was not executed and has been deleted.")
      return "planned" as DeployOutcome
    }

    const seen = new Set((yield* api.events(stackId, () => false)).map((e) => e.id))
    // A failed creation keeps what it made (CREATE_FAILED) instead of rolling back and deleting the log
    // groups with the controller's last words; ghr deploy then continues that stack. A failed update
    // rolls back, so running runners keep their last good configuration.
    yield* api.executeChangeSet(id, { disableRollback: type === "CREATE" })
    const result = yield* watch(stackId, seen, ui)
    if (statusOutcome(result.status) !== "success") {
      return yield* failure(
        stackName,
        type === "CREATE" ? "creation" : "update",
        result.status,
        result.events,
        result.stack?.statusReason,
        type === "CREATE"
          ? `What was created is kept so you can investigate: \`aws logs tail /ghr/${stackName}/controller\` and ` +
            `\`aws logs tail /aws/events/ghr/${stackName}\` (why tasks stopped). Fix the cause and run ghr deploy ` +
            `again (it continues this stack), or remove it with \`ghr deploy --stack-name ${stackName} --delete\`.`
          : "CloudFormation rolled the stack back to its previous state. Fix the cause and run ghr deploy again."
      )
    }
    yield* ui.outputs(result.stack?.outputs ?? [])
    return (type === "CREATE" ? "created" : "updated") as DeployOutcome
  })

  const remove = Effect.fn("Deploy.remove")(function*(stackName: string, ui: DeployUi) {
    const problems = stackNameProblems(stackName)
    if (problems.length > 0) return yield* new DeployParameterError({ problems })
    const region = yield* api.region
    const existing = yield* api.describeStack(stackName)
    if (existing === undefined) {
      yield* ui.info(`Stack ${stackName} does not exist in ${region}; nothing to delete.`)
      return "absent" as DeployOutcome
    }
    if (existing.status !== "DELETE_IN_PROGRESS" && inProgress(existing.status)) {
      return yield* stateError(existing)!
    }
    yield* ui.info(`Deleting stack ${stackName} in ${region}`)
    const seen = new Set((yield* api.events(existing.stackId, () => false)).map((e) => e.id))
    if (existing.status !== "DELETE_IN_PROGRESS") yield* api.deleteStack(existing.stackId)
    const result = yield* watch(existing.stackId, seen, ui)
    if (result.status !== "DELETE_COMPLETE") {
      return yield* failure(
        stackName,
        "deletion",
        result.status,
        result.events,
        result.stack?.statusReason,
        `Remove or fix what blocks the deletion, then run \`ghr deploy --stack-name ${stackName} --delete\` again.`
      )
    }
    const createdSecret = existing.parameters["AppSecretArn"] === ""
      ? existing.outputs.find((o) => o.key === "AppSecretArn")?.value
      : undefined
    if (createdSecret !== undefined && createdSecret !== "") {
      yield* ui.info(
        `Kept the App secret ${createdSecret} (it holds credentials you entered). Delete it with ` +
          `\`aws secretsmanager delete-secret --secret-id ${createdSecret}\` if you no longer need it.`
      )
    }
    return "deleted" as DeployOutcome
  })

  return { deploy, remove }
}

export class Deploy extends Context.Service<Deploy, {
  deploy(request: DeployRequest, ui: DeployUi): Effect.Effect<DeployOutcome, DeployError>
  remove(stackName: string, ui: DeployUi): Effect.Effect<DeployOutcome, DeployError>
}>()("ghr/Deploy") {
  /** CloudFormation via the AWS SDK: region, credentials and AWS_ENDPOINT_URL resolved the SDK's standard way. */
  static readonly layer = Layer.sync(
    Deploy,
    () => Deploy.of(makeDeploy(sdkApi(new CloudFormationClient({})), { pollInterval: Duration.seconds(2) }))
  )

  /** Any `CfnApi` (tests use a scripted one). */
  static readonly layerWith = (api: CfnApi, options: DeployOptions = { pollInterval: Duration.millis(1) }) =>
    Layer.succeed(Deploy, Deploy.of(makeDeploy(api, options)))
}
