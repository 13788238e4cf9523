import { Effect, FileSystem, Option } from "effect"
import { Command, Flag } from "effect/cli"
import packageJson from "../../package.json" with { type: "json" }
import {
  Deploy,
  DeployParameterError,
  formatEvent,
  ParamFileError,
  parseParamArgs,
  parseParamFile,
  statusOutcome
} from "../Deploy.ts"
import type { ChangeSetSummary, DeployUi, StackEvent, StackOutput } from "../Deploy.ts"
import { templateDocument, templateText } from "./template.ts"

// =============================================================================================
// Output: plain lines (logs, CI) or a live display on a terminal
// =============================================================================================

export interface UiOptions {
  readonly tty: boolean
  readonly color: boolean
  readonly columns: () => number
  readonly write: (text: string) => void
  readonly now: () => number
}

const paint = (color: boolean) => (code: string, text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text)

const outputLines = (outputs: ReadonlyArray<StackOutput>): ReadonlyArray<string> => {
  if (outputs.length === 0) return []
  const width = Math.max(...outputs.map((o) => o.key.length))
  return ["Outputs:", ...outputs.map((o) => `  ${o.key.padEnd(width)}  ${o.value}`)]
}

const changeSetLines = (title: string, summary: ChangeSetSummary): ReadonlyArray<string> =>
  summary.lines.length === 0 ? [title] : [title, ...summary.lines]

/** One line per event, as they arrive: for logs and CI. */
const plainUi = (options: UiOptions): DeployUi => {
  const line = (text: string) => Effect.sync(() => options.write(text + "\n"))
  return {
    info: line,
    changeSet: (title, summary) => line(changeSetLines(title, summary).join("\n")),
    progress: (events, status) =>
      Effect.sync(() => {
        for (const e of events) options.write(formatEvent(e) + "\n")
        if (statusOutcome(status) !== "in-progress") options.write(`Stack status: ${status}\n`)
      }),
    outputs: (outputs) => Effect.sync(() => outputLines(outputs).forEach((l) => options.write(l + "\n")))
  }
}

interface ResourceState {
  readonly logicalId: string
  readonly resourceType: string
  status: string
  reason: string | undefined
}

const spinner = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

/**
 * A block redrawn after every poll: the stack's status, counts, and the resources still in progress or
 * failed. When the operation ends the block is replaced by one final line per resource.
 */
const liveUi = (options: UiOptions): DeployUi => {
  const c = paint(options.color)
  const resources = new Map<string, ResourceState>()
  let frameLines = 0
  let tick = 0
  let started: number | undefined
  const clip = (text: string) => {
    const width = Math.max(20, options.columns() - 1)
    // Count visible characters only; escape sequences take no columns.
    let visible = 0
    let out = ""
    for (let i = 0; i < text.length; i++) {
      if (text[i] === "\x1b") {
        const end = text.indexOf("m", i)
        out += text.slice(i, end + 1)
        i = end
        continue
      }
      if (visible >= width) break
      out += text[i]
      visible++
    }
    return out + (options.color ? "\x1b[0m" : "")
  }
  const mark = (status: string) =>
    status.endsWith("_FAILED")
      ? c("31", "✗")
      : status.endsWith("_COMPLETE") || status.endsWith("_SKIPPED")
      ? c("32", "✓")
      : c("33", spinner[tick % spinner.length]!)
  const resourceLine = (r: ResourceState, idWidth: number) =>
    `  ${mark(r.status)} ${r.logicalId.padEnd(idWidth)}  ${r.status}${r.reason === undefined ? "" : c("2", `  ${r.reason}`)}`
  const erase = () => {
    if (frameLines > 0) options.write(`\x1b[${frameLines}F\x1b[J`)
    frameLines = 0
  }
  const render = (stackStatus: string) => {
    const all = [...resources.values()].filter((r) => r.resourceType !== "AWS::CloudFormation::Stack")
    const done = all.filter((r) => r.status.endsWith("_COMPLETE") && !r.status.endsWith("_FAILED")).length
    const failed = all.filter((r) => r.status.endsWith("_FAILED")).length
    const active = all.filter((r) => r.status.endsWith("_IN_PROGRESS") || r.status.endsWith("_FAILED"))
    const idWidth = Math.max(0, ...active.map((r) => r.logicalId.length))
    const seconds = Math.round((options.now() - (started ?? options.now())) / 1000)
    const lines = [
      `${c("1", stackStatus)}  ${seconds}s  ${done} done, ${active.length - failed} in progress, ${failed} failed`,
      ...active.map((r) => resourceLine(r, idWidth))
    ].map(clip)
    erase()
    options.write(lines.join("\n") + "\n")
    frameLines = lines.length
  }
  return {
    info: (line) => Effect.sync(() => options.write(line + "\n")),
    changeSet: (title, summary) => Effect.sync(() => options.write(changeSetLines(title, summary).join("\n") + "\n")),
    progress: (events: ReadonlyArray<StackEvent>, stackStatus: string) =>
      Effect.sync(() => {
        started ??= options.now()
        tick++
        for (const e of events) {
          const state = resources.get(e.logicalId)
          if (state === undefined) {
            resources.set(e.logicalId, { logicalId: e.logicalId, resourceType: e.resourceType, status: e.status, reason: e.reason })
          } else {
            state.status = e.status
            // Keep the reason of a failure visible even when a later event has none.
            if (e.reason !== undefined || !state.status.endsWith("_FAILED")) state.reason = e.reason
          }
        }
        if (statusOutcome(stackStatus) === "in-progress") return render(stackStatus)
        erase()
        const all = [...resources.values()].filter((r) => r.resourceType !== "AWS::CloudFormation::Stack")
        const idWidth = Math.max(0, ...all.map((r) => r.logicalId.length))
        for (const r of all) options.write(clip(resourceLine(r, idWidth)) + "\n")
        const outcome = statusOutcome(stackStatus) === "success" ? c("32", stackStatus) : c("31", stackStatus)
        const seconds = Math.round((options.now() - started) / 1000)
        options.write(`Stack status: ${outcome} after ${seconds}s\n`)
      }),
    outputs: (outputs) => Effect.sync(() => outputLines(outputs).forEach((l) => options.write(l + "\n")))
  }
}

