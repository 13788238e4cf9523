/**
 * End to end with a real Docker engine: builds the runner image (Containerfile) and the dind
 * sidecar image (Containerfile.dind), then runs them together the way an ECS task does — the
 * sidecar's dockerd on a socket in a shared volume, `ghr run` in the runner container — against
 * the fake GitHub API (test/support/fake-github.ts) on 127.0.0.1.
 *
 * The only differences from a production build: the base image `debian:bookworm-slim` is made
 * with debootstrap (scripts/images/base-image.sh; no registry is reachable here) and the actions
 * runner tarball is the stand-in of test/fixtures/runner, served on 127.0.0.1 and passed with the
 * Containerfile's RUNNER_URL / RUNNER_SHA256_* build args (github.com is not reachable either).
 *
 * Needs GHR_E2E_ENGINE=unix:///…/docker.sock, which `scripts/images/engine.sh start` prints
 * (.ci/run does that). Without it the whole file is skipped, loudly.
 *
 * Networking: every container uses --network host (the runner, to reach the fake GitHub on
 * 127.0.0.1) or --network none (the sidecar; its dockerd runs with --bridge=none
 * --iptables=false, and the job's nested containers use --network none). No bridge, no address.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { createHash, randomBytes } from "node:crypto"
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { startFakeGitHub, type FakeGitHub } from "../support/fake-github.ts"
import { generateAppKey, type TestKeyPair } from "../support/keys.ts"
import { freePort } from "../support/ports.ts"

const root = resolve(import.meta.dir, "../..")
const engine = process.env["GHR_E2E_ENGINE"]
const dockerBin = process.env["GHR_E2E_DOCKER"] ?? "docker"

if (!engine) {
  const line = "=".repeat(100)
  console.warn(
    `\n${line}\nSKIPPING test/e2e/images.test.ts: GHR_E2E_ENGINE is not set, so no Docker engine is available.\n` +
      `Start one with:  eval "$(scripts/images/engine.sh start)"   (needs root: apt-get install docker.io debootstrap)\n${line}\n`
  )
}

/** A label value unique to this run: cleanup removes only what this run created. */
const runId = `${process.pid}-${randomBytes(3).toString("hex")}`
const label = `ghr-e2e=${runId}`
const runnerImage = "ghr-runner:e2e"
const dindImage = "ghr-dind:e2e"
const baseImage = "debian:bookworm-slim"

const APP_ID = 4242
const INSTALLATION_ID = 777
const OWNER = "acme"
const REPO = "widgets"

const timings: Array<[string, number]> = []
const timed = async <A>(what: string, f: () => Promise<A>): Promise<A> => {
  const started = performance.now()
  try {
    return await f()
  } finally {
    timings.push([what, Math.round(performance.now() - started) / 1000])
  }
}

interface Result {
  code: number
  stdout: string
  stderr: string
}

const engineEnv = (): Record<string, string> => ({
  ...(process.env as Record<string, string>),
  DOCKER_HOST: engine ?? "",
  DOCKER_BUILDKIT: "1",
  GHR_E2E_DOCKER: dockerBin
})

