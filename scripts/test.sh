#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, type-checks, lints the
# CloudFormation template, starts a private Docker engine for the container end-to-end tests,
# runs every bun test, and ends with the line "N passed, N failed" from the real counts.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup.sh

for tool in moto_server cfn-lint; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool is not installed. Install it with: pip install 'moto[server]' cfn-lint" >&2
    exit 1
  fi
done

echo "==> tsc --noEmit"
node_modules/.bin/tsc --noEmit -p .

# A private Docker engine for the container end-to-end tests (test/e2e): installs docker.io and
# debootstrap with apt-get when missing, and prints the exports the tests read. When no engine
# can start here it says so loudly and the e2e file skips.
engine_env=$(bash scripts/images/engine.sh start) || { echo "error: scripts/images/engine.sh start failed" >&2; exit 1; }
eval "$engine_env"
trap 'bash scripts/images/engine.sh stop' EXIT

mkdir -p .tmp
junit="$root/.tmp/junit.xml"
rm -f "$junit"

echo "==> bun test"
set +e
node_modules/.bin/bun test --reporter=junit --reporter-outfile="$junit" "$@"
status=$?
set -e

if [ ! -s "$junit" ]; then
  echo "error: bun test wrote no report ($junit)" >&2
  echo "0 passed, 0 failed"
  exit 1
fi
# Counts come from the JUnit report bun wrote, not from its console summary.
read -r tests failures errors skipped < <(node -e '
  const xml = require("fs").readFileSync(process.argv[1], "utf8")
  const m = /<testsuites[^>]*>/.exec(xml)[0]
  const n = (k) => Number((new RegExp(k + "=\"(\\d+)\"").exec(m) || [0, 0])[1])
  console.log(n("tests"), n("failures"), n("errors"), n("skipped"))
' "$junit")
failed=$((failures + errors))
passed=$((tests - failed - skipped))
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
if [ "$tests" -eq 0 ]; then
  echo "error: no tests ran" >&2
  exit 1
fi
if [ "$status" -ne 0 ] || [ "$failed" -gt 0 ]; then exit 1; fi
