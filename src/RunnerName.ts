import { randomBytes } from "node:crypto"
import { runnerNameSuffixLength } from "./Settings.ts"

const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

/**
 * A unique runner name: the configured prefix, "-", and a random lower-case suffix. Settings
 * already bounds the prefix so the whole name fits GitHub's 64-character limit.
 */
export const runnerName = (prefix: string, random: (size: number) => Uint8Array = randomBytes): string => {
  const bytes = random(runnerNameSuffixLength)
  let suffix = ""
  for (const byte of bytes) suffix += alphabet[byte % alphabet.length]
  return `${prefix}-${suffix}`
}
