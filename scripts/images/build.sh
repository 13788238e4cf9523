#!/usr/bin/env bash
# Builds the ghr runner image (Containerfile) and the dind sidecar image (Containerfile.dind).
#
#   scripts/images/build.sh [options] [--build-arg K=V ...]
#
#   --platforms LIST   default linux/amd64,linux/arm64 (non-native platforms need a buildx builder
#                      with QEMU binfmt, e.g. `docker run --privileged tonistiigi/binfmt --install
#                      arm64`, or a native arm64 builder node)
#   --repo PREFIX      image names PREFIX/ghr-runner and PREFIX/ghr-dind (default: ghr-runner, ghr-dind)
#   --tag TAG          default: the RUNNER_VERSION in the Containerfile, e.g. 2.338.0
#   --only runner|dind build one of the two
#   --push             push a multi-platform image (one manifest list per image); needs buildx
#   --compression C    zstd (default when pushing with buildx) | gzip (needed for SOCI indexes)
#   --host-network     RUN steps use the host network (`--network host`: the CI engine has no bridge)
#   --build-arg K=V    passed to both builds (RUNNER_VERSION, RUNNER_URL, DOCKER_CLI_SOURCE, …)
#
# Without --push, every platform is built and loaded into the local engine separately: one
# platform → NAME:TAG, several → NAME:TAG-amd64, NAME:TAG-arm64. Without buildx (a bare engine
# with BuildKit, like the CI engine here) only the engine's native platform can be built, and
# layers are stored gzip/uncompressed (zstd needs buildx).
#
# Run from anywhere; the build context is the repository root, filtered by Containerfile.dockerignore
# down to dist/ghr-linux-* and containers/. Build the binaries first: node_modules/.bin/bun scripts/build.ts
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DOCKER=${GHR_E2E_DOCKER:-docker}
platforms=linux/amd64,linux/arm64
repo=""
tag=""
only=""
push=0
compression=""
network=()
build_args=()

while (($# > 0)); do
  case "$1" in
    --platforms) platforms=$2; shift ;;
    --repo) repo="${2%/}/"; shift ;;
    --tag) tag=$2; shift ;;
    --only) only=$2; shift ;;
    --push) push=1 ;;
    --compression) compression=$2; shift ;;
    --host-network) network=(--network host) ;;
    --build-arg) build_args+=(--build-arg "$2"); shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done

runner_version=$(sed -n 's/^ARG RUNNER_VERSION=//p' "$root/Containerfile" | head -1)
for a in "${build_args[@]}"; do [[ $a == RUNNER_VERSION=* ]] && runner_version=${a#RUNNER_VERSION=}; done
tag=${tag:-$runner_version}

say() { echo "build.sh: $*" >&2; }

IFS=, read -r -a platform_list <<<"$platforms"
for p in "${platform_list[@]}"; do
  case "$p" in
    linux/amd64) bin=ghr-linux-x64 ;;
    linux/arm64) bin=ghr-linux-arm64 ;;
    *) say "unsupported platform $p (linux/amd64, linux/arm64)"; exit 64 ;;
  esac
  if [[ $only != dind && ! -f "$root/dist/$bin" ]]; then
    say "dist/$bin is missing: run node_modules/.bin/bun scripts/build.ts first"; exit 1
  fi
done

have_buildx=0
if "$DOCKER" buildx version >/dev/null 2>&1; then have_buildx=1; fi
if ((push)) && ((have_buildx == 0)); then
  say "--push needs docker buildx (a multi-platform builder: docker buildx create --use)"; exit 1
fi
if [[ -z $compression ]]; then compression=$( ((have_buildx)) && echo zstd || echo gzip ); fi
case "$compression" in zstd | gzip) ;; *) say "--compression must be zstd or gzip"; exit 64 ;; esac
if ((have_buildx == 0)) && [[ $compression == zstd ]]; then
  say "zstd layer compression needs buildx; this engine stores layers its own way (gzip on push)"
fi

images=()
[[ $only != dind ]] && images+=("runner:Containerfile")
[[ $only != runner ]] && images+=("dind:Containerfile.dind")

native_arch=$("$DOCKER" version --format '{{.Server.Arch}}' 2>/dev/null || dpkg --print-architecture)

for entry in "${images[@]}"; do
  kind=${entry%%:*}
  file=${entry#*:}
  name="${repo}ghr-$kind"
  if ((push)); then
    started=$SECONDS
    say "building and pushing $name:$tag for $platforms ($compression layers)"
    "$DOCKER" buildx build "${network[@]}" "${build_args[@]}" \
      --platform "$platforms" -f "$root/$file" \
      --provenance=false \
      --output "type=image,name=$name:$tag,push=true,oci-mediatypes=true,compression=$compression,compression-level=3,force-compression=true" \
      "$root"
    say "pushed $name:$tag in $((SECONDS - started)) s"
    continue
  fi
  for p in "${platform_list[@]}"; do
    arch=${p#linux/}
    target="$name:$tag"
    ((${#platform_list[@]} > 1)) && target="$name:$tag-$arch"
    started=$SECONDS
    say "building $target ($p)"
    if ((have_buildx)); then
      "$DOCKER" buildx build "${network[@]}" "${build_args[@]}" --platform "$p" -f "$root/$file" --load -t "$target" "$root"
    else
      # BuildKit in the engine runs another architecture's RUN steps only through a registered
      # QEMU binfmt handler (qemu-user-static); without one, skip that platform.
      qemu=${arch/arm64/aarch64}; qemu=${qemu/amd64/x86_64}
      if [[ $arch != "$native_arch" && ! -e /proc/sys/fs/binfmt_misc/qemu-$qemu ]]; then
        say "skipping $p: this engine builds only $native_arch (no buildx, no qemu-$qemu binfmt handler)"; continue
      fi
      DOCKER_BUILDKIT=1 "$DOCKER" build "${network[@]}" "${build_args[@]}" --platform "$p" -f "$root/$file" -t "$target" "$root"
    fi
    say "built $target in $((SECONDS - started)) s ($("$DOCKER" image inspect -f '{{.Size}}' "$target" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
  done
done
