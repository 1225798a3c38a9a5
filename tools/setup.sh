#!/usr/bin/env bash
# Installs serq's Debian 12 dependencies (idempotent: apt-get runs only when a package is missing) and builds
# serq in ./build (Release), after fetching what the main job needs where the assets lack it (tools/fetch_assets.sh).
# Usage: tools/setup.sh [EXTRA_PACKAGE...]   — run as root or with sudo available; extra
# Debian packages (e.g. the test suite's slurm-wlm munge) are installed the same way. The Python packages are for
# the table and plot tools (tools/serq_table.py, tools/serq_plot.py).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config git libeigen3-dev libopenblas-dev libyaml-cpp-dev libhdf5-dev libfmt-dev
          nlohmann-json3-dev catch2 libsentencepiece-dev libpcre2-dev libbz2-dev python3-h5py python3-matplotlib python3-numpy python3-pip "$@")
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

tools/fetch_assets.sh  # the main job's model, texts and tasks, where ${SERQ_ASSETS:-../shared} lacks them

# llama.cpp's own GGUF reader (PyPI: gguf), as a wheel in build/python/ (not installed), for the test that reads
# serq's GGUF exports back with it.
if ! compgen -G "build/python/gguf-*.whl" >/dev/null; then
  python3 -m pip download --no-deps --quiet --disable-pip-version-check -d build/python gguf==0.19.0 ||
    echo "setup: could not fetch the gguf wheel from PyPI; the GGUF read-back test will be skipped"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: built build/serq-run"
