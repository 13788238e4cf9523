/**
 * `ghr deploy`: the pure helpers, the change-set workflow against a scripted CloudFormation, the
 * full create → no-change → update → delete cycle through the compiled binary against moto_server,
 * and every input a user can get wrong.
 */
import { CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation"
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createServer, type Server } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Runtime } from "effect"
import { CliError } from "effect/cli"
import {
  chooseTemplateBody,
  type CfnApi,
  type CreateChangeSetRequest,
  crossParameterProblems,
  Deploy,
  DeployParameterError,
  type DeployUi,
  effectiveValues,
  firstFailure,
  givenParameterProblems,
  isNoChangeReason,
  missingParameterProblems,
  ParamFileError,
  parseParamArgs,
  parseParamFile,
  type StackEvent,
  type StackInfo,
  StackOperationFailed,
  StackStateError,
  statusOutcome,
  summarizeChangeSet,
  templateSpec
} from "../src/Deploy.ts"
import { makeUi } from "../src/commands/deploy.ts"
import { templateDocument, templateText } from "../src/commands/template.ts"
import { ExitCode } from "../src/Errors.ts"
import { runFailure, runTest } from "./support/effect.ts"
import { type GhrResult, runGhr } from "./support/ghr.ts"
import { createSecret, type Moto, motoJsonCall, motoQueryCall, region, startMoto } from "./support/moto.ts"
import { freePort } from "./support/ports.ts"

const spec = templateSpec(templateDocument())
const image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ghr-runner:1"

// =============================================================================================
// Pure helpers
// =============================================================================================

describe("--param and --param-file parsing", () => {
  test("KEY=VALUE; the value keeps everything after the first '='", () => {
    expect(parseParamArgs(["Capacity=FargateSpot", "RunnerLabels=a,b", "GitHubUrl=https://x.example.com/?a=b", "AlarmEmail="]))
      .toEqual({
        values: { Capacity: "FargateSpot", RunnerLabels: "a,b", GitHubUrl: "https://x.example.com/?a=b", AlarmEmail: "" },
        problems: []
      })
  })

  test("malformed arguments are problems, not guesses", () => {
    const { problems } = parseParamArgs(["Capacity", "=x", "Bad Key=1"])
    expect(problems.map((p) => p.parameter)).toEqual(["--param Capacity", "--param =x", "--param Bad Key=1"])
    expect(problems[0]!.problem).toContain("KEY=VALUE")
  })

  test("files: JSON mapping, YAML, AWS CLI list, template configuration file; lists and numbers become text", () => {
    expect(parseParamFile('{"Capacity": "FargateSpot", "MaxRunners": 20, "SubnetIds": ["subnet-1", "subnet-2"]}'))
      .toEqual({ values: { Capacity: "FargateSpot", MaxRunners: "20", SubnetIds: "subnet-1,subnet-2" } })
    expect(parseParamFile("Capacity: ManagedInstances\nDockerMode: dind\n"))
      .toEqual({ values: { Capacity: "ManagedInstances", DockerMode: "dind" } })
    expect(parseParamFile('[{"ParameterKey": "Capacity", "ParameterValue": "Fargate"}]'))
      .toEqual({ values: { Capacity: "Fargate" } })
    expect(parseParamFile('{"Parameters": {"MinRunners": "1"}}')).toEqual({ values: { MinRunners: "1" } })
  })

  test("files of the wrong shape say what shape is expected", () => {
    for (const text of ["[1, 2", '"just text"', "[{}]", '{"A": {"nested": 1}}']) {
      const parsed = parseParamFile(text)
      expect("error" in parsed, text).toBe(true)
    }
    expect((parseParamFile('"just text"') as { error: string }).error).toContain("ParameterKey")
  })
})

