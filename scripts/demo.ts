/**
 * The local end-to-end demo of one runner's lifecycle, with no AWS or GitHub account:
 *
 * - a fake GitHub API (test/support/fake-github.ts) with one App and one installation,
 * - moto_server (the AWS API emulator) holding the App's credentials in Secrets Manager,
 * - a stand-in Docker daemon that becomes ready after a second, as a dind sidecar does,
 * - the stand-in actions runner (test/fixtures/runner) whose job prints a line and sleeps,
 * - and the compiled `dist/ghr run`, configured exactly as in a task: GHR_APP_SECRET only.
 *
 * It prints each phase as ghr reports it and ends with a one-line summary; exit 0 on success.
 */
import { startDockerPing, standInRunnerDir, spawnGhr } from "../test/support/ghr.ts"
import { createSecret, startMoto } from "../test/support/moto.ts"
import { startFakeGitHub } from "../test/support/fake-github.ts"
import { generateAppKey } from "../test/support/keys.ts"

const phases: Record<string, (r: Record<string, unknown>) => string> = {
  "config.loaded": (r) => `config loaded       ${r["msg"]} (App credentials from Secrets Manager)`,
  "docker.wait": (r) => `waiting for Docker  ${r["msg"]}`,
  "docker.ready": (r) => `Docker ready        after ${r["waitedMs"]} ms`,
  "github.token": () => "token               installation token minted (value redacted)",
  "runner.registered": (r) => `JIT config          ${r["msg"]}`,
  "runner.started": () => "runner started      run.sh with the JIT config in its environment",
  "runner.output": (r) => `  runner | ${r["msg"]}`,
  "runner.exited": (r) => `job done            ${r["msg"]}`,
  "runner.deleted": (r) => `runner deleted      ${r["msg"]}`,
  "ghr.failed": (r) => `FAILED              ${r["msg"]}`
}

const started = performance.now()
const key = generateAppKey()
const github = await startFakeGitHub({
  apps: [{ id: 1001, clientId: "Iv23liDemoApp", slug: "ghr-demo", publicKeyPem: key.publicKeyPem }],
  installations: [{
    id: 2002,
    appId: 1001,
    account: { login: "demo-org", type: "Organization" },
    permissions: { organization_self_hosted_runners: "write", metadata: "read" },
    repositories: "all"
  }]
})
const moto = await startMoto()
const docker = await startDockerPing(1000)
const runner = standInRunnerDir()

let exitCode = 1
try {
  const secretArn = await createSecret(
    moto.endpoint,
    "ghr/demo-app",
    JSON.stringify({ app_id: 1001, installation_id: 2002, private_key: key.privateKeyPem })
  )
  console.log(`demo: fake GitHub at ${github.url}, AWS emulator at ${moto.endpoint}, App secret ${secretArn}\n`)
  const ghr = spawnGhr(["run"], {
    timeoutMs: 60_000,
    env: {
      ...moto.env,
      GITHUB_OWNER: "demo-org",
      GITHUB_URL: github.url,
      GITHUB_API_URL: github.url,
      GHR_APP_SECRET: secretArn,
      RUNNER_LABELS: "self-hosted,linux,demo",
      RUNNER_DIR: runner.dir,
      DOCKER_HOST: docker.dockerHost,
      DOCKER_WAIT_SECONDS: "10",
      GHR_HEALTH_PORT: "0",
      STANDIN_JOB: "echo 'Hello from a job on a ghr runner'; sleep 1"
    }
  })
  let printed = 0
  const printNew = (stdout: string) => {
    const lines = stdout.split("\n").slice(0, -1)
    for (const line of lines.slice(printed)) {
      try {
        const record = JSON.parse(line) as Record<string, unknown>
        const format = phases[String(record["event"])]
        if (format !== undefined) console.log(format(record))
      } catch {
        console.log(line)
      }
    }
    printed = lines.length
  }
  const ticker = setInterval(() => printNew(ghr.output()), 100)
  const result = await ghr.done
  clearInterval(ticker)
  printNew(result.stdout)
  exitCode = result.exitCode
  const apiCalls = github.calls.filter((c) => !c.route.startsWith("/_fake")).length
  const left = github.runners().length
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  console.log(
    `\ndemo ${exitCode === 0 && left === 0 ? "ok" : "FAILED"}: ghr exited ${exitCode}, ${apiCalls} GitHub API calls, ` +
      `${left} runner(s) left registered, ${seconds}s in all`
  )
  if (left !== 0) exitCode = 1
} finally {
  runner.cleanup()
  await docker.stop()
  await moto.stop()
  await github.stop()
}
process.exit(exitCode)
