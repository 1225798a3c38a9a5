#!/usr/bin/env bash
# The GPU check of the CUDA backend, for a lent machine (one H200; ≤ 8 minutes): the CUDA tests, the low-bit GEMM
# and activation-kernel benchmarks (tools/bench_cuda.cpp), stories260K and SmolLM2-135M perplexity on CUDA against
# the CPU for FP, RTN W4A4 and SERQ W4A4 (≤ 1e-3 relative), and whole-model evaluation tokens/s and bytes moved
# between host and backend, for those models and for a LLaMA-2-7B-shaped model of 2 random layers
# (tools/make_random_llama.py, where numpy exists). Writes $OUT/gpu_report.md (or ./gpu_report.md).
#
# The machine has no serq libraries and no network, so tools/gpu_bundle.sh packs .gpu/ here first, and the check
# runs in two device calls on one warm machine (each carries < 64 MiB):
#   bash tools/gpu_check.sh --stage      carry .gpu/serq-gpu.tar.xz and .gpu/smollm2.xz.00: unpacks into .gpu/stage
#   bash tools/gpu_check.sh              carry .gpu/smollm2.xz.01: joins the GGUF, runs the check
# Without SmolLM2's parts it checks stories260K alone and says so.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=.gpu/stage
mkdir -p "$stage/parts"
if [[ -f .gpu/serq-gpu.tar.xz ]]; then tar xJf .gpu/serq-gpu.tar.xz -C "$stage" && rm .gpu/serq-gpu.tar.xz; fi
for part in .gpu/smollm2.xz.*; do [[ -f "$part" ]] && mv "$part" "$stage/parts/"; done
[[ "${1:-}" == "--stage" ]] && { ls -la "$stage" "$stage/parts"; exit 0; }
if [[ ! -x "$stage/bin/serq-run" ]]; then
  echo "gpu_check: $stage has no binaries; run tools/gpu_bundle.sh here, then --stage there" >&2
  exit 1
fi

# CUDA's runtime and cuBLAS come from the machine: the toolkit's folder, or wherever a package put them.
cuda_libs=/usr/local/cuda/lib64
if [[ ! -e "$cuda_libs/libcublas.so.13" ]]; then
  found=$(find /usr /opt -name 'libcublas.so.13' 2>/dev/null | head -1)
  [[ -n "$found" ]] && cuda_libs="$(dirname "$found"):$cuda_libs"
fi
export SERQ_ASSETS="$PWD/$stage/assets" LD_LIBRARY_PATH="$PWD/$stage/lib:$cuda_libs:${LD_LIBRARY_PATH:-}"
smollm2="$SERQ_ASSETS/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ ! -f "$smollm2" ]] && ls "$stage"/parts/smollm2.xz.* >/dev/null 2>&1; then
  mkdir -p "$(dirname "$smollm2")"
  cat "$stage"/parts/smollm2.xz.* | xz -dc > "$smollm2" || rm -f "$smollm2"
fi
report="${OUT:-.}/gpu_report.md"
bin="$stage/bin"
{
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  echo "# serq GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit"
  echo
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | sed 's/^/GPU: /'
  echo
  echo "Libraries: $(ldd "$bin/serq-run" | grep -E 'cublas|cudart|not found' | awk '{print $1, $3}' | tr '\n' ' ')"
  echo
  echo "The low-bit GEMM's SASS (tensor-core IMMA, local-memory LDL/STL), from cuobjdump:"
  cuobjdump --dump-sass "$stage/lowbit_gemm.cubin" 2>&1 | grep -oE 'IMMA[.A-Z0-9]*|LDL|STL' | sort | uniq -c
  echo
  echo "## CUDA tests"
  echo '```'
  timeout 60 "$bin/test_cuda_layout" 2>&1 | tail -3
  timeout 180 "$bin/test_backend_ops" --backend cuda 2>&1 | tail -25
  echo "test_backend_ops --backend cuda: exit ${PIPESTATUS[0]}"
  echo '```'
  echo
  echo "## Low-bit GEMM and activation kernel (tools/bench_cuda.cpp)"
  echo
  timeout 240 "$bin/bench_cuda" --repeats 10 2>&1
  echo
  echo "## Perplexity on CUDA against the CPU (same binary, same machine)"
  echo
  echo "| model | method (W4A4) | ppl cpu | ppl cuda | relative difference (≤ 1e-3) | backend, kernels (cuda run) |"
  echo "|---|---|---|---|---|---|"
} > "$report" 2>&1
speed="$stage/speed.md"  # whole-model evaluation speed and bytes moved, one row per run
echo "| model | method | backend | eval tokens/s | host→backend bytes | backend→host bytes |" > "$speed"
echo "|---|---|---|---|---|---|" >> "$speed"

