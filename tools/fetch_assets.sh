#!/usr/bin/env bash
# Makes sure the main job's model, texts and zero-shot tasks are on this machine: anything missing from
# ${SERQ_ASSETS:-../shared} is fetched from its public home, checked against tools/assets.sha256 and put in the cache
# serq reads when ../shared is absent (tools/fetch_assets.py says how; SERQ_FETCH_MIRROR=BASE fetches from a mirror).
# Usage: tools/fetch_assets.sh [--quiet]   (tools/setup.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 tools/fetch_assets.py "$@"
