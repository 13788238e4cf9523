import { Context, Deferred, Effect, Layer } from "effect"

export type StopSignal = "SIGTERM" | "SIGINT"

/**
 * The first SIGTERM/SIGINT ghr receives. ghr decides itself what a signal means in each phase
 * (abort before the runner starts, forward to the runner once it runs), instead of letting the
 * runtime interrupt everything at once and lose the runner's exit code.
 */
export class Signals extends Context.Service<Signals, {
  readonly received: Effect.Effect<StopSignal>
}>()("ghr/Signals") {
  static readonly layer = Layer.effect(
    Signals,
    Effect.gen(function*() {
      const first = yield* Deferred.make<StopSignal>()
      const onTerm = () => Deferred.doneUnsafe(first, Effect.succeed("SIGTERM" as const))
      const onInt = () => Deferred.doneUnsafe(first, Effect.succeed("SIGINT" as const))
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          process.on("SIGTERM", onTerm)
          process.on("SIGINT", onInt)
        }),
        () =>
          Effect.sync(() => {
            process.off("SIGTERM", onTerm)
            process.off("SIGINT", onInt)
          })
      )
      return Signals.of({ received: Deferred.await(first) })
    })
  )

  /** A signal source the test completes by hand. */
  static readonly layerTest = (signal: Deferred.Deferred<StopSignal>) =>
    Layer.succeed(Signals, Signals.of({ received: Deferred.await(signal) }))
}
