/**
 * Waits for the Docker daemon of the dind sidecar: `GET /_ping` on DOCKER_HOST until it answers
 * OK or DOCKER_WAIT_SECONDS pass (https://docs.docker.com/reference/api/engine/version/v1.45/#tag/System/operation/SystemPing).
 */
import { request as httpRequest } from "node:http"
import { Clock, Context, Effect, Layer } from "effect"
import { Config } from "./Config.ts"
import { DockerNotReady } from "./Errors.ts"
import * as Log from "./Log.ts"

export type PingResult = { readonly ok: true } | { readonly ok: false; readonly error: string }

/** unix:///path → socketPath; tcp://host:port → host and port. Settings already rejected other schemes. */
export const dockerEndpoint = (dockerHost: string): { socketPath: string } | { host: string; port: number } => {
  if (dockerHost.startsWith("unix://")) return { socketPath: dockerHost.slice("unix://".length) }
  const url = new URL(dockerHost.replace(/^tcp:/, "http:"))
  return { host: url.hostname, port: Number(url.port) }
}

export const ping = (dockerHost: string, timeoutMs = 2000): Promise<PingResult> =>
  new Promise((resolve) => {
    const req = httpRequest({ ...dockerEndpoint(dockerHost), path: "/_ping", method: "GET", timeout: timeoutMs }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk) => (body += chunk))
      res.on("end", () =>
        resolve(res.statusCode === 200 ? { ok: true } : { ok: false, error: `HTTP ${res.statusCode}: ${body.trim().slice(0, 200)}` })
      )
    })
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on("error", (error: NodeJS.ErrnoException) => resolve({ ok: false, error: error.code ?? error.message }))
    req.end()
  })

export class DockerSidecar extends Context.Service<DockerSidecar, {
  /** Resolves once the daemon answers, or fails with DockerNotReady; a no-op for DOCKER_MODE=none or DOCKER_WAIT_SECONDS=0. */
  readonly waitUntilReady: Effect.Effect<void, DockerNotReady>
}>()("ghr/DockerSidecar") {
  static readonly layer = Layer.effect(
    DockerSidecar,
    Effect.gen(function*() {
      const { docker } = yield* Config
      const waitUntilReady = Effect.gen(function*() {
        if (docker.mode === "none" || docker.waitSeconds === 0) return
        const started = yield* Clock.currentTimeMillis
        const deadline = started + docker.waitSeconds * 1000
        let lastError = "not tried"
        let lastReport = started
        yield* Log.event("docker.wait", `waiting up to ${docker.waitSeconds}s for the Docker daemon at ${docker.host}`, { dockerHost: docker.host })
        while (true) {
          const now = yield* Clock.currentTimeMillis
          const result = yield* Effect.promise(() => ping(docker.host, Math.max(200, Math.min(2000, deadline - now))))
          if (result.ok) {
            yield* Log.event("docker.ready", "Docker daemon is ready", { dockerHost: docker.host, waitedMs: now - started })
            return
          }
          lastError = result.error
          const after = yield* Clock.currentTimeMillis
          if (after >= deadline) break
          if (after - lastReport >= 10_000) {
            lastReport = after
            yield* Log.event("docker.wait", `still waiting for the Docker daemon (${lastError})`, { dockerHost: docker.host, waitedMs: after - started })
          }
          yield* Effect.sleep(Math.min(500, deadline - after))
        }
        return yield* new DockerNotReady({ dockerHost: docker.host, waitedSeconds: docker.waitSeconds, lastError })
      })
      return DockerSidecar.of({ waitUntilReady })
    })
  )
}