describe("validation against the template's Parameters", () => {
  test("unknown names, with a suggestion", () => {
    const problems = givenParameterProblems(spec.parameters, { Capcity: "Fargate", totally_unrelated: "1" })
    expect(problems[0]!.problem).toContain("did you mean Capacity?")
    expect(problems[1]!.problem).not.toContain("did you mean")
    expect(problems[1]!.problem).toContain("GitHubOwner")
  })

  test("AllowedValues, AllowedPattern, number ranges and AWS ID shapes", () => {
    const problems = givenParameterProblems(spec.parameters, {
      Capacity: "Lambda",
      GitHubOwner: "not a login",
      MaxRunners: "0",
      MinRunners: "many",
      LogRetentionDays: "10",
      VpcId: "my-vpc",
      SubnetIds: "subnet-0123abcd,",
      RunnerImage: "ghr-runner"
    })
    const by = Object.fromEntries(problems.map((p) => [p.parameter, p.problem]))
    expect(by["Capacity"]).toBe('must be one of Fargate, FargateSpot, ManagedInstances (got "Lambda")')
    expect(by["GitHubOwner"]).toContain("must be a GitHub login")
    expect(by["MaxRunners"]).toContain("below the minimum 1")
    expect(by["MinRunners"]).toContain("expected a number")
    expect(by["LogRetentionDays"]).toContain("must be one of 1, 3, 5")
    expect(by["VpcId"]).toContain("vpc-0123456789abcdef0")
    expect(by["SubnetIds"]).toContain("at least one value")
    expect(by["RunnerImage"]).toContain("full image URI")
  })

  test("good values pass", () => {
    expect(givenParameterProblems(spec.parameters, {
      Capacity: "ManagedInstances",
      DockerMode: "dind",
      GitHubOwner: "acme-inc",
      GitHubRepository: "",
      RunnerLabels: "self-hosted,linux,x64,gpu",
      MaxRunners: "50",
      VpcId: "vpc-0123456789abcdef0",
      SubnetIds: "subnet-0123456789abcdef0,subnet-abcdef01",
      RunnerImage: image,
      DindImage: "ghcr.io/acme/ghr-dind@sha256:" + "a".repeat(64),
      AppSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:ghr/app-AbC123",
      EcrRepositoryArns: "arn:aws:ecr:us-east-1:123456789012:repository/ghr-runner,arn:aws:ecr:us-east-1:123456789012:repository/ghr-dind",
      AlarmEmail: "ops@example.com"
    })).toEqual([])
  })

  test("required parameters: given, or kept from the existing stack", () => {
    const missing = missingParameterProblems(spec.parameters, { GitHubOwner: "acme" }, {})
    expect(missing.map((p) => p.parameter).sort()).toEqual(["RunnerImage", "SubnetIds", "VpcId"])
    expect(missing.find((p) => p.parameter === "RunnerImage")!.problem).toContain("--param RunnerImage=<value>")
    expect(missingParameterProblems(spec.parameters, {}, { GitHubOwner: "a", RunnerImage: "b", VpcId: "c", SubnetIds: "d" }))
      .toEqual([])
  })

  test("effective values: given, then previous, then default", () => {
    const values = effectiveValues(spec.parameters, { Capacity: "FargateSpot" }, { Capacity: "Fargate", MaxRunners: "3" })
    expect(values["Capacity"]).toBe("FargateSpot")
    expect(values["MaxRunners"]).toBe("3")
    expect(values["MinRunners"]).toBe("0")
    expect(values["GitHubOwner"]).toBeUndefined()
  })

  test("MinRunners must not exceed MaxRunners (Rules cannot compare numbers)", () => {
    expect(crossParameterProblems({ MinRunners: "5", MaxRunners: "3" })[0]!.problem).toContain("MinRunners must not exceed")
    expect(crossParameterProblems({ MinRunners: "3", MaxRunners: "3" })).toEqual([])
  })
})

describe("change sets and events", () => {
  test("summary: one aligned line per change, replacements called out", () => {
    const summary = summarizeChangeSet([
      { action: "Add", logicalId: "RunnerLogGroup", resourceType: "AWS::Logs::LogGroup", replacement: undefined },
      { action: "Modify", logicalId: "RunnerTaskDefinition", resourceType: "AWS::ECS::TaskDefinition", replacement: "True" },
      { action: "Modify", logicalId: "ControllerService", resourceType: "AWS::ECS::Service", replacement: "False" },
      { action: "Remove", logicalId: "Old", resourceType: "AWS::SNS::Topic", replacement: undefined }
    ])
    expect(summary).toMatchObject({ add: 1, modify: 2, remove: 1, other: 0 })
    expect(summary.lines).toEqual([
      "  + Add    RunnerLogGroup        AWS::Logs::LogGroup",
      "  ~ Modify RunnerTaskDefinition  AWS::ECS::TaskDefinition  replacement: yes (recreated)",
      "  ~ Modify ControllerService     AWS::ECS::Service",
      "  - Remove Old                   AWS::SNS::Topic"
    ])
  })

  test("'no changes' is recognised in both of CloudFormation's wordings", () => {
    expect(isNoChangeReason("The submitted information didn't contain changes. Submit different information to create a change set.")).toBe(true)
    expect(isNoChangeReason("No updates are to be performed.")).toBe(true)
    expect(isNoChangeReason("Template format error")).toBe(false)
    expect(isNoChangeReason(undefined)).toBe(false)
  })

  const event = (seconds: number, logicalId: string, status: string, reason?: string): StackEvent => ({
    id: `${logicalId}-${status}-${seconds}`,
    timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, seconds)),
    logicalId,
    resourceType: logicalId === "stack" ? "AWS::CloudFormation::Stack" : "AWS::ECS::Service",
    status,
    reason
  })

  test("the first failure is the earliest real one, not a cancellation", () => {
    const events = [
      event(9, "stack", "ROLLBACK_COMPLETE"),
      event(5, "Dashboard", "CREATE_FAILED", "Resource creation cancelled"),
      event(4, "ControllerService", "CREATE_FAILED", "Invalid request provided: subnet not found"),
      event(6, "stack", "ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: [ControllerService]"),
      event(3, "Cluster", "CREATE_COMPLETE")
    ]
    expect(firstFailure(events)?.logicalId).toBe("ControllerService")
    expect(firstFailure([events[1]!])?.logicalId).toBe("Dashboard")
    expect(firstFailure([events[4]!])).toBeUndefined()
  })

  test("stack status outcomes", () => {
    expect(statusOutcome("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")).toBe("in-progress")
    expect(statusOutcome("CREATE_COMPLETE")).toBe("success")
    expect(statusOutcome("DELETE_COMPLETE")).toBe("success")
    expect(statusOutcome("UPDATE_ROLLBACK_COMPLETE")).toBe("failure")
    expect(statusOutcome("ROLLBACK_COMPLETE")).toBe("failure")
  })

  test("the template goes inline; JSON only if the YAML were too large", () => {
    expect(chooseTemplateBody(templateText, templateDocument())).toBe(templateText)
    const big = templateText + "#".repeat(60_000)
    expect(chooseTemplateBody(big, templateDocument())).toBe(JSON.stringify(templateDocument()))
    expect(chooseTemplateBody(big, { x: "y".repeat(60_000) })).toBeUndefined()
  })
})