# One model: fp, rtn and serq at W4A4 (its config's settings), each on the cpu and the cuda backend, in one sweep.
check_model() {
  local name=$1 config=$2; shift 2
  {
    sed -e '/^sweep:/,$d' -e '/^ *alpha:/d' "$config"  # alpha belongs to smoothquant, which this sweep leaves out
    printf 'sweep:\n  quant.method: [fp, rtn, serq]\n  runtime.device: [cpu, cuda]\n'
  } > "$stage/$name.yaml"
  timeout 300 "$bin/serq-run" "$stage/$name.yaml" --set experiment.name="gpu_check_$name" "$@" --json --quiet \
    --out "$stage/results" > "$stage/$name.jsonl" 2>> "$stage/serq-run.log"
  python3 - "$name" "$stage/$name.jsonl" "$speed" >> "$report" <<'PY'
import json, sys
name, path, speed = sys.argv[1], sys.argv[2], sys.argv[3]
runs = {}
with open(speed, "a") as out:
    for line in open(path):
        run = json.loads(line)
        runs[(run["method"], "cuda" if "cuda" in run["backend"] else "cpu")] = run
        rate = run["tokens"] / run["eval_seconds"] if run.get("eval_seconds") else float("nan")
        out.write(f"| {name} | {run['method']} | {run['backend']} | {rate:.0f} | {run.get('host_to_backend_bytes', '?')} "
                  f"| {run.get('backend_to_host_bytes', '?')} |\n")
for method in ("fp", "rtn", "serq"):
    cpu, gpu = runs.get((method, "cpu")), runs.get((method, "cuda"))
    if not cpu or not gpu:
        print(f"| {name} | {method} | {cpu['ppl'] if cpu else 'failed'} | {gpu['ppl'] if gpu else 'failed'} | | |")
        continue
    rel = abs(gpu["ppl"] / cpu["ppl"] - 1)
    print(f"| {name} | {method} | {cpu['ppl']:.6f} | {gpu['ppl']:.6f} | {rel:.2e} {'✓' if rel <= 1e-3 else '✗'} | "
          f"{gpu['backend']}: {gpu['kernels']} |")
PY
}
check_model stories260K configs/w4a4_stories.yaml --set eval.max_windows=4 --set eval.tasks= --set calib.samples=32
if [[ -f "$smollm2" ]]; then
  check_model SmolLM2-135M configs/w4a4_llama.yaml --set eval.max_windows=2 --set eval.tasks= --set calib.samples=8 \
    --set eval.layer_error_samples=0
else
  echo "| SmolLM2-135M | — | not checked: its GGUF parts were not carried | | | |" >> "$report"
fi
# LLaMA-2-7B widths (4096, FFN 11008, 32 heads, vocab 32000) in 2 random BF16 layers: FP evaluation of one window
# of 2048 on the CPU and the GPU, for tokens/s and bytes moved at the shape researchers run.
random7b="$stage/llama2-7b-random-2l"
if python3 -c "import numpy" 2>/dev/null; then
  [[ -f "$random7b/model.safetensors" ]] || python3 tools/make_random_llama.py --shape llama2-7b --layers 2 \
    --out "$random7b" > /dev/null
  cat > "$stage/random7b.yaml" <<YAML
experiment:
  name: gpu_check_llama2_7b_random_2l
model:
  path: $random7b
  tokenizer: $SERQ_ASSETS/tokenizers/llama2/tokenizer.model
quant:
  method: fp
eval:
  dataset: wikitext2
  seq_len: 2048
  max_windows: 1
  batch_size: 1
sweep:
  runtime.device: [cpu, cuda]
YAML
  timeout 240 "$bin/serq-run" "$stage/random7b.yaml" --json --quiet --out "$stage/results" \
    > "$stage/random7b.jsonl" 2>> "$stage/serq-run.log"
  python3 - "$stage/random7b.jsonl" >> "$speed" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    run = json.loads(line)
    rate = run["tokens"] / run["eval_seconds"] if run.get("eval_seconds") else float("nan")
    print(f"| LLaMA-2-7B shape, 2 random layers | fp | {run['backend']} | {rate:.0f} | "
          f"{run.get('host_to_backend_bytes', '?')} | {run.get('backend_to_host_bytes', '?')} |")
PY
else
  echo "| LLaMA-2-7B shape, 2 random layers | — | not measured: no numpy for tools/make_random_llama.py | | | |" >> "$speed"
fi
{ echo; echo "## Whole-model evaluation: tokens/s and bytes moved between host and backend"; echo; cat "$speed"; } >> "$report"

echo >> "$report"
echo "serq-run's log: $(tail -3 "$stage/serq-run.log" 2>/dev/null | tr '\n' ' ')" >> "$report"
cat "$report"
