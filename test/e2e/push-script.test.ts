/**
 * scripts/images/push.sh against the moto AWS emulator (ECR) with a recording stand-in for the
 * docker CLI: no registry and no image build are needed, so this runs everywhere moto does.
 * What it checks is the script's own logic — repositories created once with scan-on-push, the
 * ECR login with a password on stdin, and one multi-platform buildx push per image with zstd
 * (or gzip with --soci) layers. The images themselves are built and run in images.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { startMoto, type Moto } from "../support/moto.ts"

const root = resolve(import.meta.dir, "../..")
const hasMoto = Bun.which("moto_server") !== null && Bun.which("aws") !== null
if (!hasMoto) {
  console.warn("\nSKIPPING test/e2e/push-script.test.ts: moto_server and the AWS CLI are needed (pip install 'moto[server]' awscli)\n")
}

const registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
const runnerVersion = readFileSync(join(root, "Containerfile"), "utf8").match(/^ARG RUNNER_VERSION=(\S+)$/m)?.[1]

let moto: Moto
let work = ""
let stub = ""
let log = ""

const run = async (args: string[]) => {
  const proc = Bun.spawn(["bash", "scripts/images/push.sh", ...args], {
    cwd: root,
    env: { PATH: process.env["PATH"] ?? "", HOME: work, ...moto.env, GHR_E2E_DOCKER: stub, STUB_LOG: log },
    stdout: "pipe",
    stderr: "pipe"
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { code, output: stdout + stderr }
}

const aws = async (args: string[]) => {
  const proc = Bun.spawn(["aws", ...args, "--region", "us-east-1", "--output", "json"], { env: { PATH: process.env["PATH"] ?? "", HOME: work, ...moto.env }, stdout: "pipe", stderr: "pipe" })
  const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
  expect(code).toBe(0)
  return JSON.parse(stdout)
}

const calls = (): string[][] =>
  existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line) as string[]) : []

describe.skipIf(!hasMoto)("scripts/images/push.sh", () => {
  beforeAll(async () => {
    moto = await startMoto()
    work = mkdtempSync(join(tmpdir(), "ghr-push-"))
    log = join(work, "docker-calls.jsonl")
    stub = join(work, "docker")
    // Records argv as one JSON line; `login` also records how many bytes of password came on stdin.
    await Bun.write(
      stub,
      `#!/usr/bin/env bash
set -eu
args=("$@")
if [[ "\${1:-}" == login ]]; then args+=("stdin-bytes=$(wc -c | tr -d ' ')"); fi
python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "\${args[@]}" >>"$STUB_LOG"
if [[ "\${1:-} \${2:-}" == "buildx version" ]]; then echo "github.com/docker/buildx v0.36.1 stub"; fi
`
    )
    chmodSync(stub, 0o755)
    // build.sh insists on the ghr binaries it would copy into the images.
    for (const file of ["dist/ghr-linux-x64", "dist/ghr-linux-arm64"]) {
      if (!existsSync(join(root, file)) || statSync(join(root, file)).size === 0) {
        const build = Bun.spawnSync([process.execPath, "scripts/build.ts"], { cwd: root, stdout: "inherit", stderr: "inherit" })
        expect(build.exitCode).toBe(0)
        break
      }
    }
  }, 120_000)

  afterAll(async () => {
    await moto?.stop()
    if (work) rmSync(work, { recursive: true, force: true })
  })

  test("creates the ECR repositories, logs in, pushes both images for both platforms with zstd layers", async () => {
    const result = await run(["--registry", registry])
    expect(result.code, result.output).toBe(0)

    const repos = await aws(["ecr", "describe-repositories"])
    const names = repos.repositories.map((r: { repositoryName: string }) => r.repositoryName).sort()
    expect(names).toEqual(["ghr/ghr-dind", "ghr/ghr-runner"])
    for (const repo of repos.repositories) expect(repo.imageScanningConfiguration.scanOnPush).toBe(true)

    const login = calls().find((c) => c[0] === "login")
    expect(login?.slice(0, 5)).toEqual(["login", "--username", "AWS", "--password-stdin", registry])
    expect(Number(login?.[5]?.replace("stdin-bytes=", ""))).toBeGreaterThan(0)

    const builds = calls().filter((c) => c[0] === "buildx" && c[1] === "build")
    expect(builds.length).toBe(2)
    for (const [kind, file] of [["runner", "Containerfile"], ["dind", "Containerfile.dind"]] as const) {
      const build = builds.find((b) => b.includes(`${root}/${file}`))
      expect(build, `no buildx build of ${file}: ${JSON.stringify(builds)}`).toBeDefined()
      expect(build![build!.indexOf("--platform") + 1]).toBe("linux/amd64,linux/arm64")
      const output = build![build!.indexOf("--output") + 1]!
      expect(output).toContain(`name=${registry}/ghr/ghr-${kind}:${runnerVersion}`)
      expect(output).toContain("push=true")
      expect(output).toContain("compression=zstd")
      expect(output).toContain("force-compression=true")
      expect(output).toContain("oci-mediatypes=true")
    }
  }, 120_000)

  test("is idempotent, and --soci pushes gzip layers and explains how to add SOCI indexes", async () => {
    await Bun.write(log, "")
    const result = await run(["--registry", registry, "--soci", "--only", "runner", "--tag", "t1"])
    expect(result.code, result.output).toBe(0)
    expect(result.output).not.toContain("creating ECR repository")
    expect(result.output).toContain("soci convert")
    const builds = calls().filter((c) => c[0] === "buildx" && c[1] === "build")
    expect(builds.length).toBe(1)
    const output = builds[0]![builds[0]!.indexOf("--output") + 1]!
    expect(output).toContain(`name=${registry}/ghr/ghr-runner:t1`)
    expect(output).toContain("compression=gzip")
  }, 120_000)

  test("refuses a registry that is not ECR", async () => {
    const result = await run(["--registry", "ghcr.io/acme"])
    expect(result.code).toBe(64)
    expect(result.output).toContain("is not an ECR registry host")
  })
})
