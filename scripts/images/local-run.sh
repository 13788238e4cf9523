#!/usr/bin/env bash
# Runs the runner image and the dind sidecar together on a developer machine, like one ECS task:
# the sidecar's dockerd on a socket in a shared volume, `ghr run` in the runner container. The
# runner registers with GitHub for real, takes one job (ephemeral) and both containers stop.
#
#   export GITHUB_OWNER=my-org GITHUB_REPOSITORY=my-repo          # repository omitted: org runners
#   export GITHUB_APP_ID=123456 GITHUB_APP_INSTALLATION_ID=987654
#   export GITHUB_APP_PRIVATE_KEY="$(cat my-app.private-key.pem)"
#   scripts/images/local-run.sh [--runner IMAGE] [--dind IMAGE] [--no-dind] [-e NAME=VALUE ...]
#
#   --runner IMAGE   default ghr-runner:<RUNNER_VERSION> (scripts/images/build.sh --platforms <yours>)
#   --dind IMAGE     default ghr-dind:<RUNNER_VERSION>
#   --no-dind        no sidecar, DOCKER_MODE=none (what a Fargate task without Docker does)
#   -e NAME=VALUE    extra environment for the runner container (RUNNER_LABELS, LOG_LEVEL, …)
#
# Every GITHUB_*, RUNNER_*, DOCKER_WAIT_SECONDS, LOG_* and GHR_* variable set in your shell is
# passed to the runner container. Ctrl-C stops the runner (it deregisters) and then the sidecar.
# The sidecar runs with --privileged; where that is refused (rootless or restricted engines),
# set DIND_FLAGS to what your engine allows (see test/e2e/images.test.ts for an equivalent set).
# DIND_ARGS are passed to the sidecar's dockerd (e.g. "--bridge=none --iptables=false").
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DOCKER=${DOCKER:-docker}
version=$(sed -n 's/^ARG RUNNER_VERSION=//p' "$root/Containerfile" | head -1)
runner_image="ghr-runner:$version"
dind_image="ghr-dind:$version"
use_dind=1
extra_env=()

while (($# > 0)); do
  case "$1" in
    --runner) runner_image=$2; shift ;;
    --dind) dind_image=$2; shift ;;
    --no-dind) use_dind=0 ;;
    -e) extra_env+=(-e "$2"); shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "local-run.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done

id="ghr-local-$$"
volume="$id-sock"
say() { echo "local-run: $*" >&2; }

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  "$DOCKER" rm -f "$id-runner" >/dev/null 2>&1 || true
  if ((use_dind)); then
    "$DOCKER" stop -t 30 "$id-dind" >/dev/null 2>&1 || true
    "$DOCKER" rm -fv "$id-dind" >/dev/null 2>&1 || true
    "$DOCKER" volume rm -f "$volume" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'say "stopping the runner (SIGTERM: it deregisters)"; "$DOCKER" kill --signal TERM "$id-runner" >/dev/null 2>&1 || true' INT TERM

env_args=()
while IFS='=' read -r name _; do
  case "$name" in
    GITHUB_* | RUNNER_* | DOCKER_WAIT_SECONDS | DOCKER_MODE | LOG_* | GHR_*) env_args+=(-e "$name") ;;
  esac
done < <(env)

if ((use_dind)); then
  "$DOCKER" volume create "$volume" >/dev/null
  read -r -a dind_flags <<<"${DIND_FLAGS:---privileged}"
  read -r -a dind_args <<<"${DIND_ARGS:-}"
  say "starting the dind sidecar ($dind_image)"
  "$DOCKER" run -d --name "$id-dind" "${dind_flags[@]}" \
    -v "$volume:/var/run/dind" -v /var/lib/docker "$dind_image" "${dind_args[@]}" >/dev/null
  for _ in $(seq 60); do
    status=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$id-dind" 2>/dev/null || echo gone)
    [[ $status == healthy ]] && break
    if [[ $status == gone ]] || [[ $("$DOCKER" inspect -f '{{.State.Running}}' "$id-dind") != true ]]; then
      "$DOCKER" logs "$id-dind" 2>&1 | tail -20 >&2
      say "the dind sidecar did not start (log above)"; exit 1
    fi
    sleep 1
  done
  say "sidecar healthy; starting the runner ($runner_image)"
  # Sharing the sidecar's network namespace, as containers of one awsvpc task share theirs.
  "$DOCKER" run --name "$id-runner" --network "container:$id-dind" \
    -v "$volume:/var/run/dind" "${env_args[@]}" "${extra_env[@]}" "$runner_image" &
else
  say "starting the runner without Docker ($runner_image)"
  "$DOCKER" run --name "$id-runner" -e DOCKER_MODE=none "${env_args[@]}" "${extra_env[@]}" "$runner_image" &
fi
runner_pid=$!
# A signal interrupts `wait`; keep waiting until the runner has deregistered and exited.
while kill -0 "$runner_pid" 2>/dev/null; do wait "$runner_pid" || true; done
code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$id-runner" 2>/dev/null || echo 1)
say "runner exited with $code"
exit "$code"
