/** Runs an Effect as a bun:test body: scoped, and with the whole Cause printed when it fails. */
import { Cause, Effect, Exit, type Scope } from "effect"

export const runTest = async <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> => {
  const exit = await Effect.runPromiseExit(Effect.scoped(effect))
  if (Exit.isSuccess(exit)) return exit.value
  throw new Error(Cause.pretty(exit.cause))
}

/** Runs an Effect expected to fail and returns its typed error for assertions. */
export const runFailure = async <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<E> => {
  const exit = await Effect.runPromiseExit(Effect.scoped(effect))
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got success: ${JSON.stringify(exit.value)}`)
  const failure = exit.cause.reasons.find(Cause.isFailReason)
  if (failure === undefined) throw new Error(`expected a typed failure, got:\n${Cause.pretty(exit.cause)}`)
  return failure.error
}
