#!/usr/bin/env bash
# Installs serq's Debian 12 dependencies (idempotent: apt-get runs only when a package is missing) and builds
# serq in ./build (Release), after fetching the main job's model where the assets lack it (tools/fetch_assets.sh). Usage: tools/setup.sh [EXTRA_PACKAGE...]   — run as root or with sudo available; extra
# Debian packages (e.g. the test suite's slurm-wlm munge) are installed the same way. The Python packages are for
# the table and plot tools (tools/serq_table.py, tools/serq_plot.py).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config git libeigen3-dev libopenblas-dev libyaml-cpp-dev libhdf5-dev libfmt-dev
          nlohmann-json3-dev catch2 libsentencepiece-dev libpcre2-dev libbz2-dev python3-h5py python3-matplotlib python3-numpy "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

tools/fetch_assets.sh  # the main job's model, when ${SERQ_ASSETS:-../shared} lacks it

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: built build/serq-run"