describe("errors: messages and exit codes", () => {
  test("parameter errors exit 78 and list every problem; stack failures exit 1", () => {
    const params = new DeployParameterError({ problems: [{ parameter: "Capacity", problem: "must be one of A, B" }] })
    expect(Runtime.getErrorExitCode(params)).toBe(ExitCode.configError)
    expect(CliError.getUserMessage(params)).toContain("Capacity: must be one of A, B")
    const file = new ParamFileError({ path: "p.json", detail: "it cannot be read" })
    expect(Runtime.getErrorExitCode(file)).toBe(ExitCode.configError)
    const state = new StackStateError({ stackName: "s", status: "ROLLBACK_COMPLETE", detail: "d", fix: "f" })
    expect(Runtime.getErrorExitCode(state)).toBe(ExitCode.unexpected)
    const failed = new StackOperationFailed({
      stackName: "s",
      operation: "update",
      status: "UPDATE_ROLLBACK_COMPLETE",
      resource: "ControllerService",
      resourceType: "AWS::ECS::Service",
      reason: "boom",
      fix: "fix it"
    })
    expect(failed.message).toContain("First failure: ControllerService (AWS::ECS::Service): boom")
    expect(Runtime.getErrorExitCode(failed)).toBe(ExitCode.unexpected)
  })
})

// =============================================================================================
// The workflow against a scripted CloudFormation
// =============================================================================================

interface Script {
  stack?: StackInfo | undefined
  changeSetStatus?: { status: string; reason?: string }
  /** Stack status after ExecuteChangeSet / DeleteStack. */
  finalStatus?: string
  finalEvents?: ReadonlyArray<StackEvent>
}

const stackInfo = (status: string, parameters: Record<string, string> = {}): StackInfo => ({
  stackId: "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
  stackName: "s",
  status,
  statusReason: undefined,
  parameters,
  outputs: [{ key: "ClusterName", value: "s", description: undefined }]
})

const scripted = (script: Script) => {
  const calls: Array<string> = []
  let requests: Array<CreateChangeSetRequest> = []
  let current = script.stack
  let events: ReadonlyArray<StackEvent> = []
  const api: CfnApi = {
    region: Effect.succeed("us-east-1"),
    describeStack: (id) =>
      Effect.sync(() => {
        calls.push(`describeStack ${id}`)
        return current
      }),
    createChangeSet: (request) =>
      Effect.sync(() => {
        calls.push(`createChangeSet ${request.type}`)
        requests = [...requests, request]
        current ??= stackInfo("REVIEW_IN_PROGRESS")
        return { id: "cs-1", stackId: current.stackId }
      }),
    describeChangeSet: () =>
      Effect.succeed({
        status: script.changeSetStatus?.status ?? "CREATE_COMPLETE",
        statusReason: script.changeSetStatus?.reason,
        changes: [{ action: "Modify", logicalId: "ControllerTaskDefinition", resourceType: "AWS::ECS::TaskDefinition", replacement: "True" }]
      }),
    executeChangeSet: (_, options) =>
      Effect.sync(() => {
        calls.push(`executeChangeSet${options.disableRollback ? " (keep on failure)" : ""}`)
        current = { ...current!, status: script.finalStatus ?? "UPDATE_COMPLETE" }
        events = script.finalEvents ?? []
      }),
    deleteChangeSet: () => Effect.sync(() => void calls.push("deleteChangeSet")),
    deleteStack: () =>
      Effect.sync(() => {
        calls.push("deleteStack")
        current = script.finalStatus === undefined ? undefined : { ...current!, status: script.finalStatus }
        events = script.finalEvents ?? []
      }),
    events: (_, stopAt) =>
      Effect.sync(() => {
        const out: Array<StackEvent> = []
        for (const e of [...events].reverse()) {
          if (stopAt(e)) break
          out.push(e)
        }
        return out
      })
  }
  return { api, calls, requests: () => requests }
}

const captureUi = () => {
  const lines: Array<string> = []
  const ui: DeployUi = {
    info: (l) => Effect.sync(() => void lines.push(l)),
    changeSet: (title, summary) => Effect.sync(() => void lines.push(title, ...summary.lines)),
    progress: (events, status) => Effect.sync(() => void lines.push(...events.map((e) => `${e.logicalId} ${e.status}`), `status ${status}`)),
    outputs: (outputs) => Effect.sync(() => void lines.push(...outputs.map((o) => `output ${o.key}=${o.value}`)))
  }
  return { ui, lines }
}

