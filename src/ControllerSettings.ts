/**
 * Pure configuration of `ghr controller`: the GitHub settings (through `resolveSettings`, with App
 * credentials required) and the ECS contract of the stack (docs/architecture.md, "The controller's
 * environment"). Every problem is collected, so one run names all of them.
 */
import type { ConfigProblem } from "./Errors.ts"
import { type Env, type ResolveOptions, resolveSettings, type SecretInputs, type Settings } from "./Settings.ts"

export type Capacity = "Fargate" | "FargateSpot" | "ManagedInstances"

export interface ControllerSettings {
  readonly github: Settings
  readonly cluster: string
  readonly taskDefinition: string
  readonly subnets: ReadonlyArray<string>
  readonly securityGroups: ReadonlyArray<string>
  readonly assignPublicIp: "ENABLED" | "DISABLED"
  readonly capacity: Capacity
  readonly capacityProvider: string
  readonly minRunners: number
  readonly maxRunners: number
  /** How often `runners.status` is logged and launched tasks are checked (GHR_STATUS_INTERVAL_SECONDS). */
  readonly statusIntervalSeconds: number
}

export type ControllerResolution =
  | { readonly _tag: "ok"; readonly settings: ControllerSettings }
  | { readonly _tag: "invalid"; readonly problems: ReadonlyArray<ConfigProblem> }

const capacities: ReadonlyArray<Capacity> = ["Fargate", "FargateSpot", "ManagedInstances"]
const defaultProvider: Record<Capacity, string | undefined> = {
  Fargate: "FARGATE",
  FargateSpot: "FARGATE_SPOT",
  ManagedInstances: undefined
}

/** Variables a controller must never take from its own environment: it holds the App key, not a JIT config. */
const handedOverVariables = ["ACTIONS_RUNNER_INPUT_JITCONFIG", "GHR_JITCONFIG"] as const

