/**
 * The scaling rule of runner scale sets (ARC's listener and actions/scaleset use the same):
 * one ephemeral runner per assigned job, plus `minRunners` idle ones, never more than `maxRunners`.
 */

export interface Bounds {
  readonly minRunners: number
  readonly maxRunners: number
}

/** desired = min(minRunners + totalAssignedJobs, maxRunners), never below 0. */
export const desiredRunners = (bounds: Bounds, totalAssignedJobs: number): number =>
  Math.max(0, Math.min(bounds.minRunners + Math.max(0, totalAssignedJobs), bounds.maxRunners))

/**
 * How many runner tasks to start now: the gap between `desired` and the runners this controller
 * already launched and has not seen finish (`current`), capped so the total never exceeds
 * `maxRunners`. Scaling down is never done by this function: ephemeral runners leave by themselves.
 */
export const runnersToStart = (bounds: Bounds, desired: number, current: number): number => {
  const target = Math.min(Math.max(0, desired), bounds.maxRunners)
  return Math.max(0, Math.min(target - current, bounds.maxRunners - current))
}

/**
 * How many idle runners to remove when more are running than desired (a job was cancelled, or
 * GHR_MIN_RUNNERS was lowered). Only idle ones are candidates: a busy runner finishes its job.
 */
export const runnersToRemove = (desired: number, current: number, idle: number): number =>
  Math.max(0, Math.min(current - Math.max(0, desired), idle))
