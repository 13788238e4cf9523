/**
 * Runs the compiled `ghr` binary as a subprocess, the way ECS runs it: only the environment we
 * give it, stdout collected as JSON log lines.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { createServer, type Server } from "node:http"

export const repoRoot = resolve(import.meta.dir, "../..")
export const binaryPath = join(repoRoot, "dist/ghr")

/** Builds dist/ghr once when it is missing (`.ci/run` builds it before the tests). */
export const ensureBinary = (): string => {
  if (!existsSync(binaryPath)) {
    const build = Bun.spawnSync([process.execPath, "scripts/build.ts", "--host"], { cwd: repoRoot, stdout: "pipe", stderr: "pipe" })
    if (build.exitCode !== 0) throw new Error(`building dist/ghr failed:\n${build.stderr.toString()}`)
  }
  return binaryPath
}

export interface GhrResult {
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string
  /** stdout lines parsed as JSON log records (non-JSON lines are skipped). */
  readonly records: ReadonlyArray<Record<string, unknown>>
}

export const parseRecords = (stdout: string): Array<Record<string, unknown>> =>
  stdout.split("\n").flatMap((line) => {
    if (!line.startsWith("{")) return []
    try {
      return [JSON.parse(line) as Record<string, unknown>]
    } catch {
      return []
    }
  })

export interface SpawnOptions {
  readonly env: Record<string, string | undefined>
  readonly timeoutMs?: number
  readonly cwd?: string
  readonly binary?: string
}

/** A running ghr; `done` settles when it exits (killed with SIGKILL at the timeout, so tests stay bounded). */
export const spawnGhr = (args: ReadonlyArray<string>, options: SpawnOptions) => {
  const env: Record<string, string> = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: process.env["HOME"] ?? "/tmp", LOG_FORMAT: "json" }
  for (const [k, v] of Object.entries(options.env)) if (v !== undefined) env[k] = v
  const proc = Bun.spawn([options.binary ?? ensureBinary(), ...args], {
    cwd: options.cwd ?? repoRoot,
    env,
    stdout: "pipe",
    stderr: "pipe"
  })
  let stdout = ""
  const readStdout = (async () => {
    const decoder = new TextDecoder()
    for await (const chunk of proc.stdout) stdout += decoder.decode(chunk, { stream: true })
  })()
  const timer = setTimeout(() => proc.kill("SIGKILL"), options.timeoutMs ?? 30_000)
  const done = (async (): Promise<GhrResult> => {
    const [exitCode, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text(), readStdout])
    clearTimeout(timer)
    return { exitCode, stdout, stderr, records: parseRecords(stdout) }
  })()
  return {
    proc,
    done,
    /** What it has printed so far. */
    output: () => stdout,
    /** Resolves when a log record with this event has been printed. */
    waitForEvent: async (event: string, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs
      while (Date.now() < deadline) {
        const found = parseRecords(stdout).find((r) => r["event"] === event)
        if (found !== undefined) return found
        if (proc.exitCode !== null) break
        await Bun.sleep(25)
      }
      throw new Error(`no "${event}" event within ${timeoutMs} ms; output so far:\n${stdout}`)
    }
  }
}

export const runGhr = (args: ReadonlyArray<string>, options: SpawnOptions): Promise<GhrResult> => spawnGhr(args, options).done

/** A copy of the stand-in actions runner in a fresh directory, as RUNNER_DIR. */
export const standInRunnerDir = (): { dir: string; recordDir: string; cleanup: () => void } => {
  const root = mkdtempSync(join(tmpdir(), "ghr-runner-"))
  const dir = join(root, "actions-runner")
  const recordDir = join(root, "record")
  cpSync(join(repoRoot, "test/fixtures/runner"), dir, { recursive: true })
  mkdirSync(recordDir)
  return { dir, recordDir, cleanup: () => rmSync(root, { recursive: true, force: true }) }
}

/** A stand-in Docker daemon on a unix socket: answers GET /_ping like dockerd, after `readyAfterMs`. */
export const startDockerPing = async (readyAfterMs = 0): Promise<{ dockerHost: string; pings: () => number; stop: () => Promise<void> }> => {
  const dir = mkdtempSync(join(tmpdir(), "ghr-docker-"))
  const socket = join(dir, "docker.sock")
  const started = Date.now()
  let pings = 0
  const server: Server = createServer((req, res) => {
    pings++
    if (req.url === "/_ping" && Date.now() - started >= readyAfterMs) res.writeHead(200, { "content-type": "text/plain" }).end("OK")
    else res.writeHead(503).end("starting")
  })
  await new Promise<void>((ok) => server.listen(socket, ok))
  return {
    dockerHost: `unix://${socket}`,
    pings: () => pings,
    stop: () =>
      new Promise<void>((ok) => {
        server.close(() => {
          rmSync(dir, { recursive: true, force: true })
          ok()
        })
        server.closeAllConnections()
      })
  }
}