export const makeUi = (options: UiOptions): DeployUi => (options.tty ? liveUi(options) : plainUi(options))

const terminalUi = (): DeployUi =>
  makeUi({
    tty: process.stdout.isTTY === true,
    color: process.stdout.isTTY === true && process.env["NO_COLOR"] === undefined,
    columns: () => process.stdout.columns ?? 100,
    write: (text) => void process.stdout.write(text),
    now: () => Date.now()
  })

// =============================================================================================
// The command
// =============================================================================================

const readParamFile = Effect.fn("command.deploy.readParamFile")(function*(path: string) {
  const fs = yield* FileSystem.FileSystem
  const text = yield* fs.readFileString(path).pipe(
    Effect.mapError((e) => new ParamFileError({ path, detail: `it cannot be read (${e.message})` }))
  )
  const parsed = parseParamFile(text)
  if ("error" in parsed) return yield* new ParamFileError({ path, detail: parsed.error })
  return parsed.values
})

export const deployCommand = Command.make(
  "deploy",
  {
    stackName: Flag.String("stack-name").pipe(
      Flag.withDescription("Name of the CloudFormation stack (letters, digits, hyphens; also names the ECS cluster)")
    ),
    param: Flag.String("param").pipe(
      Flag.withDescription("Stack parameter as KEY=VALUE; repeat for more. On update, parameters you omit keep their value."),
      Flag.atLeast(0)
    ),
    paramFile: Flag.String("param-file").pipe(
      Flag.withDescription("JSON or YAML file of parameters ({\"Key\": \"value\"} or the AWS CLI list); --param wins"),
      Flag.optional
    ),
    delete: Flag.Boolean("delete").pipe(Flag.withDescription("Delete the stack instead"), Flag.withDefault(false)),
    dryRun: Flag.Boolean("dry-run").pipe(
      Flag.withDescription("Show the change set, then delete it without executing"),
      Flag.withDefault(false)
    )
  },
  Effect.fn("command.deploy")(function*({ stackName, param, paramFile, delete: remove, dryRun }) {
    const deploy = yield* Deploy
    const ui = terminalUi()
    if (remove) {
      if (param.length > 0 || Option.isSome(paramFile) || dryRun) {
        return yield* new DeployParameterError({
          problems: [{ parameter: "--delete", problem: "takes no --param, --param-file or --dry-run" }]
        })
      }
      yield* deploy.remove(stackName, ui)
      return
    }
    const fromFile = Option.isSome(paramFile) ? yield* readParamFile(paramFile.value) : {}
    const fromArgs = parseParamArgs(param)
    if (fromArgs.problems.length > 0) return yield* new DeployParameterError({ problems: fromArgs.problems })
    yield* deploy.deploy(
      {
        stackName,
        templateText,
        templateDocument: templateDocument(),
        parameters: { ...fromFile, ...fromArgs.values },
        dryRun,
        description: `ghr ${packageJson.version}`
      },
      ui
    )
  })
).pipe(
  Command.withDescription("Create or update the ghr CloudFormation stack through a change set, or delete it"),
  Command.withExamples([
    {
      command:
        "ghr deploy --stack-name ghr --param GitHubOwner=my-org --param RunnerImage=<uri> --param VpcId=vpc-… --param SubnetIds=subnet-a,subnet-b",
      description: "Create the stack (or update it: omitted parameters keep their value)"
    },
    { command: "ghr deploy --stack-name ghr --param-file ghr-params.json", description: "Parameters from a file" },
    { command: "ghr deploy --stack-name ghr --delete", description: "Delete the stack" }
  ]),
  Command.provide(Deploy.layer)
)
