#!/usr/bin/env bash
# Installs what ghr's demo and tests need on a fresh Debian machine with Node 20 and npm:
# the npm packages (pinned by package-lock.json, bun among them), then the compiled binary.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/bun ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "==> building dist/ghr"
node_modules/.bin/bun scripts/build.ts --host
