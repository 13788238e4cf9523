import { createServer } from "node:http"
import { Context, Effect, Layer, Ref } from "effect"
import { ConfigError } from "./Errors.ts"

export type Phase = "starting" | "waiting-docker" | "registered" | "running" | "draining"

/**
 * The lifecycle phase, served as JSON on http://127.0.0.1:<GHR_HEALTH_PORT>/healthz so that
 * `ghr health` can be the ECS container health check. Loopback only: nothing outside the task
 * needs it, and a job must not be able to reach it from another host.
 */
export class Health extends Context.Service<Health, {
  setPhase(phase: Phase): Effect.Effect<void>
}>()("ghr/Health") {
  static readonly layer = (port: number) =>
    Layer.effect(
      Health,
      Effect.gen(function*() {
        const phase = yield* Ref.make<Phase>("starting")
        const startedAt = new Date().toISOString()
        if (port > 0) {
          yield* Effect.acquireRelease(
            Effect.callback<ReturnType<typeof createServer>, ConfigError>((resume) => {
              const server = createServer((request, response) => {
                if (request.url !== "/healthz") {
                  response.writeHead(404).end()
                  return
                }
                const body = JSON.stringify({ status: "ok", phase: Ref.getUnsafe(phase), startedAt })
                response.writeHead(200, { "content-type": "application/json" }).end(body)
              })
              server.once("error", (error) =>
                resume(Effect.fail(
                  new ConfigError({
                    problems: [{
                      setting: "GHR_HEALTH_PORT",
                      problem: `cannot listen on 127.0.0.1:${port} (${error.message}); choose a free port, or 0 to disable the health endpoint`
                    }]
                  })
                )))
              server.listen(port, "127.0.0.1", () => resume(Effect.succeed(server)))
            }),
            (server) => Effect.callback<void>((resume) => {
              server.close(() => resume(Effect.void))
              server.closeAllConnections()
            })
          )
        }
        return Health.of({ setPhase: (next) => Ref.set(phase, next) })
      })
    )
}

/** `ghr health`: asks the local /healthz and answers with an exit code ECS understands. */
export const probe = (port: number, timeoutMs = 3000) =>
  Effect.tryPromise({
    try: async () => {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(timeoutMs) })
      return { ok: response.status === 200, body: await response.text() }
    },
    catch: (cause) => (cause instanceof Error ? cause.message : String(cause))
  })
