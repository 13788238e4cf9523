import { Effect } from "effect"
import { Command } from "effect/cli"
import template from "../../cfn/ghr.yaml" with { type: "text" }

/** The template text as shipped; embedded at build time so the binary needs no files beside it. */
export const templateText: string = template

export const templateCommand = Command.make(
  "template",
  {},
  Effect.fn("command.template")(function*() {
    yield* Effect.sync(() => process.stdout.write(templateText))
  })
).pipe(Command.withDescription("Print the CloudFormation template embedded in this binary"))
