#!/usr/bin/env bash
# Builds a stand-in for `debian:bookworm-slim` with debootstrap and loads it into the engine at
# DOCKER_HOST under that exact name, so the Containerfiles' FROM lines stay unchanged where no
# registry is reachable. Anyone who can pull from Docker Hub does not need this.
#
#   DOCKER_HOST=unix:///run/ghr-e2e/docker.sock scripts/images/base-image.sh [--force]
#
# The root file system is made like the official slim image (minbase, no docs/man pages/locales,
# the same dpkg path excludes and apt "docker-clean" settings) and cached as a tarball under
# GHR_E2E_CACHE (default /var/cache/ghr-e2e), so later runs only `docker import` it (or skip
# even that when the engine already has the image).
set -euo pipefail

CACHE=${GHR_E2E_CACHE:-/var/cache/ghr-e2e}
DOCKER=${GHR_E2E_DOCKER:-docker}
SUITE=bookworm
IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
# Another architecture (BASE_ARCH=arm64) needs qemu-user-static with its binfmt handler registered.
ARCH=${BASE_ARCH:-$(dpkg --print-architecture)}
TARBALL="$CACHE/debian-$SUITE-slim-$ARCH.tar.zst"
FORCE=0
[[ "${1:-}" == --force ]] && FORCE=1

say() { echo "base-image: $*" >&2; }

# The Debian mirror this machine's apt uses (deb822 or one-line format), else deb.debian.org.
mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m=$(grep -hsE '^URIs:.*/debian/?$' /etc/apt/sources.list.d/*.sources | head -1 | awk '{print $2}')
  [[ -z $m ]] && m=$(grep -hsE '^deb +(\[[^]]*\] +)?https?://[^ ]+/debian/? +bookworm' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    | head -1 | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1}')
  echo "${m:-http://deb.debian.org/debian}"
}

if ((FORCE == 0)) && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  say "$IMAGE already in the engine"
  exit 0
fi

if ((FORCE == 1)) || [[ ! -s $TARBALL ]]; then
  command -v debootstrap >/dev/null || { say "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
  started=$SECONDS
  work=$(mktemp -d /var/tmp/ghr-base.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  root="$work/rootfs"
  m=$(mirror)
  say "debootstrap --variant=minbase $SUITE from $m"
  debootstrap --variant=minbase --arch "$ARCH" "$SUITE" "$root" "$m" >"$work/debootstrap.log" 2>&1 \
    || { tail -30 "$work/debootstrap.log" >&2; exit 1; }

  # What the official slim images do (debuerreotype's slimify + docker apt tweaks).
  mkdir -p "$root/etc/dpkg/dpkg.cfg.d" "$root/etc/apt/apt.conf.d"
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'APT::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  echo 'force-unsafe-io' >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/usr/share/groff/"* "$root/usr/share/lintian/"*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  # Same apt sources as the official image (deb822), pointing at the mirror used here.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<CFG
Types: deb
URIs: $m
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${m%/debian}/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
CFG
  rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb \
    "$root/var/log/"*.log "$root/var/log/apt/"* "$root/debootstrap" "$root/tmp/"* "$root/run/"*
  : >"$root/etc/machine-id"
  echo debian >"$root/etc/hostname"
  mkdir -p "$CACHE"
  tar -C "$root" --numeric-owner -cf - . | zstd -q -T0 -3 -o "$TARBALL.tmp"
  mv "$TARBALL.tmp" "$TARBALL"
  say "built $TARBALL ($(du -h "$TARBALL" | cut -f1) compressed, $(du -sh "$root" | cut -f1) unpacked) in $((SECONDS - started)) s"
fi

started=$SECONDS
if [[ $ARCH == "$(dpkg --print-architecture)" ]]; then
  zstd -q -d -c "$TARBALL" | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "debootstrap stand-in for $IMAGE (scripts/images/base-image.sh)" \
    - "$IMAGE" >/dev/null
else
  # `docker import` records the engine's own architecture; FROM scratch + ADD records the target's.
  ctx=$(mktemp -d /var/tmp/ghr-base-ctx.XXXXXX)
  trap 'rm -rf "$ctx"' EXIT
  zstd -q -d -o "$ctx/rootfs.tar" "$TARBALL"
  printf 'FROM scratch\nADD rootfs.tar /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD ["bash"]\n' >"$ctx/Dockerfile"
  DOCKER_BUILDKIT=1 "$DOCKER" build -q --platform "linux/$ARCH" -t "$IMAGE" "$ctx" >/dev/null
fi
say "loaded $IMAGE (linux/$ARCH) in $((SECONDS - started)) s"