const required = { GitHubOwner: "acme", RunnerImage: image, VpcId: "vpc-0123456789abcdef0", SubnetIds: "subnet-0123456789abcdef0" }
const request = (parameters: Record<string, string>, dryRun = false) => ({
  stackName: "s",
  templateText,
  templateDocument: templateDocument(),
  parameters,
  dryRun,
  description: "test"
})

const withDeploy = <A, E>(api: CfnApi, f: (deploy: Deploy["Service"]) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    return yield* f(yield* Deploy)
  }).pipe(Effect.provide(Deploy.layerWith(api)))

describe("the change-set workflow", () => {
  test("update: given parameters are sent, every other one keeps its previous value", async () => {
    const fake = scripted({ stack: stackInfo("UPDATE_COMPLETE", { ...required, Capacity: "Fargate", MaxRunners: "4" }) })
    const { ui, lines } = captureUi()
    const outcome = await runTest(withDeploy(fake.api, (d) => d.deploy(request({ RunnerImage: image.replace(":1", ":2") }), ui)))
    expect(outcome).toBe("updated")
    const sent = fake.requests()[0]!
    expect(sent.type).toBe("UPDATE")
    expect(sent.parameters).toContainEqual({ key: "RunnerImage", value: image.replace(":1", ":2") })
    expect(sent.parameters).toContainEqual({ key: "MaxRunners", usePrevious: true })
    // Parameters the old stack did not have take their default: not sent at all.
    expect(sent.parameters.some((p) => p.key === "DockerMode")).toBe(false)
    expect(lines).toContain("  ~ Modify ControllerTaskDefinition  AWS::ECS::TaskDefinition  replacement: yes (recreated)")
    expect(lines).toContain("output ClusterName=s")
  })

  test("ROLLBACK_COMPLETE: nothing is attempted, and the message says to delete the stack first", async () => {
    const fake = scripted({ stack: { ...stackInfo("ROLLBACK_COMPLETE"), statusReason: "The following resource(s) failed to create: [ControllerService]." } })
    const error = await runFailure(withDeploy(fake.api, (d) => d.deploy(request(required), captureUi().ui)))
    expect(error).toBeInstanceOf(StackStateError)
    expect(error.message).toContain("ROLLBACK_COMPLETE")
    expect(error.message).toContain("ghr deploy --stack-name s --delete")
    expect(error.message).toContain("[ControllerService]")
    expect(fake.calls.filter((c) => !c.startsWith("describeStack"))).toEqual([])
  })

  test("another operation in progress: wait, do not queue", async () => {
    const fake = scripted({ stack: stackInfo("UPDATE_IN_PROGRESS") })
    const error = await runFailure(withDeploy(fake.api, (d) => d.deploy(request(required), captureUi().ui)))
    expect(error).toBeInstanceOf(StackStateError)
    expect(error.message).toContain("still running")
  })

  test("a failed creation names the first failed resource and its reason", async () => {
    const failed = (s: number, id: string, status: string, reason?: string): StackEvent => ({
      id: `${id}${s}`,
      timestamp: new Date(1_000 * s),
      logicalId: id,
      resourceType: id === "s" ? "AWS::CloudFormation::Stack" : "AWS::ECS::Service",
      status,
      reason
    })
    const fake = scripted({
      finalStatus: "CREATE_FAILED",
      finalEvents: [
        failed(1, "s", "CREATE_IN_PROGRESS", "User Initiated"),
        failed(2, "ControllerService", "CREATE_FAILED", "Error occurred during operation 'ECS Deployment Circuit Breaker was triggered'."),
        failed(3, "Dashboard", "CREATE_FAILED", "Resource creation cancelled"),
        failed(4, "s", "CREATE_FAILED")
      ]
    })
    const { ui, lines } = captureUi()
    const error = await runFailure(withDeploy(fake.api, (d) => d.deploy(request(required), ui)))
    expect(error).toBeInstanceOf(StackOperationFailed)
    expect(error.message).toContain("creation of stack s failed (CREATE_FAILED)")
    expect(error.message).toContain("First failure: ControllerService (AWS::ECS::Service): Error occurred during operation")
    expect(error.message).toContain("aws logs tail /ghr/s/controller")
    expect(error.message).toContain("--delete")
    expect(lines).toContain("ControllerService CREATE_FAILED")
    expect(fake.requests()[0]!.type).toBe("CREATE")
    // A creation keeps what it made when it fails; an update rolls back.
    expect(fake.calls).toContain("executeChangeSet (keep on failure)")
  })

  test("a stack whose creation failed (CREATE_FAILED, resources kept) is continued with an update", async () => {
    const fake = scripted({ stack: stackInfo("CREATE_FAILED", required), finalStatus: "UPDATE_COMPLETE" })
    expect(await runTest(withDeploy(fake.api, (d) => d.deploy(request({ MaxRunners: "3" }), captureUi().ui)))).toBe("updated")
    expect(fake.requests()[0]!.type).toBe("UPDATE")
    expect(fake.calls).toContain("executeChangeSet")
  })

  test("no changes: success, and the empty change set is deleted", async () => {
    const fake = scripted({
      stack: stackInfo("UPDATE_COMPLETE", required),
      changeSetStatus: { status: "FAILED", reason: "The submitted information didn't contain changes. Submit different information to create a change set." }
    })
    const { ui, lines } = captureUi()
    expect(await runTest(withDeploy(fake.api, (d) => d.deploy(request({}), ui)))).toBe("unchanged")
    expect(fake.calls).toContain("deleteChangeSet")
    expect(fake.calls).not.toContain("executeChangeSet")
    expect(lines.join("\n")).toContain("No changes")
  })

  test("a change set CloudFormation rejects fails without touching the stack; a new stack's shell is removed", async () => {
    const fake = scripted({ changeSetStatus: { status: "FAILED", reason: "Template error: something" } })
    const error = await runFailure(withDeploy(fake.api, (d) => d.deploy(request(required), captureUi().ui)))
    expect(error).toBeInstanceOf(StackOperationFailed)
    expect(error.message).toContain("Template error: something")
    expect(fake.calls).toEqual(expect.arrayContaining(["deleteChangeSet", "deleteStack"]))
  })

  test("dry run: the change set is shown, then deleted", async () => {
    const fake = scripted({ stack: stackInfo("UPDATE_COMPLETE", required) })
    const { ui, lines } = captureUi()
    expect(await runTest(withDeploy(fake.api, (d) => d.deploy(request({ MaxRunners: "3" }, true), ui)))).toBe("planned")
    expect(fake.calls).toContain("deleteChangeSet")
    expect(fake.calls).not.toContain("executeChangeSet")
    expect(fake.calls).not.toContain("deleteStack")
    expect(lines.some((l) => l.startsWith("Change set ghr-"))).toBe(true)
  })

  test("parameter problems are all reported before anything is sent", async () => {
    const fake = scripted({})
    const error = await runFailure(withDeploy(fake.api, (d) =>
      d.deploy(request({ GitHubOwner: "acme", Capacity: "Fargate", DockerMode: "dind", DindImage: "r.example.com/d:1", MinRunners: "9", MaxRunners: "2" }), captureUi().ui)
    ))
    expect(error).toBeInstanceOf(DeployParameterError)
    const problems = (error as DeployParameterError).problems.map((p) => p.problem).join("\n")
    expect(problems).toContain("RunnerImage") // missing
    expect(problems).toContain("Fargate does not allow privileged containers")
    expect(problems).toContain("MinRunners must not exceed MaxRunners")
    expect(fake.calls.some((c) => c.startsWith("createChangeSet"))).toBe(false)
  })

  test("delete: absent stack is fine; a failed delete names the resource", async () => {
    expect(await runTest(withDeploy(scripted({}).api, (d) => d.remove("s", captureUi().ui)))).toBe("absent")
    const fake = scripted({
      stack: stackInfo("CREATE_COMPLETE"),
      finalStatus: "DELETE_FAILED",
      finalEvents: [{
        id: "1",
        timestamp: new Date(1),
        logicalId: "SecurityGroup",
        resourceType: "AWS::EC2::SecurityGroup",
        status: "DELETE_FAILED",
        reason: "resource sg-1 has a dependent object"
      }]
    })
    const error = await runFailure(withDeploy(fake.api, (d) => d.remove("s", captureUi().ui)))
    expect(error.message).toContain("First failure: SecurityGroup (AWS::EC2::SecurityGroup): resource sg-1 has a dependent object")
  })

  test("deleting a stack that created the App secret says the secret was kept", async () => {
    const stack = {
      ...stackInfo("CREATE_COMPLETE", { AppSecretArn: "" }),
      outputs: [{ key: "AppSecretArn", value: "arn:aws:secretsmanager:us-east-1:1:secret:s-AbC123", description: undefined }]
    }
    const { ui, lines } = captureUi()
    expect(await runTest(withDeploy(scripted({ stack }).api, (d) => d.remove("s", ui)))).toBe("deleted")
    expect(lines.join("\n")).toContain("Kept the App secret arn:aws:secretsmanager:us-east-1:1:secret:s-AbC123")
  })
})

