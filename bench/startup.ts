/**
 * How much ghr adds before the actions runner starts, and how many GitHub API calls one runner
 * lifecycle costs. Machines here are noisy, so the baseline (starting run.sh directly) and ghr
 * are measured interleaved in the same run, and the report is their difference and ratio.
 *
 *   node_modules/.bin/bun bench/startup.ts [rounds]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { ensureBinary } from "../test/support/ghr.ts"
import { jitInput, startWorld, useGitHubApp } from "../test/support/world.ts"

const rounds = Number(process.argv[2] ?? 15)
const dir = mkdtempSync(join(tmpdir(), "ghr-bench-"))
const stampFile = join(dir, "started-at")
// A runner that only notes when it was started (in ns since the epoch) and exits.
writeFileSync(join(dir, "run.sh"), `#!/bin/sh\ndate +%s%N > "${stampFile}"\n`, { mode: 0o755 })

const world = await startWorld()
const binary = ensureBinary()
const baseEnv = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: tmpdir(), LOG_FORMAT: "json", LOG_LEVEL: "warn" }

/** Milliseconds from spawning `command` to run.sh's first instruction. */
const timeToRunner = async (command: Array<string>, env: Record<string, string>): Promise<number> => {
  rmSync(stampFile, { force: true })
  const startedNs = BigInt(Date.now()) * 1_000_000n + BigInt(Math.floor((performance.now() % 1) * 1e6))
  const proc = Bun.spawn(command, { env, stdout: "ignore", stderr: "inherit" })
  const code = await proc.exited
  if (code !== 0) throw new Error(`${command[0]} exited ${code}`)
  return Number(BigInt(readFileSync(stampFile, "utf8").trim()) - startedNs) / 1e6
}

const median = (xs: Array<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

const direct: Array<number> = []
const viaGhr: Array<number> = []
const ghrEnv = { ...baseEnv, ...world.repoEnv, RUNNER_DIR: dir, DOCKER_MODE: "none", GHR_HEALTH_PORT: "0" } as Record<string, string>
try {
  for (let i = 0; i < rounds; i++) {
    direct.push(await timeToRunner([join(dir, "run.sh")], baseEnv))
    viaGhr.push(await timeToRunner([binary, "run"], ghrEnv))
  }

  // API calls: one cold lifecycle (a fresh process) and a warm one (token already cached).
  world.github.reset()
  await timeToRunner([binary, "run"], ghrEnv)
  const cold = world.github.calls.filter((c) => !c.route.startsWith("/_fake")).length
  world.github.reset()
  const warm = await Effect.runPromise(useGitHubApp(world.repoEnv, (app) =>
    Effect.gen(function*() {
      const first = yield* app.generateJitConfig(jitInput("bench-warmup"))
      yield* app.deleteRunner(first.runnerId)
      const before = world.github.calls.length
      const second = yield* app.generateJitConfig(jitInput("bench-warm"))
      yield* app.deleteRunner(second.runnerId)
      return world.github.calls.length - before
    })))

  const d = median(direct)
  const g = median(viaGhr)
  console.log(`rounds: ${rounds} (interleaved)`)
  console.log(`median time to runner start: direct ${d.toFixed(1)} ms, via ghr ${g.toFixed(1)} ms`)
  console.log(`ghr overhead: ${(g - d).toFixed(1)} ms (target ≤ 100 ms); ratio ghr/direct ${(g / d).toFixed(1)}x`)
  console.log(`GitHub API calls per ephemeral runner: cold ${cold} (target 3), warm ${warm} (target 2)`)
} finally {
  await world.github.stop()
  rmSync(dir, { recursive: true, force: true })
}
