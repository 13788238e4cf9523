/**
 * Builds the self-contained `ghr` executables: dist/ghr-linux-x64 and dist/ghr-linux-arm64.
 * `--host` builds only dist/ghr for this machine (what tests and the demo use).
 */
import { mkdirSync } from "node:fs"

const targets = process.argv.includes("--host")
  ? [{ target: undefined, outfile: "dist/ghr" }]
  : [
    { target: "bun-linux-x64", outfile: "dist/ghr-linux-x64" },
    { target: "bun-linux-arm64", outfile: "dist/ghr-linux-arm64" }
  ]

mkdirSync("dist", { recursive: true })
for (const { target, outfile } of targets) {
  const started = performance.now()
  const args = [
    "build", "--compile", "--minify", "--bytecode", "--format=esm",
    // Bytecode roughly halves start-up time (measured in bench/startup.ts).
    // A CLI must not pick up a .env or bunfig.toml from whatever directory it runs in.
    "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig",
    ...(target === undefined ? [] : [`--target=${target}`]),
    "src/bin.ts", "--outfile", outfile
  ]
  const proc = Bun.spawnSync([process.execPath, ...args], { stdout: "inherit", stderr: "inherit" })
  if (proc.exitCode !== 0) {
    console.error(`build failed for ${target ?? "host"}`)
    process.exit(proc.exitCode ?? 1)
  }
  console.log(`built ${outfile} in ${Math.round(performance.now() - started)} ms`)
}
