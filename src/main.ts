import { Command } from "effect/cli"
import packageJson from "../package.json" with { type: "json" }
import { appCommand } from "./commands/app.ts"
import { controllerCommand } from "./commands/controller.ts"
import { deployCommand } from "./commands/deploy.ts"
import { doctorCommand } from "./commands/doctor.ts"
import { healthCommand } from "./commands/health.ts"
import { runCommand } from "./commands/run.ts"
import { templateCommand } from "./commands/template.ts"

export const version: string = packageJson.version

export const ghr = Command.make("ghr").pipe(
  Command.withDescription("Self-hosted GitHub Actions runners on Amazon ECS, authenticated by a GitHub App"),
  Command.withSubcommands([runCommand, healthCommand, templateCommand, deployCommand, doctorCommand, appCommand, controllerCommand])
)

export const run = Command.run(ghr, { version })
