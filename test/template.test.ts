/**
 * The embedded CloudFormation template: `ghr template` output, cfn-lint, and properties checked on
 * the parsed document (short-form tags kept as their long form) for every Capacity × DockerMode.
 */
import { describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { ruleProblems, templateBodyLimit, templateSpec } from "../src/Deploy.ts"
import { parseTemplate, templateDocument, templateJson, templateText } from "../src/commands/template.ts"
import { repoRoot, runGhr } from "./support/ghr.ts"

const templatePath = join(repoRoot, "cfn/ghr.yaml")
const doc = templateDocument() as Record<string, any>
const resources = doc["Resources"] as Record<string, { Type: string; Condition?: string; Properties?: any; DependsOn?: unknown }>
const parameters = doc["Parameters"] as Record<string, Record<string, unknown>>
const spec = templateSpec(doc)

// ---------------------------------------------------------------------------------------------
// A small CloudFormation evaluator: Conditions, Fn::If and AWS::NoValue for given parameter values
// ---------------------------------------------------------------------------------------------

type Values = Record<string, string>

const defaults: Values = Object.fromEntries(
  Object.entries(parameters).map(([name, p]) => [name, p["Default"] === undefined ? `<${name}>` : String(p["Default"])])
)

const evalCondition = (node: unknown, values: Values): boolean | string => {
  if (typeof node === "string") return node
  if (typeof node === "number") return String(node)
  const [fn, args] = Object.entries(node as Record<string, any>)[0]!
  switch (fn) {
    case "Ref":
      if (!(args in values)) throw new Error(`condition refers to ${args}, not a parameter`)
      return values[args]!
    case "Condition":
      return conditionValue(args, values)
    case "Fn::Equals":
      return String(evalCondition(args[0], values)) === String(evalCondition(args[1], values))
    case "Fn::Not":
      return !evalCondition(args[0], values)
    case "Fn::And":
      return args.every((a: unknown) => evalCondition(a, values) === true)
    case "Fn::Or":
      return args.some((a: unknown) => evalCondition(a, values) === true)
    case "Fn::Join":
      return (evalCondition(args[1], values) as unknown as Array<string>).join(args[0])
    default:
      throw new Error(`unsupported in a condition: ${fn}`)
  }
}

const conditionValue = (name: string, values: Values): boolean => {
  const definition = (doc["Conditions"] as Record<string, unknown>)[name]
  if (definition === undefined) throw new Error(`unknown condition ${name}`)
  if (name === "HasEcrRepositories") return values["EcrRepositoryArns"] !== ""
  return evalCondition(definition, values) === true
}

const NoValue = Symbol("NoValue")

/** Resolves Fn::If and drops AWS::NoValue, leaving every other intrinsic as it is. */
const resolve = (node: unknown, values: Values): unknown => {
  if (Array.isArray(node)) return node.map((n) => resolve(n, values)).filter((n) => n !== NoValue)
  if (node === null || typeof node !== "object") return node
  const entries = Object.entries(node)
  if (entries.length === 1 && entries[0]![0] === "Fn::If") {
    const [condition, yes, no] = entries[0]![1] as [string, unknown, unknown]
    return resolve(conditionValue(condition, values) ? yes : no, values)
  }
  if (entries.length === 1 && entries[0]![0] === "Ref" && entries[0]![1] === "AWS::NoValue") return NoValue
  const out: Record<string, unknown> = {}
  for (const [k, v] of entries) {
    const r = resolve(v, values)
    if (r !== NoValue) out[k] = r
  }
  return out
}

/** The resources CloudFormation would create for these values. */
const resourcesFor = (values: Values) =>
  Object.fromEntries(
    Object.entries(resources)
      .filter(([, r]) => r.Condition === undefined || conditionValue(r.Condition, values))
      .map(([id, r]) => [id, resolve(r, values) as { Type: string; Properties: any }])
  )

const combinations: Array<Values> = (["Fargate", "FargateSpot", "ManagedInstances"] as const).flatMap((capacity) =>
  (["none", "dind"] as const).flatMap((docker) =>
    ["", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ghr-app-AbCdEf"].flatMap((secret) =>
      ["", "arn:aws:ecr:eu-west-1:123456789012:repository/ghr-runner"].map((ecr) => ({
        ...defaults,
        Capacity: capacity,
        DockerMode: docker,
        AppSecretArn: secret,
        EcrRepositoryArns: ecr,
        DindImage: docker === "dind" ? "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ghr-dind:1" : "",
        AssignPublicIp: capacity === "ManagedInstances" ? "DISABLED" : "ENABLED"
      }))
    )
  )
)

const label = (v: Values) => `${v["Capacity"]}/${v["DockerMode"]}/secret:${v["AppSecretArn"] === "" ? "created" : "given"}/ecr:${v["EcrRepositoryArns"] !== ""}`

// ---------------------------------------------------------------------------------------------

describe("ghr template", () => {
  test("prints the embedded file byte for byte", async () => {
    const result = await runGhr(["template"], { env: {} })
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toBe(readFileSync(templatePath, "utf8"))
    expect(templateText).toBe(readFileSync(templatePath, "utf8"))
  })

  test("--format json prints the same document, with the short-form tags in long form", async () => {
    const result = await runGhr(["template", "--format", "json"], { env: {} })
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toBe(templateJson())
    const json = JSON.parse(result.stdout)
    expect(json).toEqual(parseTemplate(readFileSync(templatePath, "utf8")))
    expect(JSON.stringify(json)).not.toContain('"!')
    expect(json.Resources.Cluster.Properties.ClusterName).toEqual({ Ref: "AWS::StackName" })
    expect(json.Resources.InstanceProfile.Properties.Roles).toEqual([{ Ref: "InstanceRole" }])
    expect(json.Resources.ManagedInstancesCapacityProvider.Properties.ManagedInstancesProvider.InfrastructureRoleArn)
      .toEqual({ "Fn::GetAtt": ["InfrastructureRole", "Arn"] })
    expect(json.Conditions.UseDind).toEqual({
      "Fn::And": [{ "Fn::Equals": [{ Ref: "DockerMode" }, "dind"] }, { Condition: "IsManagedInstances" }]
    })
  })

  test("the JSON equals what cfn-lint's own YAML loader makes of the file", () => {
    const python = [
      "import json, sys",
      "from cfnlint.decode import decode_str",
      "tpl, matches = decode_str(open(sys.argv[1]).read())",
      "assert not matches, matches",
      "print(json.dumps(tpl))"
    ].join("\n")
    const out = Bun.spawnSync(["python3", "-c", python, templatePath], { stdout: "pipe", stderr: "pipe" })
    if (out.exitCode !== 0) throw new Error(`cfn-lint's decoder failed (is cfn-lint installed? pip install cfn-lint):\n${out.stderr}`)
    expect(JSON.parse(out.stdout.toString())).toEqual(JSON.parse(templateJson()))
  })

  test("rejects an unknown format", async () => {
    const result = await runGhr(["template", "--format", "xml"], { env: {} })
    expect(result.exitCode).not.toBe(0)
    expect(result.stdout).not.toContain("AWSTemplateFormatVersion")
  })
})

describe("parseTemplate: short-form intrinsic functions", () => {
  test("every form becomes CloudFormation's long form", () => {
    const parsed = parseTemplate([
      "A: !Ref Foo",
      "B: !GetAtt Res.Attr.Nested",
      "C: !Sub 'x-${AWS::Region}'",
      "D: !Sub ['${A}-b', { A: !Ref Bar }]",
      "E: !If [Cond, !Join [',', !Split ['|', 'a|b']], !Ref AWS::NoValue]",
      "F: !Equals [!Ref P, !Condition Q]",
      "G: !FindInMap [M, !Ref K, V]",
      "H: !Select [0, !GetAZs '']",
      "I: { 'Fn::GetAtt': [X, Y] }",
      "J: !Contains [[a, b], !Ref P]",
      "K: !Base64 { 'Fn::Sub': abc }",
      "L: '2012-10-17'",
      "M: 20"
    ].join("\n"))
    expect(parsed).toEqual({
      A: { Ref: "Foo" },
      B: { "Fn::GetAtt": ["Res", "Attr.Nested"] },
      C: { "Fn::Sub": "x-${AWS::Region}" },
      D: { "Fn::Sub": ["${A}-b", { A: { Ref: "Bar" } }] },
      E: { "Fn::If": ["Cond", { "Fn::Join": [",", { "Fn::Split": ["|", "a|b"] }] }, { Ref: "AWS::NoValue" }] },
      F: { "Fn::Equals": [{ Ref: "P" }, { Condition: "Q" }] },
      G: { "Fn::FindInMap": ["M", { Ref: "K" }, "V"] },
      H: { "Fn::Select": [0, { "Fn::GetAZs": "" }] },
      I: { "Fn::GetAtt": ["X", "Y"] },
      J: { "Fn::Contains": [["a", "b"], { Ref: "P" }] },
      K: { "Fn::Base64": { "Fn::Sub": "abc" } },
      L: "2012-10-17",
      M: 20
    })
  })

  test("duplicate keys and broken YAML are errors, not silently merged", () => {
    expect(() => parseTemplate("A: 1\nA: 2")).toThrow(/not valid YAML/)
    expect(() => parseTemplate("A: [1, 2")).toThrow(/not valid YAML/)
  })
})

describe("cfn-lint", () => {
  const lint = (path: string) => {
    if (Bun.which("cfn-lint") === null) {
      throw new Error("cfn-lint is not on PATH. Install it with: pip install cfn-lint")
    }
    const started = performance.now()
    const out = Bun.spawnSync(["cfn-lint", path], { stdout: "pipe", stderr: "pipe" })
    const seconds = ((performance.now() - started) / 1000).toFixed(1)
    console.log(`cfn-lint ${path.split("/").pop()}: ${seconds} s`)
    return { exitCode: out.exitCode, output: out.stdout.toString() + out.stderr.toString() }
  }

  test("the YAML template: no errors, no warnings", () => {
    const result = lint(templatePath)
    expect(result.output).toBe("")
    expect(result.exitCode).toBe(0)
  }, 60_000)

  test("the JSON form: no errors, no warnings", async () => {
    const dir = await import("node:fs").then((fs) => fs.mkdtempSync(join(import.meta.dir, "../.tmp-cfn-")))
    try {
      const path = join(dir, "ghr.json")
      await Bun.write(path, templateJson())
      const result = lint(path)
      expect(result.output).toBe("")
      expect(result.exitCode).toBe(0)
    } finally {
      (await import("node:fs")).rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

describe("the template fits CloudFormation's limits", () => {
  test("inline template body (51,200 bytes) — ghr deploy sends it without S3", () => {
    expect(Buffer.byteLength(templateText)).toBeLessThanOrEqual(templateBodyLimit)
  })
})

describe("no privileged container is reachable with Fargate capacity", () => {
  for (const values of combinations) {
    test(label(values), () => {
      const all = resourcesFor(values)
      const td = all["RunnerTaskDefinition"]!.Properties
      const privileged = (td.ContainerDefinitions as Array<any>).filter((c) => c.Privileged === true)
      const onFargate = values["Capacity"] !== "ManagedInstances"
      if (onFargate) {
        expect(privileged).toEqual([])
        expect(td.RequiresCompatibilities).toEqual(["FARGATE"])
      } else {
        expect(td.RequiresCompatibilities).toEqual(["MANAGED_INSTANCES"])
        expect(privileged.map((c) => c.Name)).toEqual(values["DockerMode"] === "dind" ? ["dind"] : [])
      }
      // The controller always runs on Fargate and is never privileged.
      const controller = all["ControllerTaskDefinition"]!.Properties
      expect(controller.RequiresCompatibilities).toEqual(["FARGATE"])
      expect((controller.ContainerDefinitions as Array<any>).some((c) => c.Privileged === true)).toBe(false)
      // Nothing anywhere else in the template sets Privileged.
      const privilegedAnywhere = JSON.stringify(all).match(/"Privileged":true/g) ?? []
      expect(privilegedAnywhere.length).toBe(privileged.length)
    })
  }
})

describe("the runner task definition", () => {
  const dind = combinations.find((v) => v["Capacity"] === "ManagedInstances" && v["DockerMode"] === "dind")!
  const plain = combinations.find((v) => v["Capacity"] === "Fargate")!
  const containers = (values: Values) =>
    resourcesFor(values)["RunnerTaskDefinition"]!.Properties.ContainerDefinitions as Array<any>

  test("dind: privileged sidecar with a health check; the runner waits for it HEALTHY and shares its socket", () => {
    const [runner, sidecar, prepare] = containers(dind)
    expect(runner.Name).toBe("runner")
    expect(sidecar.Name).toBe("dind")
    expect(runner.DependsOn).toContainEqual({ ContainerName: "dind", Condition: "HEALTHY" })
    expect(runner.DependsOn).toContainEqual({ ContainerName: "prepare", Condition: "SUCCESS" })
    expect(sidecar.HealthCheck.Command.join(" ")).toContain("/var/run/dind/docker.sock")
    expect(runner.Environment).toContainEqual({ Name: "DOCKER_HOST", Value: "unix:///var/run/dind/docker.sock" })
    expect(runner.Environment).toContainEqual({ Name: "DOCKER_MODE", Value: "dind" })
    const mount = (c: any, volume: string) => c.MountPoints.find((m: any) => m.SourceVolume === volume)?.ContainerPath
    expect(mount(runner, "dind-socket")).toBe("/var/run/dind")
    expect(mount(sidecar, "dind-socket")).toBe("/var/run/dind")
    // Paths the runner bind-mounts into job containers must exist for dockerd too.
    expect(mount(sidecar, "runner-work")).toBe(mount(runner, "runner-work"))
    expect(mount(sidecar, "runner-externals")).toBe(mount(runner, "runner-externals"))
    expect(prepare.Essential).toBe(false)
  })

  test("none: the runner alone, without Docker settings", () => {
    const list = containers(plain)
    expect(list.map((c) => c.Name)).toEqual(["runner"])
    expect(list[0].Environment).toContainEqual({ Name: "DOCKER_MODE", Value: "none" })
    expect(list[0].Environment.some((e: any) => e.Name === "DOCKER_HOST")).toBe(false)
    expect(list[0].DependsOn).toBeUndefined()
  })

  test("ghr run is the entrypoint (from the image), health checked with ghr health, stopTimeout 120", () => {
    for (const values of [dind, plain]) {
      const runner = containers(values)[0]
      expect(runner.EntryPoint).toBeUndefined()
      expect(runner.Command).toBeUndefined()
      expect(runner.HealthCheck.Command).toEqual(["CMD", "/usr/local/bin/ghr", "health"])
      expect(runner.StopTimeout).toBe(120)
    }
    expect(containers(dind)[1].StopTimeout).toBe(120)
  })

  test("every container logs with awslogs in non-blocking mode", () => {
    const all = [...containers(dind), ...containers(plain), ...resourcesFor(plain)["ControllerTaskDefinition"]!.Properties.ContainerDefinitions]
    for (const c of all) {
      expect(c.LogConfiguration.LogDriver).toBe("awslogs")
      expect(c.LogConfiguration.Options.mode).toBe("non-blocking")
    }
  })

  test("runner containers get no App credentials and no secrets", () => {
    for (const values of combinations) {
      for (const c of containers(values)) {
        expect(c.Secrets).toBeUndefined()
        const names = (c.Environment ?? []).map((e: any) => e.Name)
        for (const forbidden of ["GHR_APP_SECRET", "GITHUB_APP_PRIVATE_KEY", "GITHUB_APP_ID", "GHR_CONFIG_SECRET"]) {
          expect(names).not.toContain(forbidden)
        }
      }
    }
  })

  test("the runner environment follows the Settings contract", () => {
    const names = containers(dind)[0].Environment.map((e: any) => e.Name)
    expect(names).toEqual([
      "GITHUB_URL", "GITHUB_OWNER", "GITHUB_REPOSITORY", "RUNNER_LABELS", "RUNNER_GROUP", "RUNNER_NAME_PREFIX",
      "DOCKER_MODE", "DOCKER_HOST", "LOG_FORMAT"
    ])
  })
})

describe("the controller", () => {
  const values = combinations[0]!
  test("one task, never two: desired 1, deployment maximum 100 %, minimum 0 %, on on-demand Fargate", () => {
    const service = resourcesFor({ ...values, AppSecretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:a-AbCdEf" })["ControllerService"]!
      .Properties
    expect(service.DesiredCount).toBe(1)
    expect(service.DeploymentConfiguration.MaximumPercent).toBe(100)
    expect(service.DeploymentConfiguration.MinimumHealthyPercent).toBe(0)
    expect(service.CapacityProviderStrategy).toEqual([{ CapacityProvider: "FARGATE", Weight: 1 }])
  })

  test("not started while the stack's own App secret is still empty", () => {
    const service = resourcesFor({ ...values, AppSecretArn: "" })["ControllerService"]!.Properties
    expect(service.DesiredCount).toBe(0)
    expect(doc["Outputs"]["NextStep"]["Condition"]).toBe("CreateAppSecret")
  })

  test("runs `ghr controller` with the settings it launches runners with", () => {
    const container = resourcesFor(values)["ControllerTaskDefinition"]!.Properties.ContainerDefinitions[0]
    expect([...container.EntryPoint, ...container.Command]).toEqual(["/usr/local/bin/ghr", "controller"])
    const names = container.Environment.map((e: any) => e.Name)
    for (
      const name of [
        "GHR_APP_SECRET", "GITHUB_URL", "GITHUB_OWNER", "GITHUB_REPOSITORY", "RUNNER_LABELS", "RUNNER_GROUP",
        "RUNNER_NAME_PREFIX", "LOG_FORMAT", "GHR_CLUSTER", "GHR_RUNNER_TASK_DEFINITION", "GHR_SUBNETS",
        "GHR_SECURITY_GROUPS", "GHR_ASSIGN_PUBLIC_IP", "GHR_CAPACITY", "GHR_CAPACITY_PROVIDER", "GHR_MIN_RUNNERS", "GHR_MAX_RUNNERS"
      ]
    ) expect(names).toContain(name)
  })

  test("the capacity provider it names matches Capacity", () => {
    const provider = (v: Values) =>
      resourcesFor(v)["ControllerTaskDefinition"]!.Properties.ContainerDefinitions[0].Environment
        .find((e: any) => e.Name === "GHR_CAPACITY_PROVIDER").Value
    expect(provider({ ...values, Capacity: "Fargate" })).toBe("FARGATE")
    expect(provider({ ...values, Capacity: "FargateSpot" })).toBe("FARGATE_SPOT")
    expect(provider({ ...values, Capacity: "ManagedInstances" })).toEqual({ Ref: "ManagedInstancesCapacityProvider" })
  })
})

// ---------------------------------------------------------------------------------------------
// IAM
// ---------------------------------------------------------------------------------------------

interface Statement {
  readonly owner: string
  readonly roles: ReadonlyArray<string>
  readonly statement: { Effect: string; Action: string | Array<string>; Resource: unknown; Condition?: Record<string, unknown> }
}

const statementsOf = (all: Record<string, { Type: string; Properties: any }>): Array<Statement> => {
  const out: Array<Statement> = []
  for (const [id, r] of Object.entries(all)) {
    if (r.Type === "AWS::IAM::Role") {
      for (const policy of r.Properties.Policies ?? []) {
        for (const statement of policy.PolicyDocument.Statement) out.push({ owner: id, roles: [id], statement })
      }
    }
    if (r.Type === "AWS::IAM::Policy" || r.Type === "AWS::IAM::ManagedPolicy") {
      const roles = (r.Properties.Roles ?? []).map((x: any) => x.Ref)
      for (const statement of r.Properties.PolicyDocument.Statement) out.push({ owner: id, roles, statement })
    }
  }
  return out
}

const actionsOf = (s: Statement) => [s.statement.Action].flat()
const resourcesOf = (s: Statement) => [s.statement.Resource].flat()

describe("IAM: least privilege", () => {
  test("the runner task role has no policy at all — in particular nothing on Secrets Manager", () => {
    for (const values of combinations) {
      const all = resourcesFor(values)
      const role = all["RunnerTaskRole"]!.Properties
      expect(role.Policies).toBeUndefined()
      expect(role.ManagedPolicyArns).toBeUndefined()
      expect(statementsOf(all).filter((s) => s.roles.includes("RunnerTaskRole"))).toEqual([])
    }
  })

  test("only the controller's task role can read the App secret; no execution role touches Secrets Manager", () => {
    for (const values of combinations) {
      const secretStatements = statementsOf(resourcesFor(values)).filter((s) =>
        actionsOf(s).some((a) => a.startsWith("secretsmanager:") || a === "kms:Decrypt")
      )
      expect(secretStatements.length).toBeGreaterThan(0)
      for (const s of secretStatements) expect(s.roles).toEqual(["ControllerTaskRole"])
      const read = secretStatements.find((s) => actionsOf(s).includes("secretsmanager:GetSecretValue"))!
      expect(read.statement.Resource).toEqual({ Ref: values["AppSecretArn"] === "" ? "AppSecret" : "AppSecretArn" })
    }
  })

  test("no wildcard actions", () => {
    for (const s of statementsOf(resourcesFor(combinations.at(-1)!))) {
      for (const a of actionsOf(s)) expect(a).not.toContain("*")
    }
  })

  // The only "*" resources AWS requires, each with the reason it is allowed.
  const requiredStars: ReadonlyArray<{ actions: ReadonlyArray<string>; needsCondition: string | undefined }> = [
    { actions: ["ecr:GetAuthorizationToken"], needsCondition: undefined }, // no resource-level permissions
    { actions: ["ecs:ListTasks"], needsCondition: "ecs:cluster" } // limited by cluster condition instead
  ]
  // Wildcards inside ARNs that are still exact: revisions of our task family, tasks of our cluster, log streams.
  const scopedPatterns = [
    /^arn:\$\{AWS::Partition\}:ecs:\$\{AWS::Region\}:\$\{AWS::AccountId\}:task-definition\/\$\{AWS::StackName\}-runner:\*$/,
    /^arn:\$\{AWS::Partition\}:ecs:\$\{AWS::Region\}:\$\{AWS::AccountId\}:task\/\$\{Cluster\}\/\*$/
  ]

  test("every statement's resources are scoped (allow-list of the \"*\"s AWS requires)", () => {
    for (const values of combinations) {
      for (const s of statementsOf(resourcesFor(values))) {
        for (const resource of resourcesOf(s)) {
          const where = `${s.owner}: ${actionsOf(s).join(",")} on ${JSON.stringify(resource)}`
          if (resource === "*") {
            const allowed = requiredStars.find((r) => JSON.stringify(r.actions) === JSON.stringify(actionsOf(s)))
            if (allowed === undefined) throw new Error(`unscoped "*" resource: ${where}`)
            if (allowed.needsCondition !== undefined) {
              expect(JSON.stringify(s.statement.Condition ?? {})).toContain(allowed.needsCondition)
            }
            continue
          }
          if (typeof resource === "string") {
            expect(resource, where).not.toContain("*")
            continue
          }
          const sub = (resource as Record<string, unknown>)["Fn::Sub"]
          if (typeof sub === "string" && sub.includes("*")) {
            if (!scopedPatterns.some((p) => p.test(sub))) throw new Error(`wildcard ARN not on the allow-list: ${where}`)
            continue
          }
          // Ref / GetAtt of a resource or parameter of this stack: an exact ARN.
          const key = Object.keys(resource as object)[0]
          expect(["Ref", "Fn::GetAtt", "Fn::Sub"], where).toContain(key)
        }
      }
    }
  })

  test("every \"*\" resource in the file carries a comment saying AWS requires it", () => {
    const lines = templateText.split("\n")
    const stars = lines.flatMap((line, i) => (/Resource: "\*"/.test(line) ? [i] : []))
    expect(stars.length).toBe(2)
    for (const i of stars) {
      const context = lines.slice(Math.max(0, i - 6), i).join("\n")
      expect(context).toMatch(/#.*AWS requires "\*"/)
    }
  })

  test("ecs:RunTask only on the runner family and only in this cluster; PassRole only of the runner roles to ECS tasks", () => {
    const statements = statementsOf(resourcesFor(combinations[0]!))
    const run = statements.find((s) => actionsOf(s).includes("ecs:RunTask"))!
    expect(run.roles).toEqual(["ControllerTaskRole"])
    expect(run.statement.Condition).toEqual({ ArnEquals: { "ecs:cluster": { "Fn::GetAtt": ["Cluster", "Arn"] } } })
    const pass = statements.filter((s) => actionsOf(s).includes("iam:PassRole"))
    const controllerPass = pass.find((s) => s.owner === "ControllerTaskRole")!
    expect(controllerPass.statement.Resource).toEqual([
      { "Fn::GetAtt": ["RunnerTaskRole", "Arn"] },
      { "Fn::GetAtt": ["RunnerExecutionRole", "Arn"] }
    ])
    expect(controllerPass.statement.Condition).toEqual({ StringEquals: { "iam:PassedToService": "ecs-tasks.amazonaws.com" } })
    const stop = statements.find((s) => actionsOf(s).includes("ecs:StopTask"))!
    expect(JSON.stringify(stop.statement.Condition)).toContain("ecs:cluster")
  })
})

// ---------------------------------------------------------------------------------------------

describe("network and logs", () => {
  test("no ingress rule anywhere", () => {
    for (const values of combinations) {
      const all = resourcesFor(values)
      for (const [id, r] of Object.entries(all)) {
        expect(r.Type, id).not.toBe("AWS::EC2::SecurityGroupIngress")
        if (r.Type === "AWS::EC2::SecurityGroup") expect(r.Properties.SecurityGroupIngress, id).toBeUndefined()
      }
    }
  })

  test("every log group has a retention", () => {
    const groups = Object.entries(resources).filter(([, r]) => r.Type === "AWS::Logs::LogGroup")
    expect(groups.length).toBe(3)
    for (const [, r] of groups) expect(r.Properties.RetentionInDays).toEqual({ Ref: "LogRetentionDays" })
  })

  test("dashboard and the three alarms, all alarms notifying the SNS topic", () => {
    const alarms = Object.entries(resources).filter(([, r]) => r.Type === "AWS::CloudWatch::Alarm").map(([id]) => id)
    expect(alarms.sort()).toEqual(["ControllerNotRunningAlarm", "RegistrationErrorsAlarm", "TaskStartFailuresAlarm"])
    for (const id of alarms) expect(resources[id]!.Properties.AlarmActions).toEqual([{ Ref: "AlarmTopic" }])
    const body = JSON.stringify(resources["Dashboard"]!.Properties.DashboardBody)
    for (const metric of ["RunnersRunning", "JobsQueued", "JobsStarted", "JobsCompleted", "TaskStartFailures", "RunTaskErrors"]) {
      expect(body).toContain(metric)
    }
  })
})

describe("parameters", () => {
  test("each has a description and constraints (allowed values, pattern, range or an AWS type)", () => {
    for (const [name, p] of Object.entries(parameters)) {
      expect(String(p["Description"] ?? ""), name).not.toBe("")
      const constrained = p["AllowedValues"] !== undefined || p["AllowedPattern"] !== undefined ||
        (p["MinValue"] !== undefined && p["MaxValue"] !== undefined) || String(p["Type"]).startsWith("AWS::") ||
        String(p["Type"]).startsWith("List<AWS::")
      expect(constrained, `${name} has no constraint`).toBe(true)
      expect(String(p["ConstraintDescription"] ?? ""), `${name} has no ConstraintDescription`).not.toBe("")
    }
  })

  test("defaults satisfy their own constraints", () => {
    for (const p of spec.parameters.filter((p) => p.default !== undefined)) {
      const values = p.allowedValues
      if (values !== undefined) expect(values).toContain(p.default!)
      if (p.allowedPattern !== undefined) {
        for (const item of p.type === "CommaDelimitedList" ? p.default!.split(",") : [p.default!]) {
          expect(new RegExp(`^(?:${p.allowedPattern})$`).test(item), p.name).toBe(true)
        }
      }
    }
  })

  test("the console groups and labels every parameter exactly once", () => {
    const ui = doc["Metadata"]["AWS::CloudFormation::Interface"]
    const grouped = ui.ParameterGroups.flatMap((g: any) => g.Parameters)
    expect([...grouped].sort()).toEqual(Object.keys(parameters).sort())
    expect(Object.keys(ui.ParameterLabels).sort()).toEqual(Object.keys(parameters).sort())
  })

  test("the issue's parameters are all there", () => {
    for (
      const name of [
        "GitHubUrl", "GitHubOwner", "GitHubRepository", "RunnerGroup", "RunnerLabels", "RunnerNamePrefix", "AppSecretArn",
        "RunnerImage", "DindImage", "Capacity", "DockerMode", "RunnerCpu", "RunnerMemory", "EphemeralStorageGiB",
        "MinRunners", "MaxRunners", "VpcId", "SubnetIds", "AssignPublicIp", "LogRetentionDays", "AlarmEmail"
      ]
    ) expect(Object.keys(parameters)).toContain(name)
    expect(parameters["Capacity"]!["AllowedValues"]).toEqual(["Fargate", "FargateSpot", "ManagedInstances"])
    expect(parameters["DockerMode"]!["AllowedValues"]).toEqual(["none", "dind"])
  })
})

describe("Rules reject impossible combinations", () => {
  const valid: Values = {
    ...defaults,
    GitHubOwner: "acme",
    RunnerImage: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ghr-runner:1"
  }
  const problems = (overrides: Values) => ruleProblems(spec.rules, { ...valid, ...overrides }, spec.parameters)

  test("the defaults pass", () => {
    expect(problems({})).toEqual([])
  })

  test.each([["Fargate"], ["FargateSpot"]])("%s with DockerMode=dind", (capacity) => {
    const found = problems({ Capacity: capacity, DockerMode: "dind", DindImage: "r.example.com/dind:1" })
    expect(found).toHaveLength(1)
    expect(found[0]!.problem).toContain("Fargate does not allow privileged containers; use ManagedInstances for Docker")
    expect(found[0]!.parameter).toContain(`Capacity=${capacity}`)
  })

  test("ManagedInstances with dind is fine once the sidecar image is given", () => {
    expect(problems({ Capacity: "ManagedInstances", DockerMode: "dind", DindImage: "" }).map((p) => p.problem).join())
      .toContain("DindImage")
    expect(problems({ Capacity: "ManagedInstances", DockerMode: "dind", DindImage: "r.example.com/dind:1" })).toEqual([])
  })

  test("runner group with repository scope", () => {
    expect(problems({ GitHubRepository: "app", RunnerGroup: "builders" })[0]!.problem).toContain("organization runners")
    expect(problems({ GitHubRepository: "app" })).toEqual([])
    expect(problems({ RunnerGroup: "builders" })).toEqual([])
  })

  test("Fargate CPU/memory pairs", () => {
    expect(problems({ RunnerCpu: "256", RunnerMemory: "4096" })[0]!.problem).toContain("RunnerCpu 256")
    expect(problems({ RunnerCpu: "4096", RunnerMemory: "8192" })).toEqual([])
    expect(problems({ RunnerCpu: "16384", RunnerMemory: "36864" })).toHaveLength(1)
    // Managed Instances take any size.
    expect(problems({ Capacity: "ManagedInstances", RunnerCpu: "256", RunnerMemory: "4096" })).toEqual([])
  })

  test("Fargate-only ephemeral storage and public IPs on Managed Instances", () => {
    expect(problems({ Capacity: "ManagedInstances", EphemeralStorageGiB: "50" })[0]!.problem).toContain("Fargate only")
    expect(problems({ EphemeralStorageGiB: "50" })).toEqual([])
    expect(problems({ Capacity: "ManagedInstances", AssignPublicIp: "ENABLED" })[0]!.problem).toContain("public IP")
  })

  test("every rule has a readable message", () => {
    for (const rule of spec.rules) {
      for (const a of rule.assertions) expect((a.description ?? "").length, rule.name).toBeGreaterThan(30)
    }
  })
})

describe("outputs", () => {
  test("cluster, service, roles, log groups and the dashboard URL", () => {
    const outputs = Object.keys(doc["Outputs"])
    for (
      const name of [
        "ClusterName", "ControllerServiceName", "RunnerTaskRoleArn", "RunnerExecutionRoleArn", "ControllerTaskRoleArn",
        "ControllerExecutionRoleArn", "RunnerLogGroupName", "ControllerLogGroupName", "DashboardUrl"
      ]
    ) expect(outputs).toContain(name)
  })
})
