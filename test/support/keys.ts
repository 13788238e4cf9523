/** Test keys are generated at test time; none is ever committed. */
import { generateKeyPairSync } from "node:crypto"

export interface TestKeyPair {
  readonly privateKeyPem: string
  readonly publicKeyPem: string
}

export const generateAppKey = (format: "pkcs1" | "pkcs8" = "pkcs1"): TestKeyPair => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  return {
    privateKeyPem: privateKey.export({ type: format, format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString()
  }
}

export const generateEcKey = (): string =>
  generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString()

/** A generated key whose base64 body is replaced: PEM-shaped, but no parser accepts it. */
export const malformedPem = (): string =>
  generateAppKey().privateKeyPem.replace(/(-----\n)[\s\S]*(\n-----END)/, "$1not base64 at all$2")