describe("progress display", () => {
  const events: ReadonlyArray<StackEvent> = [
    { id: "1", timestamp: new Date(Date.UTC(2026, 0, 1, 12, 0, 1)), logicalId: "Cluster", resourceType: "AWS::ECS::Cluster", status: "CREATE_IN_PROGRESS", reason: undefined },
    { id: "2", timestamp: new Date(Date.UTC(2026, 0, 1, 12, 0, 2)), logicalId: "Cluster", resourceType: "AWS::ECS::Cluster", status: "CREATE_COMPLETE", reason: undefined },
    { id: "3", timestamp: new Date(Date.UTC(2026, 0, 1, 12, 0, 3)), logicalId: "ControllerService", resourceType: "AWS::ECS::Service", status: "CREATE_IN_PROGRESS", reason: "Resource creation Initiated" }
  ]
  const render = (tty: boolean) => {
    let out = ""
    const ui = makeUi({ tty, color: false, columns: () => 80, write: (t) => void (out += t), now: () => 0 })
    Effect.runSync(ui.progress(events.slice(0, 1), "CREATE_IN_PROGRESS"))
    Effect.runSync(ui.progress(events.slice(1), "CREATE_IN_PROGRESS"))
    Effect.runSync(ui.progress([], "CREATE_COMPLETE"))
    return out
  }

  test("not a terminal: plain lines, one per event", () => {
    expect(render(false)).toBe([
      "12:00:01  CREATE_IN_PROGRESS           Cluster  AWS::ECS::Cluster",
      "12:00:02  CREATE_COMPLETE              Cluster  AWS::ECS::Cluster",
      "12:00:03  CREATE_IN_PROGRESS           ControllerService  AWS::ECS::Service  — Resource creation Initiated",
      "Stack status: CREATE_COMPLETE",
      ""
    ].join("\n"))
  })

  test("a terminal: a block redrawn in place, then one final line per resource", () => {
    const out = render(true)
    expect(out).toContain("\x1b[") // cursor movement: the block is redrawn
    expect(out).toContain("1 done, 1 in progress, 0 failed")
    const final = out.slice(out.lastIndexOf("\x1b[J") + 3)
    expect(final).toContain("✓ Cluster")
    expect(final).toContain("ControllerService  CREATE_IN_PROGRESS")
    expect(final).toContain("Stack status: CREATE_COMPLETE")
  })
})

