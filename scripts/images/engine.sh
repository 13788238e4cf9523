#!/usr/bin/env bash
# A private Docker engine for the image end-to-end tests (and for a developer who has no Docker).
#
#   scripts/images/engine.sh start   # installs docker.io/debootstrap if missing, starts dockerd,
#                                    # prints `export GHR_E2E_ENGINE=unix:///…/docker.sock`
#   scripts/images/engine.sh stop    # stops that dockerd by its PID (and only it)
#   scripts/images/engine.sh status
#
# The daemon touches no host networking: no bridge, no iptables, no IP forwarding or masquerading.
# Containers it runs use `--network none` or `--network host`.
#
# Its data root (images, build cache) lives under GHR_E2E_CACHE (default /var/cache/ghr-e2e) and is
# reused between runs; its socket and PID file live under GHR_E2E_RUN (default /run/ghr-e2e).
# When the engine cannot start, `start` prints a loud reason on stderr, prints no export line and
# exits 0 — the e2e tests then skip, saying why. Set GHR_E2E_REQUIRE_ENGINE=1 to make that fatal.
set -euo pipefail

CACHE=${GHR_E2E_CACHE:-/var/cache/ghr-e2e}
RUN=${GHR_E2E_RUN:-/run/ghr-e2e}
SOCK="$RUN/docker.sock"
PIDFILE="$RUN/dockerd.pid"
LOG="$RUN/dockerd.log"
DOCKER=${GHR_E2E_DOCKER:-/usr/bin/docker}

say() { echo "engine: $*" >&2; }

cannot_start() {
  say "=================================================================="
  say "DOCKER ENGINE UNAVAILABLE: $*"
  say "the image end-to-end tests will be SKIPPED"
  say "=================================================================="
  if [[ "${GHR_E2E_REQUIRE_ENGINE:-}" == 1 ]]; then exit 1; fi
  exit 0
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 && [[ -x /usr/bin/docker ]] || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v zstd >/dev/null 2>&1 || missing+=(zstd)
  if ((${#missing[@]} == 0)); then return 0; fi
  if [[ $(id -u) != 0 ]]; then cannot_start "missing ${missing[*]} and not root to apt-get install them"; fi
  local started=$SECONDS
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps the package from starting a system-wide dockerd of its own.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1; fi
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    ((created_policy)) && rm -f "$policy"
    cannot_start "apt-get install ${missing[*]} failed"
  fi
  ((created_policy)) && rm -f "$policy"
  say "installed ${missing[*]} in $((SECONDS - started)) s"
}

running_pid() {
  [[ -f $PIDFILE ]] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

start() {
  install_packages
  mkdir -p "$CACHE/docker" "$RUN/exec"
  if pid=$(running_pid); then
    say "already running (pid $pid)"
  else
    rm -f "$SOCK" "$PIDFILE"
    # An empty config file keeps /etc/docker/daemon.json (if any) out of this daemon.
    echo '{}' >"$RUN/daemon.json"
    local started=$SECONDS
    # setsid: the daemon is not in the caller's process group, so the caller's job control
    # cannot stop it by accident; `stop` ends it by its PID.
    setsid dockerd \
      --config-file "$RUN/daemon.json" \
      --data-root "$CACHE/docker" \
      --exec-root "$RUN/exec" \
      --pidfile "$PIDFILE" \
      --host "unix://$SOCK" \
      --storage-driver overlay2 \
      --bridge=none --iptables=false --ip-forward=false --ip-masq=false --userland-proxy=false \
      --log-level warn \
      </dev/null >"$LOG" 2>&1 &
    local waited=0
    until DOCKER_HOST="unix://$SOCK" "$DOCKER" version >/dev/null 2>&1; do
      if ! kill -0 $! 2>/dev/null; then
        tail -20 "$LOG" >&2 || true
        cannot_start "dockerd exited during start-up (log above, $LOG)"
      fi
      if ((waited >= 60)); then
        tail -20 "$LOG" >&2 || true
        kill "$!" 2>/dev/null || true
        cannot_start "dockerd did not answer on $SOCK within 30 s"
      fi
      sleep 0.5; waited=$((waited + 1))
    done
    say "dockerd ready on $SOCK in $((SECONDS - started)) s (pid $(cat "$PIDFILE"), data root $CACHE/docker)"
    # Containers and volumes an interrupted run left in the (kept) data root. Only right after a
    # fresh start: a daemon that was already running may be serving another test run right now.
    DOCKER_HOST="unix://$SOCK" "$DOCKER" ps -aq --filter label=ghr-e2e 2>/dev/null \
      | xargs -r env DOCKER_HOST="unix://$SOCK" "$DOCKER" rm -fv >/dev/null 2>&1 || true
    # Keep the cache bounded: untagged images of earlier builds, build cache beyond 4 GB.
    DOCKER_HOST="unix://$SOCK" "$DOCKER" image prune -f >/dev/null 2>&1 || true
    DOCKER_HOST="unix://$SOCK" "$DOCKER" builder prune -f --keep-storage 4GB >/dev/null 2>&1 || true
  fi
  echo "export GHR_E2E_ENGINE=unix://$SOCK"
  echo "export GHR_E2E_DOCKER=$DOCKER"
}

stop() {
  local pid
  if ! pid=$(running_pid); then say "not running"; return 0; fi
  DOCKER_HOST="unix://$SOCK" "$DOCKER" ps -aq --filter label=ghr-e2e 2>/dev/null \
    | xargs -r env DOCKER_HOST="unix://$SOCK" "$DOCKER" rm -f >/dev/null 2>&1 || true
  kill -TERM "$pid"
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= 40)); then say "dockerd (pid $pid) ignored SIGTERM for 20 s; sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; break; fi
    sleep 0.5; waited=$((waited + 1))
  done
  say "stopped dockerd (pid $pid)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if pid=$(running_pid); then echo "running pid $pid socket unix://$SOCK"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac
