/**
 * Pure decisions about a failed GitHub API call: is it worth retrying, and after how long.
 * Follows GitHub's documented guidance for primary and secondary rate limits
 * (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api).
 */

/** What we keep of a failed response (or of a request that got no response at all). */
export interface HttpFailure {
  /** Undefined when no response arrived (connection refused, DNS, timeout). */
  readonly status: number | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly message: string
}

/** Never wait longer than this for one retry: ghr runs inside a task that has a job waiting. */
export const maxRetryDelayMs = 60_000
/** Without any hint, GitHub asks to wait at least a minute after a secondary rate limit. */
export const secondaryLimitDelayMs = 60_000

const isRateLimited = (failure: HttpFailure): boolean =>
  failure.status === 429 ||
  (failure.status === 403 &&
    (failure.headers["retry-after"] !== undefined ||
      failure.headers["x-ratelimit-remaining"] === "0" ||
      /rate limit/i.test(failure.message)))

export const isRetryable = (failure: HttpFailure): boolean =>
  failure.status === undefined || failure.status >= 500 || isRateLimited(failure)

/**
 * The delay before the next attempt. `backoffMs` is what the exponential schedule proposes;
 * rate-limit headers override it: `retry-after` first, then `x-ratelimit-reset` when no
 * requests remain, else the one-minute floor for secondary limits.
 */
export const retryDelayMs = (failure: HttpFailure, backoffMs: number, nowMs: number): number => {
  if (!isRateLimited(failure)) return Math.min(backoffMs, maxRetryDelayMs)
  const retryAfter = Number(failure.headers["retry-after"])
  if (failure.headers["retry-after"] !== undefined && Number.isFinite(retryAfter) && retryAfter >= 0) {
    return Math.min(retryAfter * 1000, maxRetryDelayMs)
  }
  const reset = Number(failure.headers["x-ratelimit-reset"])
  if (failure.headers["x-ratelimit-remaining"] === "0" && Number.isFinite(reset)) {
    return Math.min(Math.max(reset * 1000 - nowMs, 0) + 1000, maxRetryDelayMs)
  }
  return Math.min(Math.max(backoffMs, secondaryLimitDelayMs), maxRetryDelayMs)
}
