#!/usr/bin/env bash
# Packs what tools/gpu_check.sh needs on a lent GPU machine into .gpu/ (git-ignored): that machine has CUDA, CMake and
# Python but none of serq's Debian libraries, and it reaches no network. So this builds here (nvcc, sm_90), and
# .gpu/ gets:
#   serq-gpu.tar.xz   the binaries (serq-run, test_backend_ops, test_cuda_layout, bench_cuda), the shared libraries
#                     they load that a CUDA image lacks, and the assets of the checks (stories260K, text data)
#   smollm2.xz.00, .01  SmolLM2-135M's GGUF, xz-compressed, cut so that each device call carries < 64 MiB
# Then, with the device tool (one machine, warm between the two calls):
#   run(command="bash tools/gpu_check.sh --stage", carry=[".gpu/serq-gpu.tar.xz", ".gpu/smollm2.xz.00"])
#   run(command="bash tools/gpu_check.sh", carry=[".gpu/smollm2.xz.01"], timeout_s=540)
# Usage: tools/gpu_bundle.sh   (SERQ_ASSETS as for the tests; builds ./build first)
set -euo pipefail
cd "$(dirname "$0")/.."
assets="${SERQ_ASSETS:-$(cd .. && pwd)/shared}"
gguf="$assets/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
[[ -f "$gguf" ]] || { echo "gpu_bundle: $gguf is missing; set SERQ_ASSETS" >&2; exit 1; }
command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] || { echo "gpu_bundle: no nvcc here" >&2; exit 1; }

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build build -j"$(nproc)" --target serq-run test_backend_ops test_cuda_layout bench_cuda serq_ptxas_report

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/assets/models" "$stage/assets/data"
cp build/serq-run build/tests/test_backend_ops build/tests/test_cuda_layout build/bench_cuda "$stage/bin/"
cp build/lowbit_gemm.cubin build/ptxas_lowbit_gemm.txt "$stage/"  # the GEMM's machine code, for its SASS there
# Every library the binaries load but the C runtime, the driver and cuBLAS (too large to carry; the GPU machine has it).
ldd "$stage"/bin/* | awk '/=> \// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libcuda|libcublas|libcublasLt)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
for model in "$assets"/models/stories260K*; do cp -r "$model" "$stage/assets/models/"; done
cp -r "$assets/data/text" "$stage/assets/data/"
cp -r "$assets/tokenizers" "$stage/assets/"  # LLaMA-2's tokenizer, for the 7B-shaped random model
mkdir -p .gpu
rm -f .gpu/serq-gpu.tar.xz .gpu/smollm2.xz.*
tar cf - -C "$stage" . | xz -6 -T"$(nproc)" > .gpu/serq-gpu.tar.xz
# The first call carries the bundle, the first part and the repository (< 64 MiB in all); the second the rest.
repo_kib=$(git ls-files -z | du -cb --files0-from=- | tail -1 | awk '{print int($1 / 1024)}')
first_kib=$(( 62 * 1024 - $(du -k .gpu/serq-gpu.tar.xz | cut -f1) - repo_kib ))
xz -6 -T"$(nproc)" -c "$gguf" > "$stage/smollm2.xz"
head -c "${first_kib}K" "$stage/smollm2.xz" > .gpu/smollm2.xz.00
tail -c +$(( first_kib * 1024 + 1 )) "$stage/smollm2.xz" > .gpu/smollm2.xz.01
ls -la .gpu
echo "device call 1: run(command=\"bash tools/gpu_check.sh --stage\","
echo "                  carry=[\".gpu/serq-gpu.tar.xz\", \".gpu/smollm2.xz.00\"])"
echo "device call 2: run(command=\"bash tools/gpu_check.sh\", carry=[\".gpu/smollm2.xz.01\"], timeout_s=540)"
