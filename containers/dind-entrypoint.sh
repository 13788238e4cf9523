#!/bin/sh
# Entrypoint of the ghr dind sidecar (Containerfile.dind): prepares what dockerd needs inside a
# container and execs it, so dockerd is PID 1 and SIGTERM reaches it directly — it then stops its
# containers (daemon.json shutdown-timeout), removes its socket and exits 0.
#
# dockerd reads /etc/docker/daemon.json (socket unix:///var/run/dind/docker.sock, group 123,
# overlay2, log limits, MTU). Extra arguments are passed to dockerd, e.g. `--bridge=none
# --iptables=false` where the sidecar must not create a bridge; DIND_DOCKERD_ARGS works the same.
set -eu

log() { echo "dind: $*" >&2; }

# Without CAP_SYS_ADMIN (bit 21) dockerd cannot mount anything: that is every AWS Fargate task
# (no privileged mode; only SYS_PTRACE can be added). Say so plainly, then let dockerd fail with
# its own error.
cap_eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
if [ $(( (0x$cap_eff >> 21) & 1 )) -ne 1 ]; then
  log "================================================================================"
  log "this container is not privileged (no CAP_SYS_ADMIN): dockerd cannot run here."
  log "On AWS Fargate a Docker daemon cannot run at all. Run the dind sidecar with"
  log "privileged: true on ECS Managed Instances or ECS on EC2, or set DOCKER_MODE=none."
  log "================================================================================"
else
  # cgroup v2 (ECS Managed Instances / AL2023): move ourselves out of the root cgroup and enable
  # the controllers for nested containers, as the docker:dind image does.
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
    sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers \
      >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || :
  fi
  # Mount propagation for bind mounts of nested containers; securityfs for AppArmor if present.
  mount --make-rshared / 2>/dev/null || :
  if [ -d /sys/kernel/security ] && ! mountpoint -q /sys/kernel/security; then
    mount -t securityfs none /sys/kernel/security 2>/dev/null || :
  fi
fi

mkdir -p /var/run/dind
# A socket or PID file left by a previous run of this container would make dockerd refuse to start.
rm -f /var/run/dind/docker.sock /var/run/docker.pid

# shellcheck disable=SC2086 # DIND_DOCKERD_ARGS is a list of flags
exec dockerd ${DIND_DOCKERD_ARGS:-} "$@"
