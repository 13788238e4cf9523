#!/usr/bin/env bash
# The local end-to-end demo (no AWS or GitHub account needed): installs what it needs, builds
# ghr, then runs one runner lifecycle against a fake GitHub and the moto AWS emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v moto_server >/dev/null 2>&1; then
  echo "error: moto_server (the AWS API emulator) is not installed. Install it with: pip install 'moto[server]'" >&2
  exit 1
fi
exec node_modules/.bin/bun scripts/demo.ts
