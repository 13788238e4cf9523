/**
 * `ghr controller` end to end: the compiled binary against the fake GitHub, the fake Actions
 * service and moto's ECS (and Secrets Manager for the App secret). Plus the launcher's Spot
 * fallback against a scripted ECS, which moto cannot emulate (it ignores capacity providers).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import {
  CreateClusterCommand,
  DescribeTasksCommand,
  ECSClient,
  ListTasksCommand,
  RegisterTaskDefinitionCommand,
  type RunTaskCommandInput,
  type Task
} from "@aws-sdk/client-ecs"
import { Effect, Layer, Redacted } from "effect"
import type { ControllerSettings } from "../src/ControllerSettings.ts"
import * as Log from "../src/Log.ts"
import { type EcsApi, makeLauncher, RunTaskError } from "../src/TaskLauncher.ts"
import { runFailure, runTest } from "./support/effect.ts"
import { generateAppKey } from "./support/keys.ts"
import { type FakeActions, jobItem, startFakeActions } from "./support/fake-actions.ts"
import { parseRecords, spawnGhr } from "./support/ghr.ts"
import { createSecret, type Moto, motoQueryCall, region, startMoto, testingCredentials } from "./support/moto.ts"
import { APP_ID, ORG_INSTALLATION, settingsFrom, startWorld, type World } from "./support/world.ts"

let world: World
let actions: FakeActions
let moto: Moto
let ecs: ECSClient
let taskDefinitionArn: string
let subnet: string
let securityGroup: string
let appSecretArn: string
const cluster = "ghr-e2e"

const ec2 = (params: Record<string, string>) => motoQueryCall(moto.endpoint, "ec2", { ...params, Version: "2016-11-15" })

beforeAll(async () => {
  world = await startWorld()
  actions = await startFakeActions({ github: world.github, pollMs: 300 })
  moto = await startMoto()
  ecs = new ECSClient({ endpoint: moto.endpoint, region, credentials: testingCredentials, maxAttempts: 1 })
  await ecs.send(new CreateClusterCommand({ clusterName: cluster }))
  const td = await ecs.send(new RegisterTaskDefinitionCommand({
    family: "ghr-e2e-runner",
    requiresCompatibilities: ["FARGATE"],
    networkMode: "awsvpc",
    cpu: "1024",
    memory: "2048",
    containerDefinitions: [{ name: "runner", image: "ghr-runner:test", memory: 2048, essential: true }]
  }))
  taskDefinitionArn = td.taskDefinition!.taskDefinitionArn!
  subnet = /<subnetId>([^<]+)</.exec(await ec2({ Action: "DescribeSubnets" }))![1]!
  securityGroup = /<groupId>([^<]+)</.exec(await ec2({ Action: "CreateSecurityGroup", GroupName: "ghr-e2e", GroupDescription: "ghr e2e" }))![1]!
  appSecretArn = await createSecret(moto.endpoint, "ghr-e2e-app", JSON.stringify({
    app_id: APP_ID,
    installation_id: ORG_INSTALLATION,
    private_key: world.key.privateKeyPem
  }))
}, 60_000)

afterAll(async () => {
  ecs?.destroy()
  await actions?.stop()
  await moto?.stop()
  await world?.github.stop()
})

const controllerEnv = (prefix: string, extra: Record<string, string> = {}) => ({
  ...moto.env,
  GITHUB_URL: actions.url,
  GITHUB_API_URL: actions.url,
  GITHUB_OWNER: "acme",
  GHR_APP_SECRET: appSecretArn,
  RUNNER_NAME_PREFIX: prefix,
  DOCKER_MODE: "none",
  GITHUB_API_MAX_RETRIES: "1",
  GHR_CLUSTER: cluster,
  GHR_RUNNER_TASK_DEFINITION: taskDefinitionArn,
  GHR_SUBNETS: subnet,
  GHR_SECURITY_GROUPS: securityGroup,
  GHR_ASSIGN_PUBLIC_IP: "DISABLED",
  GHR_CAPACITY: "Fargate",
  GHR_CAPACITY_PROVIDER: "FARGATE",
  GHR_MIN_RUNNERS: "0",
  GHR_MAX_RUNNERS: "3",
  GHR_STATUS_INTERVAL_SECONDS: "1",
  ...extra
})

const tasksStartedBy = async (): Promise<Array<Task>> => {
  const list = await ecs.send(new ListTasksCommand({ cluster }))
  if ((list.taskArns ?? []).length === 0) return []
  const described = await ecs.send(new DescribeTasksCommand({ cluster, tasks: list.taskArns! }))
  return (described.tasks ?? []).filter((t) => t.startedBy === "ghr-controller")
}

const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await Bun.sleep(25)
  }
  throw new Error(`timed out waiting for ${what}`)
}

const scaleSetId = (name: string) => [...actions.scaleSets.values()].find((s) => s.name === name)?.id

describe("ghr controller (compiled) against fake GitHub + fake Actions service + moto ECS", () => {
  test("a JobAssigned message starts exactly one runner task with only a JIT config; SIGTERM deletes the session and exits 0", async () => {
    // No periodic task check during this test: moto moves a task towards STOPPED on every DescribeTasks.
    const ghr = spawnGhr(["controller"], { env: controllerEnv("e2e", { GHR_STATUS_INTERVAL_SECONDS: "60" }), timeoutMs: 45_000 })
    try {
      await ghr.waitForEvent("session.opened", 20_000)
      const id = scaleSetId("e2e")!
      expect(actions.sessions.has(id)).toBe(true)
      await ghr.waitForEvent("runners.status")

      const messageId = actions.pushJobMessage(id, [jobItem("JobAvailable"), jobItem("JobAssigned")], { totalAvailableJobs: 1, totalAssignedJobs: 1 })
      const launched = await ghr.waitForEvent("runner.launched")
      await until("the message to be acknowledged", () => !actions.pendingMessages(id).includes(messageId))

      const tasks = await tasksStartedBy()
      expect(tasks).toHaveLength(1)
      const task = tasks[0]!
      expect(task.taskArn).toBe(launched["taskArn"] as string)
      expect(task.taskDefinitionArn).toBe(taskDefinitionArn)
      const runner = [...actions.runners.values()].find((r) => r.name === launched["runner"])!
      expect(runner.scaleSetId).toBe(id)
      // Exactly one override: the JIT config the scale set issued for this runner, on container "runner".
      expect(task.overrides?.containerOverrides).toEqual([
        { name: "runner", environment: [{ name: "ACTIONS_RUNNER_INPUT_JITCONFIG", value: runner.encodedJitConfig }] }
      ])
      const overrideText = JSON.stringify(task.overrides)
      expect(overrideText).not.toContain("PRIVATE KEY")
      expect(overrideText).not.toContain(appSecretArn)
      expect(overrideText).not.toMatch(/GITHUB_APP|GHR_APP_SECRET|AWS_/)

      // The job was announced and acquired with the queue token; the poll declared max capacity.
      expect(parseRecords(ghr.output()).filter((r) => r["event"] === "job.queued")).toHaveLength(1)
      const acquire = actions.calls.find((c) => c.path.endsWith(`/runnerscalesets/${id}/acquirejobs`))!
      expect(acquire.body).toEqual([1001])
      expect(actions.calls.filter((c) => c.path === `/_queue/${id}/messages`).every((c) => c.maxCapacity === "3")).toBe(true)

      // The same statistics again: the runner already launched covers the assigned job.
      const again = actions.pushJobMessage(id, [], { totalAssignedJobs: 1 })
      await until("the second message to be acknowledged", () => !actions.pendingMessages(id).includes(again))
      await until("a runners.status with running 1", () => parseRecords(ghr.output()).some((r) => r["event"] === "runners.status" && r["running"] === 1))
      expect(await tasksStartedBy()).toHaveLength(1)

      ghr.proc.kill("SIGTERM")
      const result = await ghr.done
      expect(result.exitCode).toBe(0)
      expect(actions.sessions.has(id)).toBe(false)
      expect(result.records.some((r) => r["event"] === "session.deleted")).toBe(true)
      // The runner task was left to run its job: the controller never stopped it.
      expect((await tasksStartedBy())[0]!.stoppedReason ?? "").toBe("")
      expect(result.records.some((r) => r["event"] === "runner.task.stopping")).toBe(false)
      for (const secret of [...world.github.issuedSecrets(), ...actions.issuedSecrets(), world.key.privateKeyPem.split("\n")[1]!]) {
        expect(result.stdout).not.toContain(secret)
      }
      expect(result.stderr).toBe("")
    } finally {
      ghr.proc.kill("SIGKILL")
      await ghr.done
    }
  }, 60_000)

  test("a RunTask failure logs runtask.failed and deletes the runner it registered", async () => {
    const before = (await tasksStartedBy()).length
    const ghr = spawnGhr(["controller"], {
      env: controllerEnv("e2efail", { GHR_RUNNER_TASK_DEFINITION: "ghr-missing-runner:1" }),
      timeoutMs: 45_000
    })
    try {
      await ghr.waitForEvent("session.opened", 20_000)
      const id = scaleSetId("e2efail")!
      actions.pushJobMessage(id, [jobItem("JobAssigned", { runnerRequestId: 2002 })], { totalAssignedJobs: 1 })
      const failed = await ghr.waitForEvent("runtask.failed")
      expect(failed["level"]).toBe("error")
      const deleted = await ghr.waitForEvent("runner.deleted")
      expect(deleted["outcome"]).toBe("deleted")
      expect([...actions.runners.values()].filter((r) => r.scaleSetId === id)).toEqual([])
      expect(actions.calls.some((c) => c.method === "DELETE" && c.path.includes("/distributedtask/pools/0/agents/") && c.status === 204)).toBe(true)
      expect((await tasksStartedBy()).length).toBe(before)

      ghr.proc.kill("SIGTERM")
      const result = await ghr.done
      expect(result.exitCode).toBe(0)
      expect(actions.sessions.has(id)).toBe(false)
    } finally {
      ghr.proc.kill("SIGKILL")
      await ghr.done
    }
  }, 60_000)
})

describe("ghr controller scaling down and noticing stopped tasks", () => {
  test("an idle extra runner is deleted, then its task stopped; a task that stops by itself has its runner deleted", async () => {
    const ghr = spawnGhr(["controller"], { env: controllerEnv("e2edown", { GHR_STATUS_INTERVAL_SECONDS: "1" }), timeoutMs: 45_000 })
    try {
      await ghr.waitForEvent("session.opened", 20_000)
      const id = scaleSetId("e2edown")!
      actions.pushJobMessage(id, [jobItem("JobAssigned")], { totalAssignedJobs: 1 })
      const first = await ghr.waitForEvent("runner.launched")
      // The job was cancelled before the runner took it: nothing is assigned any more.
      actions.pushJobMessage(id, [], { totalAssignedJobs: 0 })
      await ghr.waitForEvent("runner.task.stopping")
      const stopped = (await tasksStartedBy()).find((t) => t.taskArn === first["taskArn"])!
      expect(stopped.stoppedReason).toBe("ghr controller: idle runner scaled down")
      expect([...actions.runners.values()].some((r) => r.name === first["runner"])).toBe(false)

      // A new job; moto then reports its task STOPPED (as if it crashed): the runner is deleted.
      actions.pushJobMessage(id, [jobItem("JobAssigned", { runnerRequestId: 3003 })], { totalAssignedJobs: 1 })
      await until("a second launch", () => parseRecords(ghr.output()).filter((r) => r["event"] === "runner.launched").length === 2)
      const gone = await ghr.waitForEvent("runner.task.stopped", 20_000)
      expect(gone["runner"]).not.toBe(first["runner"])
      await until("the runner of the stopped task to be deleted", () => ![...actions.runners.values()].some((r) => r.name === gone["runner"]))

      ghr.proc.kill("SIGINT")
      const result = await ghr.done
      expect(result.exitCode).toBe(0)
      expect(actions.sessions.has(id)).toBe(false)
    } finally {
      ghr.proc.kill("SIGKILL")
      await ghr.done
    }
  }, 60_000)
})

describe("ghr controller restarted", () => {
  test("adopts the runner tasks its predecessor started instead of starting new ones", async () => {
    const first = spawnGhr(["controller"], { env: controllerEnv("e2eadopt", { GHR_STATUS_INTERVAL_SECONDS: "60" }), timeoutMs: 45_000 })
    let launched: Record<string, unknown>
    try {
      await first.waitForEvent("session.opened", 20_000)
      actions.pushJobMessage(scaleSetId("e2eadopt")!, [jobItem("JobAssigned")], { totalAssignedJobs: 1 })
      launched = await first.waitForEvent("runner.launched")
      first.proc.kill("SIGTERM")
      expect((await first.done).exitCode).toBe(0)
    } finally {
      first.proc.kill("SIGKILL")
      await first.done
    }
    const second = spawnGhr(["controller"], { env: controllerEnv("e2eadopt", { GHR_STATUS_INTERVAL_SECONDS: "60" }), timeoutMs: 45_000 })
    try {
      const adopted = await second.waitForEvent("runners.adopted", 20_000)
      expect(adopted["count"]).toBe(1)
      await second.waitForEvent("session.opened")
      const id = scaleSetId("e2eadopt")!
      // The job still runs on the adopted runner: no second task for it.
      const again = actions.pushJobMessage(id, [], { totalAssignedJobs: 1 })
      await until("the message to be acknowledged", () => !actions.pendingMessages(id).includes(again))
      second.proc.kill("SIGTERM")
      const result = await second.done
      expect(result.exitCode).toBe(0)
      expect(result.records.filter((r) => r["event"] === "runner.launched")).toHaveLength(0)
      expect(result.records.some((r) => r["event"] === "runners.status" && r["running"] === 1)).toBe(true)
      expect(launched["runner"]).toBeDefined()
    } finally {
      second.proc.kill("SIGKILL")
      await second.done
    }
  }, 60_000)
})

describe("TaskLauncher against a scripted ECS", () => {
  const base = settingsFrom({ GITHUB_OWNER: "acme", GITHUB_APP_ID: "1", GITHUB_APP_INSTALLATION_ID: "2", GITHUB_APP_PRIVATE_KEY: generateAppKey().privateKeyPem })
  const settingsFor = (capacityProvider: string): ControllerSettings => ({
    github: base,
    cluster: "c",
    taskDefinition: "ghr-runner:1",
    subnets: ["subnet-0123abcd"],
    securityGroups: ["sg-0123abcd"],
    assignPublicIp: "DISABLED",
    capacity: capacityProvider === "FARGATE_SPOT" ? "FargateSpot" : "Fargate",
    capacityProvider,
    minRunners: 0,
    maxRunners: 2,
    statusIntervalSeconds: 60
  })
  const scripted = (answers: Array<"ok" | "no-capacity" | "throw">) => {
    const inputs: Array<RunTaskCommandInput> = []
    const api: EcsApi = {
      runTask: async (input) => {
        inputs.push(input)
        const answer = answers.shift()
        if (answer === "throw") throw Object.assign(new Error("The referenced task definition is not found"), { name: "ClientException" })
        if (answer === "no-capacity") return { $metadata: {}, tasks: [], failures: [{ reason: "Capacity is unavailable at this time. Please try again later or in a different availability zone" }] }
        return { $metadata: {}, tasks: [{ taskArn: `arn:aws:ecs:r:1:task/c/${inputs.length}` }], failures: [] }
      },
      describeTasks: async () => [],
      listTasks: async () => [],
      stopTask: async () => {}
    }
    return { api, inputs }
  }
  const logged = (lines: Array<string>) =>
    Layer.mergeAll(Log.layer({ format: "json", level: "debug", write: (l) => void lines.push(l) })).pipe(Layer.provideMerge(Log.Redaction.layer))

  test("FARGATE_SPOT without capacity is retried once on FARGATE", async () => {
    const { api, inputs } = scripted(["no-capacity", "ok"])
    const lines: Array<string> = []
    const launched = await runTest(makeLauncher(settingsFor("FARGATE_SPOT"), api).launch("ghr-a", Redacted.make("jit")).pipe(Effect.provide(logged(lines))))
    expect(launched.capacityProvider).toBe("FARGATE")
    expect(inputs[0]!.capacityProviderStrategy).toEqual([{ capacityProvider: "FARGATE_SPOT", weight: 1 }])
    expect(inputs[1]!.launchType).toBe("FARGATE")
    expect(inputs[1]!.overrides?.containerOverrides?.[0]?.environment).toEqual([{ name: "ACTIONS_RUNNER_INPUT_JITCONFIG", value: "jit" }])
    expect(inputs[1]!.networkConfiguration?.awsvpcConfiguration).toEqual({ subnets: ["subnet-0123abcd"], securityGroups: ["sg-0123abcd"], assignPublicIp: "DISABLED" })
    expect(inputs[1]!.startedBy).toBe("ghr-controller")
    expect(parseRecords(lines.join("")).map((r) => r["event"])).toEqual(["runtask.spot.unavailable", "runner.launched"])
  })

  test("a failure is logged as runtask.failed and is a RunTaskError; on-demand is not retried", async () => {
    const { api, inputs } = scripted(["no-capacity", "ok"])
    const lines: Array<string> = []
    const error = await runFailure(makeLauncher(settingsFor("FARGATE"), api).launch("ghr-b", Redacted.make("jit")).pipe(Effect.provide(logged(lines))))
    expect(error).toBeInstanceOf(RunTaskError)
    expect(inputs).toHaveLength(1)
    expect(parseRecords(lines.join(""))[0]!["event"]).toBe("runtask.failed")
    const thrown = scripted(["throw"])
    const error2 = await runFailure(makeLauncher(settingsFor("FARGATE_SPOT"), thrown.api).launch("ghr-c", Redacted.make("jit")).pipe(Effect.provide(logged([]))))
    expect((error2 as RunTaskError).detail).toContain("ClientException")
    expect(thrown.inputs).toHaveLength(1)
  })
})