// =============================================================================================
// Through the binary, against moto_server
// =============================================================================================

/** One call to moto with a given AWS protocol; moto routes requests by the credential scope. */
const ecs = (endpoint: string, action: string, body: unknown) =>
  motoJsonCall(endpoint, "ecs", `AmazonEC2ContainerServiceV20141113.${action}`, body)
const logGroups = async (endpoint: string, prefix: string) =>
  (await motoJsonCall(endpoint, "logs", "Logs_20140328.DescribeLogGroups", { logGroupNamePrefix: prefix })).logGroups as Array<
    { logGroupName: string; retentionInDays?: number }
  >
const roleNames = async (endpoint: string, stackName: string) =>
  [...(await motoQueryCall(endpoint, "iam", { Action: "ListRoles", Version: "2010-05-08" })).matchAll(/<RoleName>([^<]+)<\/RoleName>/g)]
    .map((m) => m[1]!)
    .filter((n) => n.startsWith(`${stackName}-`))
    .sort()

const combined = (r: GhrResult) => `${r.stdout}\n${r.stderr}`

/** A failure as the user sees it: non-zero exit, the message, no stack trace. */
const expectFailure = (r: GhrResult, code: number, ...texts: ReadonlyArray<string>) => {
  expect(r.exitCode).toBe(code)
  for (const text of texts) expect(combined(r)).toContain(text)
  expect(combined(r)).not.toMatch(/\n\s+at .+:\d+:\d+/)
}

