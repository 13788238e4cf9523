import { describe, expect, test } from "bun:test"
import { desiredRunners, runnersToRemove, runnersToStart } from "../src/Scaling.ts"

describe("desiredRunners = min(minRunners + totalAssignedJobs, maxRunners)", () => {
  test("cases", () => {
    expect(desiredRunners({ minRunners: 0, maxRunners: 10 }, 0)).toBe(0)
    expect(desiredRunners({ minRunners: 0, maxRunners: 10 }, 3)).toBe(3)
    expect(desiredRunners({ minRunners: 2, maxRunners: 10 }, 3)).toBe(5)
    expect(desiredRunners({ minRunners: 2, maxRunners: 4 }, 3)).toBe(4)
    expect(desiredRunners({ minRunners: 1, maxRunners: 10 }, 0)).toBe(1)
    expect(desiredRunners({ minRunners: 0, maxRunners: 10 }, -2)).toBe(0)
  })
})

describe("runnersToStart", () => {
  const bounds = { minRunners: 0, maxRunners: 5 }
  test("starts the gap between desired and the runners already launched", () => {
    expect(runnersToStart(bounds, 3, 0)).toBe(3)
    expect(runnersToStart(bounds, 3, 1)).toBe(2)
    expect(runnersToStart(bounds, 3, 3)).toBe(0)
  })
  test("never scales down and never exceeds max", () => {
    expect(runnersToStart(bounds, 1, 4)).toBe(0)
    expect(runnersToStart(bounds, 50, 2)).toBe(3)
    expect(runnersToStart(bounds, 50, 5)).toBe(0)
    expect(runnersToStart(bounds, 50, 7)).toBe(0)
  })
  test("property: current + started ≤ max and ≤ max(desired, current)", () => {
    for (let max = 1; max <= 8; max++) {
      for (let desired = 0; desired <= 10; desired++) {
        for (let current = 0; current <= 10; current++) {
          const n = runnersToStart({ minRunners: 0, maxRunners: max }, desired, current)
          expect(n).toBeGreaterThanOrEqual(0)
          if (n > 0) expect(current + n).toBeLessThanOrEqual(Math.min(desired, max))
        }
      }
    }
  })
})

describe("runnersToRemove", () => {
  test("only idle extras above desired", () => {
    expect(runnersToRemove(1, 3, 3)).toBe(2)
    expect(runnersToRemove(1, 3, 1)).toBe(1)
    expect(runnersToRemove(3, 3, 3)).toBe(0)
    expect(runnersToRemove(5, 3, 3)).toBe(0)
    expect(runnersToRemove(0, 2, 0)).toBe(0)
  })
})