/** Runs a command with the engine in DOCKER_HOST; kills it (and fails) after timeoutMs. */
const sh = async (argv: string[], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Result> => {
  const proc = Bun.spawn(argv, { cwd: root, env: { ...engineEnv(), ...options.env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    proc.kill("SIGKILL")
  }, options.timeoutMs ?? 60_000)
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  clearTimeout(timer)
  if (timedOut) throw new Error(`timed out after ${options.timeoutMs ?? 60_000} ms: ${argv.join(" ")}\n${stdout}\n${stderr}`)
  return { code, stdout, stderr }
}

const docker = (args: string[], timeoutMs?: number) => sh([dockerBin, ...args], { timeoutMs })

const must = async (what: string, result: Promise<Result>): Promise<string> => {
  const r = await result
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
  return r.stdout.trim()
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const waitFor = async (what: string, timeoutMs: number, check: () => Promise<boolean> | boolean): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(250)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

interface ContainerState {
  running: boolean
  exitCode: number
  health: string
}

const inspect = async (name: string): Promise<ContainerState> => {
  const out = await must(
    `inspect ${name}`,
    docker(["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}", name])
  )
  const [running, exitCode, health] = out.split(" ")
  return { running: running === "true", exitCode: Number(exitCode), health: health ?? "none" }
}

/** Waits until the container has stopped; returns its exit code and how long that took. */
const waitExit = async (name: string, timeoutMs: number): Promise<{ exitCode: number; seconds: number }> => {
  const started = performance.now()
  let state = await inspect(name)
  await waitFor(`${name} to exit`, timeoutMs, async () => {
    state = await inspect(name)
    return !state.running
  })
  return { exitCode: state.exitCode, seconds: (performance.now() - started) / 1000 }
}

const logs = async (name: string): Promise<string> => {
  const r = await docker(["logs", name])
  return `${r.stdout}${r.stderr}`
}

// --- fixtures shared by the scenarios ------------------------------------------------------------

let work = ""
let appKey: TestKeyPair
let fake: FakeGitHub
let imagesBuilt = false
let hostArch = "amd64"

/** The privileged-equivalent flags: --privileged itself fails on this VM (its bounding set lacks CAP_SYS_RESOURCE). */
const privilegedFlags = [
  "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
  "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
  "--device-cgroup-rule", "a *:* rwm",
  "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"
]

interface Sidecar {
  name: string
  socketDir: string
  /** /actions-runner/_work in both containers, as the ECS task definition shares it (bind mounts of job containers resolve in dockerd's file system). */
  workDir: string
}

const startSidecar = async (scenario: string, privileged: boolean): Promise<Sidecar> => {
  const name = `ghr-e2e-dind-${scenario}-${runId}`
  const socketDir = mkdtempSync(join(work, `sock-${scenario}-`))
  chmodSync(socketDir, 0o755)
  const workDir = mkdtempSync(join(work, `runner-work-${scenario}-`))
  chownSync(workDir, 1001, 123) // what the task definition's prepare container does
  chmodSync(workDir, 0o775)
  await must(
    `start sidecar ${name}`,
    docker([
      "run", "--pull", "never", "-d", "--name", name, "--label", label, "--network", "none",
      ...(privileged ? privilegedFlags : ["--cap-add", "SYS_PTRACE"]),
      "-v", "/var/lib/docker",
      "-v", `${socketDir}:/var/run/dind`,
      "-v", `${workDir}:/actions-runner/_work`,
      dindImage,
      // No bridge, no iptables: the nested containers use --network none.
      "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false"
    ])
  )
  return { name, socketDir, workDir }
}

/** Waits for the sidecar's healthcheck and loads the base image into its daemon (no registry here). */
const readySidecar = async (sidecar: Sidecar): Promise<void> => {
  await waitFor(`${sidecar.name} to become healthy`, 60_000, async () => {
    const state = await inspect(sidecar.name)
    if (!state.running) throw new Error(`${sidecar.name} exited (${state.exitCode}):\n${await logs(sidecar.name)}`)
    return state.health === "healthy"
  })
  const socket = `unix://${sidecar.socketDir}/docker.sock`
  await must(
    "load the base image into the sidecar",
    sh(["bash", "-c", `set -o pipefail; "${dockerBin}" save ${baseImage} | "${dockerBin}" -H ${socket} load`], { timeoutMs: 120_000 })
  )
}

interface RunnerOptions {
  scenario: string
  sidecar: Sidecar
  job: string
  env?: Record<string, string>
}

const startRunner = async (options: RunnerOptions): Promise<{ name: string; recordDir: string; healthPort: number }> => {
  const name = `ghr-e2e-runner-${options.scenario}-${runId}`
  const recordDir = mkdtempSync(join(work, `record-${options.scenario}-`))
  chmodSync(recordDir, 0o777) // written by uid 1001 inside the container
  const healthPort = await freePort()
  const env: Record<string, string> = {
    GITHUB_URL: fake.url,
    GITHUB_API_URL: fake.url,
    GITHUB_OWNER: OWNER,
    GITHUB_REPOSITORY: REPO,
    GITHUB_APP_ID: String(APP_ID),
    GITHUB_APP_INSTALLATION_ID: String(INSTALLATION_ID),
    GITHUB_APP_PRIVATE_KEY: appKey.privateKeyPem,
    DOCKER_HOST: "unix:///var/run/dind/docker.sock",
    DOCKER_WAIT_SECONDS: "30",
    GHR_HEALTH_PORT: String(healthPort),
    LOG_FORMAT: "json",
    STANDIN_RECORD_DIR: "/standin-record",
    STANDIN_JOB: options.job,
    ...options.env
  }
  await must(
    `start runner ${name}`,
    docker([
      "run", "--pull", "never", "-d", "--name", name, "--label", label, "--network", "host",
      "-v", `${options.sidecar.socketDir}:/var/run/dind`,
      "-v", `${options.sidecar.workDir}:/actions-runner/_work`,
      "-v", `${recordDir}:/standin-record`,
      ...Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]),
      runnerImage
    ])
  )
  return { name, recordDir, healthPort }
}

const events = (recordDir: string): string => {
  const file = join(recordDir, "events.log")
  return existsSync(file) ? readFileSync(file, "utf8") : ""
}

const registrations = () => fake.calls.filter((c) => c.route.endsWith("/generate-jitconfig") || c.route.endsWith("/registration-token"))
const deletions = () => fake.calls.filter((c) => c.method === "DELETE" && c.route.includes("/actions/runners/{runner_id}"))

const newestMtime = (dir: string): number => {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs)
  }
  return newest
}

