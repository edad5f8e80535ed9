#!/usr/bin/env bash
# Build (and optionally push) the xdetox images with docker buildx.
#
#   docker/build.sh [--registry REGISTRY] [--push] [--dry-run] [IMAGE ...]
#
# IMAGE is any of: xdetox (CPU), xdetox-train (CUDA training), xdetox-vllm (CUDA generation);
# none means all three. Every image is tagged <registry>/<image>:<version>, the version read from
# pyproject.toml, which is also the version components/images.py names (the installed package's
# version). REGISTRY defaults to $XDETOX_REGISTRY, else ghcr.io/xdetox.
#   --push     push to the registry (run `docker login <registry>` first)
#   --dry-run  print the buildx commands instead of running them (no Docker needed)
# Without --push the image is loaded into the local Docker engine (--load).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
registry="${XDETOX_REGISTRY:-ghcr.io/xdetox}"
push=0
dry_run=0
selected=()

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) [[ $# -ge 2 ]] || { echo "build.sh: --registry needs a value" >&2; exit 2; }
                registry="$2"; shift 2 ;;
    --registry=*) registry="${1#--registry=}"; shift ;;
    --push) push=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "build.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    *) selected+=("$1"); shift ;;
  esac
done
registry="${registry%/}"

# The version has one source of truth: pyproject.toml (tomllib needs Python >= 3.11).
version="$(python3 - "${repo_root}/pyproject.toml" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as fh:
    print(tomllib.load(fh)["project"]["version"])
PY
)" || { echo "build.sh: cannot read the version from pyproject.toml (needs python3 >= 3.11)" >&2; exit 1; }

# image name -> Dockerfile; the names match components/images.py.
declare -A dockerfiles=(
  [xdetox]=docker/base.Dockerfile
  [xdetox-train]=docker/train.Dockerfile
  [xdetox-vllm]=docker/vllm.Dockerfile
)
all_images=(xdetox xdetox-train xdetox-vllm)
[[ ${#selected[@]} -gt 0 ]] || selected=("${all_images[@]}")

for image in "${selected[@]}"; do
  [[ -n "${dockerfiles[$image]:-}" ]] || {
    echo "build.sh: unknown image '${image}' (known: ${all_images[*]})" >&2; exit 2; }
done

for image in "${selected[@]}"; do
  tag="${registry}/${image}:${version}"
  cmd=(docker buildx build
       --platform linux/amd64
       --file "${repo_root}/${dockerfiles[$image]}"
       --build-arg "VERSION=${version}"
       --tag "${tag}")
  if [[ ${push} -eq 1 ]]; then cmd+=(--push); else cmd+=(--load); fi
  cmd+=("${repo_root}")
  if [[ ${dry_run} -eq 1 ]]; then
    printf '%q ' "${cmd[@]}"; printf '\n'
  else
    echo ">> building ${tag}" >&2
    "${cmd[@]}"
  fi
done
