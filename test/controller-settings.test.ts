import { describe, expect, test } from "bun:test"
import { type ControllerResolution, resolveControllerSettings } from "../src/ControllerSettings.ts"
import type { Env } from "../src/Settings.ts"
import { generateAppKey } from "./support/keys.ts"

const key = generateAppKey()
const base: Env = {
  GITHUB_OWNER: "acme",
  GITHUB_APP_ID: "123",
  GITHUB_APP_INSTALLATION_ID: "456",
  GITHUB_APP_PRIVATE_KEY: key.privateKeyPem,
  GHR_CLUSTER: "ghr",
  GHR_RUNNER_TASK_DEFINITION: "arn:aws:ecs:eu-west-1:123456789012:task-definition/ghr-runner:3",
  GHR_SUBNETS: "subnet-0123abcd, subnet-4567ef01",
  GHR_SECURITY_GROUPS: "sg-0123abcd"
}
const options = { arch: "x64", stdoutIsTty: false }
const resolve = (env: Env, secrets = {}) => resolveControllerSettings(env, secrets, options)
const ok = (r: ControllerResolution) => {
  if (r._tag !== "ok") throw new Error(`expected valid settings, got ${JSON.stringify(r.problems)}`)
  return r.settings
}
const problemSettings = (r: ControllerResolution) => (r._tag === "invalid" ? r.problems.map((p) => p.setting) : [])

describe("resolveControllerSettings", () => {
  test("defaults: on-demand Fargate, no public IP, 0..10 runners, status every minute", () => {
    const s = ok(resolve(base))
    expect(s).toMatchObject({
      cluster: "ghr",
      subnets: ["subnet-0123abcd", "subnet-4567ef01"],
      securityGroups: ["sg-0123abcd"],
      assignPublicIp: "DISABLED",
      capacity: "Fargate",
      capacityProvider: "FARGATE",
      minRunners: 0,
      maxRunners: 10,
      statusIntervalSeconds: 60
    })
    expect(s.github.app?.installationId).toBe(456)
    expect(s.github.scope).toEqual({ kind: "org", org: "acme" })
  })

  test("the stack's values: FargateSpot, ENABLED, min/max", () => {
    const s = ok(resolve({ ...base, GHR_CAPACITY: "FargateSpot", GHR_CAPACITY_PROVIDER: "FARGATE_SPOT", GHR_ASSIGN_PUBLIC_IP: "ENABLED", GHR_MIN_RUNNERS: "2", GHR_MAX_RUNNERS: "20" }))
    expect(s).toMatchObject({ capacity: "FargateSpot", capacityProvider: "FARGATE_SPOT", assignPublicIp: "ENABLED", minRunners: 2, maxRunners: 20 })
    expect(ok(resolve({ ...base, GHR_CAPACITY: "FargateSpot" })).capacityProvider).toBe("FARGATE_SPOT")
  })

  test("Managed Instances need their provider's name and no public IP", () => {
    expect(problemSettings(resolve({ ...base, GHR_CAPACITY: "ManagedInstances" }))).toEqual(["GHR_CAPACITY_PROVIDER"])
    expect(ok(resolve({ ...base, GHR_CAPACITY: "ManagedInstances", GHR_CAPACITY_PROVIDER: "ghr-mi-Provider-1" })).capacityProvider).toBe("ghr-mi-Provider-1")
    expect(problemSettings(resolve({ ...base, GHR_CAPACITY: "ManagedInstances", GHR_CAPACITY_PROVIDER: "FARGATE" }))).toEqual(["GHR_CAPACITY_PROVIDER"])
    expect(problemSettings(resolve({ ...base, GHR_CAPACITY: "ManagedInstances", GHR_CAPACITY_PROVIDER: "mi", GHR_ASSIGN_PUBLIC_IP: "ENABLED" }))).toEqual(["GHR_ASSIGN_PUBLIC_IP"])
  })

  test("every problem is reported at once, the GitHub ones included", () => {
    const r = resolve({
      GHR_SUBNETS: "subnet-xyz,vpc-1234abcd",
      GHR_SECURITY_GROUPS: "",
      GHR_ASSIGN_PUBLIC_IP: "maybe",
      GHR_CAPACITY: "Lambda",
      GHR_MIN_RUNNERS: "5",
      GHR_MAX_RUNNERS: "2",
      GHR_STATUS_INTERVAL_SECONDS: "0"
    })
    const settings = problemSettings(r)
    for (const s of ["GITHUB_OWNER", "GITHUB_APP_ID", "GITHUB_APP_INSTALLATION_ID", "GITHUB_APP_PRIVATE_KEY", "GHR_CLUSTER", "GHR_RUNNER_TASK_DEFINITION", "GHR_SUBNETS", "GHR_SECURITY_GROUPS", "GHR_ASSIGN_PUBLIC_IP", "GHR_CAPACITY", "GHR_MIN_RUNNERS", "GHR_STATUS_INTERVAL_SECONDS"]) {
      expect(settings).toContain(s)
    }
    const subnets = r._tag === "invalid" ? r.problems.find((p) => p.setting === "GHR_SUBNETS")?.problem : ""
    expect(subnets).toContain('"subnet-xyz"')
    expect(subnets).toContain('"vpc-1234abcd"')
  })

  test("App credentials are required: a JIT config in the environment is refused, not used", () => {
    const r = resolve({ ...base, ACTIONS_RUNNER_INPUT_JITCONFIG: "abc" })
    expect(problemSettings(r)).toEqual(["ACTIONS_RUNNER_INPUT_JITCONFIG"])
    const withoutApp = resolve({ ...base, GITHUB_APP_PRIVATE_KEY: undefined, GITHUB_APP_INSTALLATION_ID: undefined })
    expect(problemSettings(withoutApp)).toEqual(["GITHUB_APP_INSTALLATION_ID", "GITHUB_APP_PRIVATE_KEY"])
    // The private key never appears in a problem.
    expect(JSON.stringify(resolve({ ...base, GHR_CLUSTER: "bad name!" }))).not.toContain("PRIVATE KEY")
  })

  test("App credentials may come from the App secret", () => {
    const s = ok(resolve(
      { ...base, GITHUB_APP_ID: undefined, GITHUB_APP_INSTALLATION_ID: undefined, GITHUB_APP_PRIVATE_KEY: undefined, GHR_APP_SECRET: "arn:secret" },
      { appSecret: { app_id: 9, installation_id: 10, private_key: key.privateKeyPem } }
    ))
    expect(s.github.app).toMatchObject({ appId: 9, installationId: 10 })
  })

  test("bounds: MIN 0..100, MAX 1..1000, min ≤ max", () => {
    expect(problemSettings(resolve({ ...base, GHR_MIN_RUNNERS: "101" }))).toEqual(["GHR_MIN_RUNNERS"])
    expect(problemSettings(resolve({ ...base, GHR_MAX_RUNNERS: "0" }))).toEqual(["GHR_MAX_RUNNERS"])
    expect(problemSettings(resolve({ ...base, GHR_MIN_RUNNERS: "3", GHR_MAX_RUNNERS: "3" }))).toEqual([])
    expect(problemSettings(resolve({ ...base, GHR_MIN_RUNNERS: "4", GHR_MAX_RUNNERS: "3" }))).toEqual(["GHR_MIN_RUNNERS"])
  })
})
