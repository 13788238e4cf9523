import { Console, Effect, FileSystem, Layer, Option, Redacted } from "effect"
import { Command, Flag } from "effect/cli"
import {
  apiBaseFor,
  appNameProblem,
  AppSetup,
  appSettingsUrl,
  buildManifest,
  parseAppIdentifier,
  registrationBaseUrl,
  registrationUrl
} from "../AppSetup.ts"
import { ConfigError } from "../Errors.ts"
import { Secrets } from "../Secrets.ts"

const usage = (setting: string, problem: string) => new ConfigError({ problems: [{ setting, problem }] })

const githubUrlFlag = Flag.String("github-url").pipe(
  Flag.withDescription("https://github.com, a GHES URL or https://<x>.ghe.com"),
  Flag.withDefault("https://github.com")
)

const manifestCommand = Command.make(
  "manifest",
  {
    owner: Flag.String("owner").pipe(Flag.withDescription("Organization (or, with --repo, user) that will own the runners and the App")),
    repo: Flag.String("repo").pipe(Flag.withDescription("Repository name: repository runners instead of organization runners"), Flag.optional),
    name: Flag.String("name").pipe(Flag.withDescription("App name (at most 34 characters); default ghr-<owner>[-<repo>]"), Flag.optional),
    personal: Flag.Boolean("personal").pipe(
      Flag.withDescription("The owner is a personal account: register the App there (a private App installs only on its own account)"),
      Flag.withDefault(false)
    ),
    githubUrl: githubUrlFlag,
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print {manifest, create_url, manifest_form_url} as JSON"), Flag.withDefault(false))
  },
  Effect.fn("command.app.manifest")(function*({ owner, repo, name, personal, githubUrl, json }) {
    const repoName = Option.getOrUndefined(repo)
    const appName = Option.getOrUndefined(name)
    if (personal && repoName === undefined) {
      return yield* usage("--personal", "a personal account has no organization runners: add --repo for repository runners")
    }
    if (appName !== undefined) {
      const bad = appNameProblem(appName)
      if (bad !== undefined) return yield* usage("--name", bad)
    }
    const base = apiBaseFor(githubUrl, undefined)
    if (base instanceof ConfigError) return yield* base
    const manifest = buildManifest({ githubUrl, owner, repo: repoName, name: appName })
    const createUrl = registrationUrl(githubUrl, owner, personal, manifest)
    const formUrl = registrationBaseUrl(githubUrl, owner, personal)
    if (json) {
      yield* Console.log(JSON.stringify({ manifest, create_url: createUrl, manifest_form_url: formUrl }, null, 2))
      return
    }
    const scope = repoName === undefined ? `organization runners of ${owner}` : `repository runners of ${owner}/${repoName}`
    yield* Console.log([
      `# GitHub App manifest: least privilege for ${scope}; no webhook (ghr long-polls GitHub)`,
      JSON.stringify(manifest, null, 2),
      "",
      "# Create the App (GitHub's registration form, filled in with these settings):",
      createUrl,
      "",
      `# Or POST the manifest above as the form field "manifest" to ${formUrl}`,
      "# Then: on the App's page generate a private key, install the App on " + owner + ", and run",
      `#   ghr app secret --app-id <App ID> --key <downloaded .pem> --owner ${owner}${repoName === undefined ? "" : ` --repo ${repoName}`} [--put <secret id>]`
    ].join("\n"))
  })
).pipe(
  Command.withDescription("Print a least-privilege GitHub App manifest for the runner scope, and the link that creates the App"),
  Command.withExamples([
    { command: "ghr app manifest --owner my-org", description: "An App for organization runners" },
    { command: "ghr app manifest --owner me --repo app --personal", description: "An App on a personal account for one repository" }
  ])
)

const secretCommand = Command.make(
  "secret",
  {
    appId: Flag.String("app-id").pipe(Flag.withDescription("The App ID (or client ID) from the App's settings page")),
    key: Flag.String("key").pipe(Flag.withDescription("Path of the private key .pem file downloaded from the App's settings page")),
    owner: Flag.String("owner").pipe(Flag.withDescription("Account the App is installed on (needed when it is installed on several)"), Flag.optional),
    repo: Flag.String("repo").pipe(Flag.withDescription("Repository (with --owner): use the installation that can access it"), Flag.optional),
    put: Flag.String("put").pipe(Flag.withDescription("Store the JSON in this Secrets Manager secret (created if missing) instead of printing it"), Flag.optional),
    githubUrl: githubUrlFlag,
    apiUrl: Flag.String("api-url").pipe(Flag.withDescription("REST API base; derived from --github-url when absent"), Flag.optional)
  },
  Effect.fn("command.app.secret")(function*({ appId, key, owner, repo, put, githubUrl, apiUrl }) {
    const app = parseAppIdentifier(appId)
    if (app === undefined) return yield* usage("--app-id", `expected the numeric App ID or a client ID such as Iv23li…, got "${appId}"`)
    const base = apiBaseFor(githubUrl, Option.getOrUndefined(apiUrl))
    if (base instanceof ConfigError) return yield* base
    const fs = yield* FileSystem.FileSystem
    const pem = yield* fs.readFileString(key).pipe(
      Effect.mapError((e) => usage("--key", `cannot read ${key} (${e.reason._tag === "NotFound" ? "no such file" : e.message})`))
    )
    const setup = yield* AppSetup
    const outcome = yield* setup.secret({
      app,
      privateKey: Redacted.make(pem),
      owner: Option.getOrUndefined(owner),
      repo: Option.getOrUndefined(repo),
      apiUrl: base,
      put: Option.getOrUndefined(put)
    })
    const who = `App ${outcome.app.id}${outcome.app.slug === undefined ? "" : ` (${outcome.app.slug})`}, installation ${outcome.installation.id} on ${outcome.installation.account.login}`
    if (outcome.missing.length > 0) {
      yield* Console.error(
        `warning: the installation lacks ${outcome.missing.map((p) => `"${p.label}"`).join(" and ")}; grant it at ` +
          `${appSettingsUrl(githubUrl, outcome.app, "permissions")} and accept it on the installation (ghr doctor checks this too)`
      )
    }
    if (outcome.storedArn !== undefined) {
      yield* Console.log(`Stored the App secret for ${who} in ${outcome.storedArn}.\nPoint ghr at it with GHR_APP_SECRET=${outcome.storedArn}`)
      return
    }
    yield* Console.error(`# ${who}. Store this JSON as the GHR_APP_SECRET secret (or pass --put <secret id>):`)
    yield* Console.log(Redacted.value(outcome.json!))
  })
).pipe(
  Command.withDescription("Check the App's private key, find its installation id, and print (or --put) the Secrets Manager JSON ghr reads"),
  Command.withExamples([
    { command: "ghr app secret --app-id 123456 --key ghr.private-key.pem --owner my-org", description: "Print the JSON" },
    { command: "ghr app secret --app-id 123456 --key ghr.pem --owner my-org --put ghr/app", description: "Store it in Secrets Manager" }
  ]),
  Command.provide(AppSetup.layer.pipe(Layer.provide(Secrets.layer)))
)

export const appCommand = Command.make("app").pipe(
  Command.withDescription("Set up the GitHub App: a least-privilege manifest, and the secret ghr reads"),
  Command.withSubcommands([manifestCommand, secretCommand])
)
