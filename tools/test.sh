#!/usr/bin/env bash
# Sets up and builds serq (tools/setup.sh), builds the file-parser tests with AddressSanitizer + UBSan in
# ./build-asan and runs them, runs the parsers' libFuzzer harnesses briefly (tools/fuzz.sh, ./build-fuzz), then runs
# the whole test suite with CTest. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# A real SLURM for the cluster test (tests/slurm), which skips without it; clang and its runtimes for the fuzzers.
tools/setup.sh slurm-wlm munge clang libclang-rt-dev

# File parsers (safetensors, GGUF, checkpoints, tokenizers, configs, result files, task files: JSONL and bzip2) under
# the sanitizers.
sanitized=(test_safetensors test_gguf test_loaders test_bpe_tokenizer test_config test_result_file test_tasks)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSERQ_SANITIZE=ON -DSERQ_CUDA=OFF >/dev/null
cmake --build build-asan -j"$(nproc)" --target "${sanitized[@]}"
for t in "${sanitized[@]}"; do
  echo "== $t (ASan + UBSan)"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "build-asan/tests/$t"
done

# The parsers' libFuzzer harnesses from their real seed files, briefly (about 60 s in all; tools/fuzz.sh 600 is the
# long run recorded in docs/FUZZING.md).
echo "== libFuzzer harnesses (tools/fuzz.sh, 7 s each)"
tools/fuzz.sh 7

# ptxas's report of the CUDA low-bit GEMM (registers, shared memory, spills), where nvcc built it.
if [[ -f build/ptxas_lowbit_gemm.txt ]]; then
  echo "== ptxas -v: the low-bit GEMM (core/backend/cuda/lowbit_gemm.cu)"
  grep -E "Compiling entry|registers|spill" build/ptxas_lowbit_gemm.txt
fi

# The whole suite last, so its summary closes the log.
ctest --test-dir build --output-on-failure -j"$(nproc)"
