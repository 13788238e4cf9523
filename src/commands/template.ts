import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { isAlias, isMap, isScalar, isSeq, parseDocument, YAMLMap, YAMLSeq } from "yaml"
import type { Document, Node, Scalar } from "yaml"
import template from "../../cfn/ghr.yaml" with { type: "text" }

/** The template text as shipped; embedded at build time so the binary needs no files beside it. */
export const templateText: string = template

/**
 * CloudFormation's short-form intrinsic functions. In JSON (and long-form YAML) `!Ref X` is
 * `{"Ref": "X"}`, `!Condition X` is `{"Condition": "X"}`, and every other `!Name v` is `{"Fn::Name": v}`.
 */
const intrinsicNames = [
  "And", "Base64", "Cidr", "Condition", "Contains", "EachMemberEquals", "EachMemberIn", "Equals", "FindInMap",
  "GetAtt", "GetAZs", "If", "ImportValue", "Join", "Length", "Not", "Or", "Ref", "RefAll", "Select", "Split", "Sub",
  "ToJsonString", "Transform", "ValueOf", "ValueOfAll"
] as const

// Each tag may decorate a scalar, a sequence or a mapping; keep the node and convert it in `toJson`.
const customTags = intrinsicNames.flatMap((name) => [
  { tag: `!${name}`, resolve: (value: string) => value },
  { tag: `!${name}`, collection: "seq" as const, nodeClass: YAMLSeq },
  { tag: `!${name}`, collection: "map" as const, nodeClass: YAMLMap }
])

export class TemplateSyntaxError extends Error {
  constructor(readonly problems: ReadonlyArray<string>) {
    super(`the template is not valid YAML: ${problems.join("; ")}`)
  }
}

const intrinsic = (tag: string, value: unknown): unknown => {
  const name = tag.slice(1)
  if (name === "Ref") return { Ref: value }
  if (name === "Condition") return { Condition: value }
  if (name === "GetAtt" && typeof value === "string") {
    // `!GetAtt Resource.Attribute.With.Dots` → ["Resource", "Attribute.With.Dots"]
    const dot = value.indexOf(".")
    return { "Fn::GetAtt": dot < 0 ? [value] : [value.slice(0, dot), value.slice(dot + 1)] }
  }
  return { [`Fn::${name}`]: value }
}

const toJson = (node: unknown, doc: Document.Parsed): unknown => {
  if (node === null || node === undefined) return null
  if (isAlias(node)) return toJson(node.resolve(doc), doc)
  let value: unknown
  if (isScalar(node)) {
    value = (node as Scalar).value
  } else if (isSeq(node)) {
    value = node.items.map((item) => toJson(item, doc))
  } else if (isMap(node)) {
    const object: Record<string, unknown> = {}
    for (const pair of node.items) {
      const key = toJson(pair.key, doc)
      object[String(key)] = toJson(pair.value, doc)
    }
    value = object
  } else {
    return node
  }
  const tag = (node as Node).tag
  return tag !== undefined && tag.startsWith("!") && (intrinsicNames as ReadonlyArray<string>).includes(tag.slice(1))
    ? intrinsic(tag, value)
    : value
}

/**
 * Parses CloudFormation YAML into the JSON document CloudFormation itself would see: short-form tags
 * become their long form, everything else stays as written (order, numbers, strings).
 */
export const parseTemplate = (text: string): Record<string, unknown> => {
  const doc = parseDocument(text, { customTags, uniqueKeys: true, merge: false })
  const problems = [...doc.errors, ...doc.warnings].map((e) => e.message)
  if (problems.length > 0) throw new TemplateSyntaxError(problems)
  const json = toJson(doc.contents, doc)
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new TemplateSyntaxError(["the document is not a mapping"])
  }
  return json as Record<string, unknown>
}

/** The embedded template as a JSON document. */
export const templateDocument = (): Record<string, unknown> => parseTemplate(templateText)

/** The embedded template in JSON, with a trailing newline like the YAML file. */
export const templateJson = (): string => JSON.stringify(templateDocument(), null, 2) + "\n"

export const templateCommand = Command.make(
  "template",
  {
    format: Flag.Literals("format", ["yaml", "json"]).pipe(
      Flag.withDescription("yaml prints the embedded file byte for byte; json prints the same document in JSON"),
      Flag.withDefault("yaml")
    )
  },
  Effect.fn("command.template")(function*({ format }) {
    const text = format === "json" ? templateJson() : templateText
    yield* Effect.sync(() => process.stdout.write(text))
  })
).pipe(
  Command.withDescription("Print the CloudFormation template embedded in this binary"),
  Command.withExamples([
    { command: "ghr template > ghr.yaml", description: "Save the template, e.g. for the CloudFormation console" },
    { command: "ghr template --format json", description: "The same document in JSON" }
  ])
)