describe.skipIf(!engine)("runner + dind images end to end", () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "ghr-e2e-"))
    chmodSync(work, 0o755)
    appKey = generateAppKey()
    fake = await startFakeGitHub({
      apps: [{ id: APP_ID, clientId: "Iv23liE2eClientId001", slug: "ghr-e2e", publicKeyPem: appKey.publicKeyPem }],
      installations: [{
        id: INSTALLATION_ID,
        appId: APP_ID,
        account: { login: OWNER, type: "Organization" },
        permissions: { administration: "write", metadata: "read" },
        repositories: [REPO]
      }]
    })
  })

  afterAll(async () => {
    if (engine) {
      const ids = (await docker(["ps", "-aq", "--filter", `label=${label}`])).stdout.split("\n").filter(Boolean)
      if (ids.length > 0) await docker(["rm", "-fv", ...ids], 60_000)
    }
    await fake?.stop()
    if (work) rmSync(work, { recursive: true, force: true })
    console.log(`\ne2e timings (s):\n${timings.map(([what, s]) => `  ${s.toFixed(1).padStart(6)}  ${what}`).join("\n")}\n`)
  })

  test("the engine answers", async () => {
    hostArch = await must("docker version", docker(["version", "--format", "{{.Server.Arch}}"]))
    expect(["amd64", "arm64"]).toContain(hostArch)
  })

  test("builds the runner and dind images (stand-in base image and runner tarball)", async () => {
    await timed("base image (debootstrap, or its cached tarball)", () => must("base image", sh(["bash", "scripts/images/base-image.sh"], { timeoutMs: 300_000 })))

    // The ghr binary for this architecture, rebuilt when src/ is newer.
    const binary = join(root, "dist", hostArch === "amd64" ? "ghr-linux-x64" : "ghr-linux-arm64")
    if (!existsSync(binary) || statSync(binary).mtimeMs < Math.max(newestMtime(join(root, "src")), newestMtime(join(root, "cfn")))) {
      await timed("bun scripts/build.ts", () => must("ghr build", sh([process.execPath, "scripts/build.ts"], { timeoutMs: 300_000 })))
    }

    // The stand-in runner release: run.sh + config.sh at the top, like the real tarball's layout.
    const layout = join(work, "runner-layout")
    mkdirSync(join(layout, "bin"), { recursive: true })
    mkdirSync(join(layout, "externals"), { recursive: true })
    // Node.js externals shaped like the real ones, to check the Containerfile's trimming.
    mkdirSync(join(layout, "externals/node24/bin"), { recursive: true })
    mkdirSync(join(layout, "externals/node24/include/node"), { recursive: true })
    mkdirSync(join(layout, "externals/node24_alpine/bin"), { recursive: true })
    for (const file of ["externals/node24/bin/node", "externals/node24/include/node/node.h", "externals/node24_alpine/bin/node"]) {
      await Bun.write(join(layout, file), "#!/bin/sh\n")
    }
    for (const file of ["run.sh", "config.sh"]) {
      copyFileSync(join(root, "test/fixtures/runner", file), join(layout, file))
      chmodSync(join(layout, file), 0o755)
    }
    const tarball = join(work, "actions-runner-standin.tar.gz")
    await must("stand-in tarball", sh(["tar", "-C", layout, "--owner=0", "--group=0", "-czf", tarball, "."]))
    const sha256 = createHash("sha256").update(readFileSync(tarball)).digest("hex")
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(Bun.file(tarball)) })
    try {
      await timed("build runner + dind images", () =>
        must(
          "scripts/images/build.sh",
          sh([
            "bash", "scripts/images/build.sh",
            "--platforms", `linux/${hostArch}`, "--tag", "e2e", "--host-network",
            "--build-arg", `RUNNER_URL=http://127.0.0.1:${server.port}/actions-runner-standin.tar.gz`,
            "--build-arg", `RUNNER_SHA256_${hostArch.toUpperCase()}=${sha256}`
          ], { timeoutMs: 600_000 })
        ))
    } finally {
      server.stop(true)
    }

    const history = await must(
      "docker history",
      docker(["history", "--no-trunc", "--human=false", "--format", "{{.Size}}\t{{.CreatedBy}}", runnerImage])
    )
    console.log(
      `\n${runnerImage} layers (bytes, newest first):\n${
        history.split("\n").filter((l) => !l.startsWith("0\t")).map((l) => `  ${l.slice(0, 140)}`).join("\n")
      }`
    )
    const [runnerSize, dindSize] = await Promise.all([runnerImage, dindImage].map((image) =>
      must("image size", docker(["image", "inspect", "-f", "{{.Size}}", image])).then(Number)
    ))
    console.log(`${runnerImage}: ${(runnerSize! / 1e6).toFixed(0)} MB, ${dindImage}: ${(dindSize! / 1e6).toFixed(0)} MB (uncompressed)`)

    // The image contract (docs/images.md).
    const config = JSON.parse(await must("inspect", docker(["image", "inspect", "-f", "{{json .Config}}", runnerImage])))
    expect(config.Entrypoint).toEqual(["/usr/local/bin/ghr", "run"])
    expect(config.User).toBe("runner")
    expect(config.Healthcheck.Test).toEqual(["CMD", "/usr/local/bin/ghr", "health"])
    expect(config.Env).toContain("RUNNER_DIR=/actions-runner")
    const probe = await must(
      "probe the runner image",
      docker([
        "run", "--pull", "never", "--rm", "--network", "none", "--entrypoint", "bash", runnerImage, "-c",
        "id -u; id -G; docker --version; docker buildx version; test -x /actions-runner/run.sh && echo runner-ok; " +
          "test -w /actions-runner && echo writable; ghr --version; " +
          "test -e externals/node24/bin/node && echo node-kept; test -e externals/node24/include || echo headers-trimmed; " +
          "test -e externals/node24_alpine || echo alpine-dropped"
      ])
    )
    const [uid, groups] = probe.split("\n")
    expect(uid).toBe("1001")
    expect(groups!.split(" ")).toContain("123")
    expect(probe).toContain("github.com/docker/buildx")
    expect(probe).toContain("runner-ok")
    expect(probe).toContain("writable")
    expect(probe).toContain("node-kept")
    expect(probe).toContain("headers-trimmed")
    expect(probe).toContain("alpine-dropped")
    // No daemon in the runner image: only the CLI and the buildx plugin.
    expect((await docker(["run", "--pull", "never", "--rm", "--network", "none", "--entrypoint", "bash", runnerImage, "-c", "command -v dockerd containerd runc"])).stdout.trim()).toBe("")
    imagesBuilt = true
  }, 900_000)

  test("a job runs docker run and docker build against the dind sidecar; the runner is registered, then deleted", async () => {
    expect(imagesBuilt).toBe(true)
    fake.reset()
    const sidecar = await startSidecar("happy", true)
    await timed("happy: sidecar healthy + base image loaded", () => readySidecar(sidecar))

    const job = [
      "set -euxo pipefail",
      "exec > >(tee -a \"$STANDIN_RECORD_DIR/job.out\") 2>&1",
      "docker version --format 'server {{.Server.Version}}'",
      "docker run --pull never --rm --network none debian:bookworm-slim sh -c 'echo hello-from-nested-container'",
      "ctx=$(mktemp -d)",
      "printf 'FROM debian:bookworm-slim\\nRUN echo built-by-nested-build > /built\\n' > \"$ctx/Dockerfile\"",
      "docker build --network none -t ghr-e2e-nested:1 \"$ctx\"",
      "docker run --rm --network none ghr-e2e-nested:1 cat /built",
      // A bind mount of the shared work volume, as container jobs and `docker run -v $PWD:…` do.
      "echo shared-work-volume > /actions-runner/_work/shared.txt",
      "docker run --rm --network none -v /actions-runner/_work:/work debian:bookworm-slim cat /work/shared.txt"
    ].join("\n")
    const runner = await startRunner({ scenario: "happy", sidecar, job })
    const exit = await timed("happy: runner job (ghr run → exit)", () => waitExit(runner.name, 180_000))
    const runnerLogs = await logs(runner.name)
    const jobOut = existsSync(join(runner.recordDir, "job.out")) ? readFileSync(join(runner.recordDir, "job.out"), "utf8") : ""
    const context = `runner logs:\n${runnerLogs}\njob output:\n${jobOut}\nevents:\n${events(runner.recordDir)}`

    expect(exit.exitCode, `exit ${exit.exitCode}\n${context}`).toBe(0)
    expect(jobOut, context).toContain("hello-from-nested-container")
    expect(jobOut, context).toContain("built-by-nested-build")
    expect(jobOut, context).toMatch(/^shared-work-volume$/m)
    expect(events(runner.recordDir), context).toMatch(/job\.done .*result=Succeeded/)
    expect(registrations().length, context).toBe(1)
    expect(registrations()[0]!.status, context).toBeLessThan(300)
    expect(fake.runners(), context).toEqual([])

    // The sidecar stops cleanly on SIGTERM (what ECS sends) and removes its socket.
    const stop = await timed("happy: sidecar docker stop", async () => {
      await must("stop sidecar", docker(["stop", "-t", "60", sidecar.name], 90_000))
      return inspect(sidecar.name)
    })
    expect(stop.exitCode, await logs(sidecar.name)).toBe(0)
    expect(existsSync(join(sidecar.socketDir, "docker.sock"))).toBe(false)
  }, 300_000)

  test("Fargate-style sidecar (no privilege, only SYS_PTRACE): DockerNotReady with the Fargate hint, exit 75, no runner left", async () => {
    expect(imagesBuilt).toBe(true)
    fake.reset()
    const sidecar = await startSidecar("fargate", false)
    const waitSeconds = 5
    const runner = await startRunner({ scenario: "fargate", sidecar, job: "true", env: { DOCKER_WAIT_SECONDS: String(waitSeconds) } })
    const exit = await timed("fargate: ghr run → DockerNotReady", () => waitExit(runner.name, 120_000))
    const runnerLogs = await logs(runner.name)

    expect(exit.exitCode, `exit ${exit.exitCode}\n${runnerLogs}`).toBe(75)
    expect(exit.seconds, runnerLogs).toBeLessThan(waitSeconds + 25)
    expect(runnerLogs).toContain("DockerNotReady")
    expect(runnerLogs).toContain("Fargate")
    expect(registrations(), runnerLogs).toEqual([])
    expect(fake.runners()).toEqual([])
    expect(events(runner.recordDir)).toBe("")

    // The sidecar itself failed the way dockerd fails on Fargate, and said why.
    const dind = await inspect(sidecar.name)
    const dindLogs = await logs(sidecar.name)
    expect(dind.running, dindLogs).toBe(false)
    expect(dind.exitCode, dindLogs).not.toBe(0)
    expect(dindLogs).toContain("not privileged")
  }, 180_000)

  test("SIGTERM to the runner container mid-job: the runner is deleted, ghr exits with the runner's code, the sidecar stops cleanly", async () => {
    expect(imagesBuilt).toBe(true)
    fake.reset()
    const sidecar = await startSidecar("sigterm", true)
    await timed("sigterm: sidecar healthy + base image loaded", () => readySidecar(sidecar))
    // The job's `docker run` proxies the SIGTERM it gets from run.sh to its container, which
    // exits on it — as a well-behaved job step does when the runner cancels it.
    const job = [
      "set -eu",
      "echo job-started >> \"$STANDIN_RECORD_DIR/job.out\"",
      "docker run --rm --network none --name ghr-e2e-sleeper debian:bookworm-slim " +
        "sh -c 'trap \"echo nested-got-sigterm; exit 0\" TERM; sleep 600 & wait' >> \"$STANDIN_RECORD_DIR/job.out\""
    ].join("\n")
    const runner = await startRunner({ scenario: "sigterm", sidecar, job })
    const socket = `unix://${sidecar.socketDir}/docker.sock`
    await waitFor("the job's nested container to run", 120_000, async () => {
      if (!(await inspect(runner.name)).running) throw new Error(`runner exited early:\n${await logs(runner.name)}`)
      const r = await sh([dockerBin, "-H", socket, "ps", "-q", "--filter", "name=ghr-e2e-sleeper"])
      return r.stdout.trim() !== ""
    })
    expect(registrations().length).toBe(1)
    expect(fake.runners().length).toBe(1)

    // The image's HEALTHCHECK command answers while the job runs.
    const health = await docker(["exec", runner.name, "/usr/local/bin/ghr", "health"])
    expect(health.code, `${health.stdout}${health.stderr}`).toBe(0)

    await must("SIGTERM the runner container", docker(["kill", "--signal", "TERM", runner.name]))
    const exit = await timed("sigterm: SIGTERM → ghr exit", () => waitExit(runner.name, 120_000))
    const runnerLogs = await logs(runner.name)
    const context = `runner logs:\n${runnerLogs}\nevents:\n${events(runner.recordDir)}`

    expect(events(runner.recordDir), context).toMatch(/sigterm pid=\d+ signal=TERM phase=job/)
    expect(exit.exitCode, `exit ${exit.exitCode}\n${context}`).toBe(0) // the stand-in run.sh exits 0 on SIGTERM (STANDIN_SIGTERM_EXIT_CODE)
    expect(fake.runners(), context).toEqual([])
    expect(deletions().length, context).toBeGreaterThanOrEqual(1)

    expect(readFileSync(join(runner.recordDir, "job.out"), "utf8"), context).toContain("nested-got-sigterm")

    // dockerd stops what still runs in it when it gets SIGTERM: a container that ignores SIGTERM
    // (sleep as PID 1) is killed after its stop timeout, within the daemon's shutdown-timeout.
    await must("a lingering nested container", sh([dockerBin, "-H", socket, "run", "--pull", "never", "-d", "--network", "none", "debian:bookworm-slim", "sleep", "600"]))
    const stop = await timed("sigterm: sidecar docker stop (nested container still running)", async () => {
      const started = performance.now()
      await must("stop sidecar", docker(["stop", "-t", "60", sidecar.name], 90_000))
      return { ...(await inspect(sidecar.name)), seconds: (performance.now() - started) / 1000 }
    })
    expect(stop.exitCode, await logs(sidecar.name)).toBe(0)
    expect(stop.seconds).toBeLessThan(40)
  }, 300_000)
})
