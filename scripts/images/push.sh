#!/usr/bin/env bash
# Builds both images for linux/amd64 + linux/arm64 and pushes them to Amazon ECR, creating the
# repositories if they are missing. Layers are zstd-compressed (faster Fargate/ECS pulls) unless
# --soci asks for gzip, which SOCI indexes need.
#
#   scripts/images/push.sh --registry 123456789012.dkr.ecr.eu-west-1.amazonaws.com [options]
#
#   --registry HOST     the ECR registry (required); its region is taken from the host name
#   --prefix P          repository prefix, default "ghr" → ghr/ghr-runner, ghr/ghr-dind
#   --tag TAG           default: the Containerfile's RUNNER_VERSION (e.g. 2.338.0)
#   --platforms LIST    default linux/amd64,linux/arm64
#   --only runner|dind  push one of the two
#   --soci              gzip layers, then print the commands that build and push SOCI indexes
#   --build-arg K=V     passed to both builds
#
# Needs: the AWS CLI with credentials for the registry's account (ecr:CreateRepository,
# ecr:DescribeRepositories, ecr:GetAuthorizationToken, ecr:*Layer*, ecr:PutImage), and docker
# buildx with a builder that can build both platforms:
#   docker buildx create --name ghr --driver docker-container --use
#   docker run --privileged --rm tonistiigi/binfmt --install arm64    # when building arm64 on x86
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
DOCKER=${GHR_E2E_DOCKER:-docker}
registry=""
prefix=ghr
tag=""
platforms=linux/amd64,linux/arm64
only=""
soci=0
build_args=()

while (($# > 0)); do
  case "$1" in
    --registry) registry=${2%/}; shift ;;
    --prefix) prefix=${2%/}; shift ;;
    --tag) tag=$2; shift ;;
    --platforms) platforms=$2; shift ;;
    --only) only=$2; shift ;;
    --soci) soci=1 ;;
    --build-arg) build_args+=(--build-arg "$2"); shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "push.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done

say() { echo "push.sh: $*" >&2; }

[[ -n $registry ]] || { say "--registry ACCOUNT.dkr.ecr.REGION.amazonaws.com is required"; exit 64; }
if [[ $registry =~ ^([0-9]{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$ ]]; then
  account=${BASH_REMATCH[1]}
  region=${BASH_REMATCH[2]}
else
  say "$registry is not an ECR registry host (ACCOUNT.dkr.ecr.REGION.amazonaws.com)"; exit 64
fi
command -v aws >/dev/null || { say "the AWS CLI is required (https://docs.aws.amazon.com/cli/)"; exit 1; }
"$DOCKER" buildx version >/dev/null 2>&1 || { say "docker buildx is required"; exit 1; }
tag=${tag:-$(sed -n 's/^ARG RUNNER_VERSION=//p' "$root/Containerfile" | head -1)}

kinds=()
[[ $only != dind ]] && kinds+=(runner)
[[ $only != runner ]] && kinds+=(dind)

for kind in "${kinds[@]}"; do
  repo="$prefix/ghr-$kind"
  if ! aws ecr describe-repositories --region "$region" --registry-id "$account" --repository-names "$repo" >/dev/null 2>&1; then
    say "creating ECR repository $repo"
    aws ecr create-repository --region "$region" --repository-name "$repo" \
      --image-scanning-configuration scanOnPush=true --image-tag-mutability MUTABLE >/dev/null
  fi
done

say "logging in to $registry"
aws ecr get-login-password --region "$region" | "$DOCKER" login --username AWS --password-stdin "$registry"

compression=zstd
((soci)) && compression=gzip
for kind in "${kinds[@]}"; do
  "$here/build.sh" --push --repo "$registry/$prefix" --tag "$tag" --platforms "$platforms" \
    --only "$kind" --compression "$compression" "${build_args[@]}"
  say "pushed $registry/$prefix/ghr-$kind:$tag"
done

if ((soci)); then
  cat >&2 <<MSG
push.sh: gzip layers pushed. To let Fargate lazy-load them, add a SOCI index (v2) per image, e.g.
  with the soci CLI of awslabs/soci-snapshotter (v0.10+) on a host with containerd:
    sudo nerdctl pull --all-platforms $registry/$prefix/ghr-runner:$tag
    sudo soci convert --all-platforms $registry/$prefix/ghr-runner:$tag $registry/$prefix/ghr-runner:$tag-soci
    sudo nerdctl push --all-platforms $registry/$prefix/ghr-runner:$tag-soci
  and point the task definition at the -soci tag. Or deploy AWS's "SOCI Index Builder" (an ECR
  push event → Lambda) and let it index every pushed image. docs/images.md has the trade-offs.
MSG
fi