describe("ghr deploy against moto_server", () => {
  let moto: Moto
  let dir: string
  let vpcId: string
  let subnetId: string
  let secretArn: string

  let cfn: CloudFormationClient
  beforeAll(async () => {
    moto = await startMoto()
    cfn = new CloudFormationClient({ endpoint: moto.endpoint, region, credentials: moto.credentials })
    dir = mkdtempSync(join(tmpdir(), "ghr-deploy-"))
    const subnets = await motoQueryCall(moto.endpoint, "ec2", { Action: "DescribeSubnets", Version: "2016-11-15" })
    subnetId = /<subnetId>([^<]+)<\/subnetId>/.exec(subnets)![1]!
    vpcId = /<vpcId>([^<]+)<\/vpcId>/.exec(subnets)![1]!
    // moto's CloudFormation cannot create AWS::SecretsManager::Secret: use an existing secret.
    secretArn = await createSecret(moto.endpoint, "ghr/app", JSON.stringify({ app_id: "1", installation_id: "2", private_key: "x" }))
  }, 30_000)
  afterAll(async () => {
    cfn?.destroy()
    await moto?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const deploy = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
    runGhr(["deploy", ...args], { env: { ...moto.env, ...env }, timeoutMs: 60_000 })

  /**
   * Every parameter, explicitly. moto compares a change set's parameters with those the stack was
   * created with (it never records updates) and cannot resolve UsePreviousValue for List parameters,
   * so the cycle passes the full set each time; real CloudFormation needs only what changes.
   */
  const allParameters = () => ({
    GitHubUrl: "https://github.com",
    GitHubOwner: "acme",
    GitHubRepository: "",
    RunnerGroup: "default",
    RunnerLabels: "self-hosted,linux,x64",
    RunnerNamePrefix: "ghr",
    AppSecretArn: secretArn,
    AppSecretKmsKeyArn: "",
    RunnerImage: image,
    DindImage: "",
    EcrRepositoryArns: "arn:aws:ecr:us-east-1:123456789012:repository/ghr-runner",
    Capacity: "FargateSpot",
    DockerMode: "none",
    CpuArchitecture: "X86_64",
    RunnerCpu: "1024",
    RunnerMemory: "4096",
    EphemeralStorageGiB: "50",
    MinRunners: "0",
    MaxRunners: "10",
    VpcId: vpcId,
    SubnetIds: subnetId,
    AssignPublicIp: "ENABLED",
    LogRetentionDays: "14",
    AlarmEmail: ""
  })

  test("every template parameter is in the cycle's parameter file", () => {
    expect(Object.keys(allParameters()).sort()).toEqual(spec.parameters.map((p) => p.name).sort())
  })

  test("create, no-change update, update with a changed parameter, delete", async () => {
    const stack = "ghr-cycle"
    const file = join(dir, "params.json")
    writeFileSync(file, JSON.stringify(allParameters(), null, 2))
    const timings: Array<string> = []
    const timed = async (name: string, f: () => Promise<GhrResult>) => {
      const started = performance.now()
      const result = await f()
      timings.push(`${name} ${Math.round(performance.now() - started)} ms`)
      if (result.exitCode !== 0) throw new Error(`${name} exited ${result.exitCode}:\n${combined(result)}`)
      return result
    }
    const cycleStarted = performance.now()

    // --- create
    const created = await timed("create", () => deploy(["--stack-name", stack, "--param-file", file]))
    expect(created.stdout).toContain(`Creating stack ${stack} in ${region}`)
    expect(created.stdout).toMatch(/Change set ghr-\d+: \d+ to add/)
    expect(created.stdout).toContain("Stack status: CREATE_COMPLETE")

    const clusters = await ecs(moto.endpoint, "DescribeClusters", { clusters: [stack] })
    expect(clusters.clusters.map((c: any) => [c.clusterName, c.status])).toEqual([[stack, "ACTIVE"]])
    const families = (await ecs(moto.endpoint, "ListTaskDefinitions", {})).taskDefinitionArns as Array<string>
    expect(families.filter((a) => a.includes(`/${stack}-`)).map((a) => a.split("/")[1]).sort())
      .toEqual([`${stack}-controller:1`, `${stack}-runner:1`])
    const services = (await ecs(moto.endpoint, "ListServices", { cluster: stack })).serviceArns as Array<string>
    expect(services).toHaveLength(1)
    const service = (await ecs(moto.endpoint, "DescribeServices", { cluster: stack, services })).services[0]
    expect(service.desiredCount).toBe(1)
    expect(service.taskDefinition).toContain(`${stack}-controller`)
    expect(await roleNames(moto.endpoint, stack)).toEqual([
      expect.stringMatching(new RegExp(`^${stack}-ControllerExecutionRole-`)),
      expect.stringMatching(new RegExp(`^${stack}-ControllerTaskRole-`)),
      expect.stringMatching(new RegExp(`^${stack}-RunnerExecutionRole-`)),
      expect.stringMatching(new RegExp(`^${stack}-RunnerTaskRole-`))
    ])
    const groups = [...await logGroups(moto.endpoint, `/ghr/${stack}/`), ...await logGroups(moto.endpoint, `/aws/events/ghr/${stack}`)]
    expect(groups.map((g) => [g.logGroupName, g.retentionInDays]).sort()).toEqual([
      [`/aws/events/ghr/${stack}`, 14],
      [`/ghr/${stack}/controller`, 14],
      [`/ghr/${stack}/runner`, 14]
    ])

    // --- the same again: nothing to do, and that is success
    const unchanged = await timed("no-change update", () => deploy(["--stack-name", stack, "--param-file", file]))
    expect(unchanged.stdout).toContain(`No changes: stack ${stack} already matches`)
    expect(unchanged.stdout).not.toContain("UPDATE_COMPLETE")

    // --- a changed parameter (--param wins over the file)
    const updated = await timed("update", () =>
      deploy(["--stack-name", stack, "--param-file", file, "--param", `RunnerImage=${image.replace(":1", ":2")}`])
    )
    expect(updated.stdout).toContain(`Updating stack ${stack}`)
    expect(updated.stdout).toContain("Stack status: UPDATE_COMPLETE")
    const after = (await ecs(moto.endpoint, "ListTaskDefinitions", {})).taskDefinitionArns as Array<string>
    expect(after.some((a) => a.endsWith(`/${stack}-controller:2`))).toBe(true)
    // (moto re-registers updated task definitions without their container details; the stack has the new value.)
    const described = await cfn.send(new DescribeStacksCommand({ StackName: stack }))
    expect(described.Stacks?.[0]?.Parameters).toContainEqual({ ParameterKey: "RunnerImage", ParameterValue: image.replace(":1", ":2") })

    // --- delete
    const deleted = await timed("delete", () => deploy(["--stack-name", stack, "--delete"]))
    expect(deleted.stdout).toContain(`Deleting stack ${stack}`)
    expect(deleted.stdout).toContain("Stack status: DELETE_COMPLETE")
    const stacks = await cfn.send(new DescribeStacksCommand({ StackName: stack })).then(
      (out) => out.Stacks?.map((s) => s.StackStatus),
      (e: Error) => e.message
    )
    expect(stacks).toContain("does not exist")
    expect(await logGroups(moto.endpoint, `/ghr/${stack}/`)).toEqual([])
    expect(await roleNames(moto.endpoint, stack)).toEqual([])
    // (moto's CloudFormation cannot delete ECS resources: its cluster, services and task definitions stay.)

    // --- deleting again: nothing there, still success
    const again = await timed("delete again", () => deploy(["--stack-name", stack, "--delete"]))
    expect(again.stdout).toContain("does not exist")
    console.log(`moto deploy cycle: ${Math.round(performance.now() - cycleStarted)} ms (${timings.join(", ")})`)
  }, 120_000)

  test("--dry-run shows the change set and leaves nothing behind", async () => {
    const stack = "ghr-dry"
    const result = await deploy(["--stack-name", stack, "--dry-run", ...Object.entries(allParameters()).map(([k, v]) => `--param=${k}=${v}`)])
    if (result.exitCode !== 0) throw new Error(combined(result))
    expect(result.stdout).toContain("+ Add    Cluster")
    expect(result.stdout).toContain("Dry run")
    const again = await deploy(["--stack-name", stack, "--delete"])
    expect(again.stdout).toContain("does not exist")
  }, 60_000)

  // --- bad input -------------------------------------------------------------------------------

  test("unknown parameter name: rejected before any AWS call", async () => {
    const closed = await freePort()
    const result = await deploy(
      ["--stack-name", "x", "--param", "Capcity=Fargate"],
      { AWS_ENDPOINT_URL: `http://127.0.0.1:${closed}` }
    )
    expectFailure(result, ExitCode.configError, "Capcity: unknown parameter — did you mean Capacity?")
    expect(combined(result)).not.toContain("ECONNREFUSED")
  })

  test("bad value for an AllowedValues parameter", async () => {
    const result = await deploy(["--stack-name", "x", "--param", "Capacity=Lambda", "--param", "DockerMode=docker"])
    expectFailure(
      result,
      ExitCode.configError,
      'Capacity: must be one of Fargate, FargateSpot, ManagedInstances (got "Lambda")',
      'DockerMode: must be one of none, dind (got "docker")'
    )
  })

  test("missing required parameter", async () => {
    const { RunnerImage: _, ...rest } = allParameters()
    const result = await deploy(["--stack-name", "ghr-missing", ...Object.entries(rest).map(([k, v]) => `--param=${k}=${v}`)])
    expectFailure(result, ExitCode.configError, "RunnerImage: is required", "--param RunnerImage=<value>")
  })

  test("impossible combination: Fargate with Docker", async () => {
    const params = { ...allParameters(), DockerMode: "dind", DindImage: "123456789012.dkr.ecr.us-east-1.amazonaws.com/ghr-dind:1" }
    const result = await deploy(["--stack-name", "ghr-fargate-dind", ...Object.entries(params).map(([k, v]) => `--param=${k}=${v}`)])
    expectFailure(result, ExitCode.configError, "Fargate does not allow privileged containers; use ManagedInstances for Docker")
  })

  test("unreadable or malformed param file", async () => {
    const missing = await deploy(["--stack-name", "x", "--param-file", join(dir, "nope.json")])
    expectFailure(missing, ExitCode.configError, `cannot use parameter file ${join(dir, "nope.json")}: it cannot be read`)
    const broken = join(dir, "broken.json")
    writeFileSync(broken, '{"Capacity": ')
    expectFailure(await deploy(["--stack-name", "x", "--param-file", broken]), ExitCode.configError, "neither JSON nor YAML")
    const wrongShape = join(dir, "shape.json")
    writeFileSync(wrongShape, '["Capacity=Fargate"]')
    expectFailure(await deploy(["--stack-name", "x", "--param-file", wrongShape]), ExitCode.configError, "ParameterKey")
  })

  test("bad stack name", async () => {
    expectFailure(await deploy(["--stack-name", "my_stack!", "--delete"]), ExitCode.configError, "is not a stack name")
  })
})

describe("ghr deploy: a stack in ROLLBACK_COMPLETE", () => {
  // moto has no rollback states; a stand-in CloudFormation endpoint answers DescribeStacks with one.
  let server: Server
  let endpoint: string
  const actions: Array<string> = []
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = ""
      req.on("data", (c) => (body += c))
      req.on("end", () => {
        const action = new URLSearchParams(body).get("Action") ?? "?"
        actions.push(action)
        if (action !== "DescribeStacks") {
          res.writeHead(400, { "content-type": "text/xml" }).end(
            `<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>unexpected ${action}</Message></Error><RequestId>1</RequestId></ErrorResponse>`
          )
          return
        }
        res.writeHead(200, { "content-type": "text/xml" }).end(
          `<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member>` +
            `<StackName>broken</StackName><StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/broken/1</StackId>` +
            `<StackStatus>ROLLBACK_COMPLETE</StackStatus>` +
            `<StackStatusReason>The following resource(s) failed to create: [ControllerService].</StackStatusReason>` +
            `<CreationTime>2026-01-01T00:00:00Z</CreationTime></member></Stacks></DescribeStacksResult>` +
            `<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeStacksResponse>`
        )
      })
    })
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok))
    const address = server.address()
    endpoint = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`
  })
  afterAll(() => new Promise<void>((ok) => server.close(() => ok())))

  test("a clear message, nothing attempted, non-zero exit", async () => {
    const result = await runGhr(
      ["deploy", "--stack-name", "broken", ...Object.entries(required).map(([k, v]) => `--param=${k}=${v}`)],
      { env: { AWS_ENDPOINT_URL: endpoint, AWS_REGION: region, AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing" } }
    )
    expectFailure(
      result,
      ExitCode.unexpected,
      "stack broken is ROLLBACK_COMPLETE",
      "[ControllerService]",
      "ghr deploy --stack-name broken --delete"
    )
    expect(actions).toEqual(["DescribeStacks"])
  })
})