export const resolveControllerSettings = (env: Env, secrets: SecretInputs, options: ResolveOptions): ControllerResolution => {
  const problems: Array<ConfigProblem> = []
  const problem = (setting: string, text: string) => problems.push({ setting, problem: text })
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim()
    return value === undefined || value === "" ? undefined : value
  }

  for (const name of handedOverVariables) {
    if (read(name) !== undefined) problem(name, "must not be set for the controller: it holds the App credentials and creates a JIT config per runner")
  }
  const githubEnv: Record<string, string | undefined> = { ...env }
  for (const name of handedOverVariables) delete githubEnv[name]
  const github = resolveSettings(githubEnv, secrets, options)
  // The runner's hint about handing over a JIT config does not apply to the controller.
  if (github._tag === "invalid") {
    problems.push(...github.problems.map((p) => ({ ...p, problem: p.problem.replace(/, or hand over a JIT config in ACTIONS_RUNNER_INPUT_JITCONFIG$/, "") })))
  }

  const required = (name: string, what: string): string => {
    const value = read(name)
    if (value === undefined) problem(name, `is required: ${what}`)
    return value ?? ""
  }

  const cluster = required("GHR_CLUSTER", "the name or ARN of the ECS cluster the runner tasks run in")
  if (cluster !== "" && !/^(arn:[^\s]+|[A-Za-z0-9_-]{1,255})$/.test(cluster)) {
    problem("GHR_CLUSTER", `"${cluster}" is not a cluster name (letters, digits, "-" and "_") or ARN`)
  }
  const taskDefinition = required("GHR_RUNNER_TASK_DEFINITION", "the runner task definition (family:revision or ARN)")
  if (taskDefinition !== "" && !/^(arn:[^\s]+|[A-Za-z0-9_-]{1,255}(:[1-9][0-9]*)?)$/.test(taskDefinition)) {
    problem("GHR_RUNNER_TASK_DEFINITION", `"${taskDefinition}" is not a task definition (family, family:revision or ARN)`)
  }

  const idList = (name: string, prefix: string, what: string): ReadonlyArray<string> => {
    const text = required(name, `comma-separated ${what} IDs for the runner tasks' awsvpc network (${prefix}-…)`)
    if (text === "") return []
    const ids = text.split(",").map((s) => s.trim()).filter((s) => s !== "")
    const bad = ids.filter((id) => !new RegExp(`^${prefix}-[0-9a-f]{8,32}$`).test(id))
    if (ids.length === 0) problem(name, `lists no ${what}`)
    if (bad.length > 0) problem(name, `not ${what} IDs: ${bad.map((b) => `"${b}"`).join(", ")} (expected ${prefix}-0123abcd…)`)
    if (ids.length > (prefix === "subnet" ? 16 : 5)) problem(name, `ECS accepts at most ${prefix === "subnet" ? 16 : 5} ${what}s, got ${ids.length}`)
    return ids
  }
  const subnets = idList("GHR_SUBNETS", "subnet", "subnet")
  const securityGroups = idList("GHR_SECURITY_GROUPS", "sg", "security group")

  const assignText = read("GHR_ASSIGN_PUBLIC_IP") ?? "DISABLED"
  let assignPublicIp: "ENABLED" | "DISABLED" = "DISABLED"
  if (assignText.toUpperCase() === "ENABLED" || assignText.toUpperCase() === "DISABLED") {
    assignPublicIp = assignText.toUpperCase() as "ENABLED" | "DISABLED"
  } else {
    problem("GHR_ASSIGN_PUBLIC_IP", `expected ENABLED or DISABLED, got "${assignText}"`)
  }

  const capacityText = read("GHR_CAPACITY") ?? "Fargate"
  const capacity = capacities.find((c) => c.toLowerCase() === capacityText.toLowerCase())
  if (capacity === undefined) problem("GHR_CAPACITY", `expected one of ${capacities.join(", ")}, got "${capacityText}"`)
  const providerText = read("GHR_CAPACITY_PROVIDER")
  const capacityProvider = providerText ?? (capacity === undefined ? "" : defaultProvider[capacity] ?? "")
  if (capacityProvider === "" && capacity === "ManagedInstances") {
    problem("GHR_CAPACITY_PROVIDER", "is required with GHR_CAPACITY=ManagedInstances: the name of the Managed Instances capacity provider")
  } else if (capacityProvider !== "" && !/^[A-Za-z0-9_-]{1,255}$/.test(capacityProvider)) {
    problem("GHR_CAPACITY_PROVIDER", `"${capacityProvider}" is not a capacity provider name`)
  } else if (capacity === "Fargate" && capacityProvider !== "FARGATE") {
    problem("GHR_CAPACITY_PROVIDER", `must be FARGATE with GHR_CAPACITY=Fargate, got "${capacityProvider}"`)
  } else if (capacity === "FargateSpot" && capacityProvider !== "FARGATE_SPOT") {
    problem("GHR_CAPACITY_PROVIDER", `must be FARGATE_SPOT with GHR_CAPACITY=FargateSpot, got "${capacityProvider}"`)
  } else if (capacity === "ManagedInstances" && (capacityProvider === "FARGATE" || capacityProvider === "FARGATE_SPOT")) {
    problem("GHR_CAPACITY_PROVIDER", `must name the Managed Instances capacity provider with GHR_CAPACITY=ManagedInstances, got "${capacityProvider}"`)
  }
  if (capacity === "ManagedInstances" && assignPublicIp === "ENABLED") {
    problem("GHR_ASSIGN_PUBLIC_IP", "must be DISABLED with GHR_CAPACITY=ManagedInstances (ECS Managed Instances give tasks no public IP)")
  }

  const int = (name: string, fallback: number, min: number, max: number): number => {
    const value = read(name)
    if (value === undefined) return fallback
    if (!/^(0|[1-9][0-9]{0,9})$/.test(value) || Number(value) < min || Number(value) > max) {
      problem(name, `expected a whole number from ${min} to ${max}, got "${value}"`)
      return fallback
    }
    return Number(value)
  }
  const minRunners = int("GHR_MIN_RUNNERS", 0, 0, 100)
  const maxRunners = int("GHR_MAX_RUNNERS", 10, 1, 1000)
  if (minRunners > maxRunners) problem("GHR_MIN_RUNNERS", `is ${minRunners}, more than GHR_MAX_RUNNERS (${maxRunners})`)
  const statusIntervalSeconds = int("GHR_STATUS_INTERVAL_SECONDS", 60, 1, 3600)

  if (problems.length > 0 || github._tag === "invalid" || capacity === undefined) {
    return { _tag: "invalid", problems }
  }
  return {
    _tag: "ok",
    settings: {
      github: github.settings,
      cluster,
      taskDefinition,
      subnets,
      securityGroups,
      assignPublicIp,
      capacity,
      capacityProvider,
      minRunners,
      maxRunners,
      statusIntervalSeconds
    }
  }
}
