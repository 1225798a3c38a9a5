#!/usr/bin/env bash
# Fuzzes serq's file parsers with libFuzzer (harnesses in tests/fuzz/, clang from Debian, ASan + UBSan): GGUF,
# safetensors, tokenizer.json, sentencepiece models, YAML configs, zero-shot task files, bzip2 text, and run.h5 /
# calibration-cache reading (the bytes up to the seal, and the records' contents through merge and --resume). Each harness starts from a seed corpus of real files from ${SERQ_ASSETS:-../shared}
# (and serq-run's own result files), keeps what it finds in build-fuzz/corpus/<harness>/, and stops at the first
# crash, which is saved as build-fuzz/crashes/<harness>-crash-*: turn each into a regression test.
#
# Usage: tools/fuzz.sh [SECONDS_PER_HARNESS] [HARNESS...]   (default 600 s each, every harness; FUZZ_JOBS harnesses
# at once, default nproc)
# Prints one Markdown row per harness (seconds, executions, corpus size, result) for docs/FUZZING.md. Exit status 1
# when any harness crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(fuzz_gguf fuzz_safetensors fuzz_tokenizer_json fuzz_sentencepiece fuzz_config
                                   fuzz_task_jsonl fuzz_bz2 fuzz_result_file fuzz_result_records)
assets="${SERQ_ASSETS:-$(cd .. && pwd)/shared}"
export SERQ_ASSETS="$assets"
build=build-fuzz

CC=clang CXX=clang++ cmake -S . -B "$build" -DSERQ_FUZZ=ON -DSERQ_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${harnesses[@]}" serq-run >/dev/null

# Seeds: real files, copied fresh each time (the harness's own finds stay in corpus/<harness>/).
seeds="$build/seeds"
rm -rf "$seeds"
mkdir -p "$seeds"/{fuzz_gguf,fuzz_safetensors,fuzz_tokenizer_json,fuzz_sentencepiece,fuzz_config,fuzz_task_jsonl,fuzz_bz2}
mkdir -p "$seeds"/{fuzz_result_file,fuzz_result_records}
cp "$assets"/models/smollm2-135m/*.gguf "$seeds/fuzz_gguf/"
cp "$assets"/models/stories260K-hf/model.safetensors "$seeds/fuzz_safetensors/f32.safetensors"
cp "$assets"/models/stories260K-hf-bf16/model.safetensors "$seeds/fuzz_safetensors/bf16.safetensors"
cp "$assets"/reference/smollm2-135m/tokenizer.json "$seeds/fuzz_tokenizer_json/"
cp "$assets"/models/stories260K/tok512.model "$assets"/tokenizers/llama2/tokenizer.model "$seeds/fuzz_sentencepiece/"
cp configs/*.yaml configs/paper/*.yaml "$seeds/fuzz_config/"
# Task files: the harness's first byte picks the task (task_specs() order), the first lines of the real file follow.
task_files=(piqa-official/valid.jsonl llm-foundry/arc_easy.jsonl llm-foundry/arc_challenge.jsonl HELLASWAG
            llm-foundry/winogrande.jsonl llm-foundry/boolq.jsonl llm-foundry/openbook_qa.jsonl llm-foundry/copa.jsonl
            llm-foundry/lambada_openai.jsonl)
for i in "${!task_files[@]}"; do
  if [[ ${task_files[$i]} == HELLASWAG ]]; then
    body() { { bzcat "$assets/data/tasks/hellaswag/hellaswag_val_full.txt.bz2" || true; } | head -n 20 | bzip2 -c; }
  else
    body() { head -n 20 "$assets/data/tasks/${task_files[$i]}"; }
  fi
  { printf "\\x$(printf %02x "$i")"; body; } >"$seeds/fuzz_task_jsonl/task$i"
done
{ bzcat "$assets/data/tasks/hellaswag/hellaswag_val_full.txt.bz2" || true; } | head -c 20000 | bzip2 -c >"$seeds/fuzz_bz2/hellaswag-head.bz2"
head -c 4000 "$assets/data/text/tinystories/TinyStories-train.head2MiB.txt" | bzip2 -c >"$seeds/fuzz_bz2/stories.bz2"
cp "$assets/data/tasks/hellaswag/hellaswag_val_full.txt.bz2" "$seeds/fuzz_bz2/"
# Result files: serq-run's own, from a short RTN run (with per-layer diagnostics) and a SERQ run's calibration cache.
cat >"$build/seed-run.yaml" <<YAML
experiment:
  name: seed
model:
  path: \${SERQ_ASSETS}/models/stories260K-hf
quant:
  method: serq
  rank: 8
calib:
  samples: 2
  seq_len: 128
eval:
  seq_len: 128
  max_windows: 1
  layer_error_samples: 1
YAML
rm -rf "$build/seed-results"
ASAN_OPTIONS=detect_leaks=0 "$build/serq-run" "$build/seed-run.yaml" --quiet --out "$build/seed-results" \
  >"$build/seed-run.log" 2>&1 || { cat "$build/seed-run.log"; exit 1; }
find "$build/seed-results" -name '*.h5' -exec cp {} "$seeds/fuzz_result_file/" \;
cp "$seeds"/fuzz_result_file/* "$seeds/fuzz_result_records/"

declare -A max_len=([fuzz_gguf]=1048576 [fuzz_safetensors]=1100000 [fuzz_tokenizer_json]=4000000
                    [fuzz_sentencepiece]=600000 [fuzz_config]=8192 [fuzz_task_jsonl]=65536 [fuzz_bz2]=65536
                    [fuzz_result_file]=262144 [fuzz_result_records]=4096)
mkdir -p "$build/crashes" "$build/logs"
run_one() {
  local harness="$1" corpus="$build/corpus/$1"
  mkdir -p "$corpus"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$build/tests/fuzz/$harness" "$corpus" "$seeds/$harness" -max_total_time="$seconds" -timeout=60 \
    -rss_limit_mb=4096 -max_len="${max_len[$harness]}" -print_final_stats=1 \
    -artifact_prefix="$build/crashes/$harness-" >"$build/logs/$harness.log" 2>&1
}
export -f run_one
export build seeds seconds
export max_len_spec="$(declare -p max_len)"
failed=0
for harness in "${harnesses[@]}"; do echo "$harness"; done |
  xargs -P "${FUZZ_JOBS:-$(nproc)}" -I{} bash -c 'eval "$max_len_spec"; run_one {}' || failed=1

echo "| harness | seconds | executions | corpus files | result |"
echo "|---|---|---|---|---|"
for harness in "${harnesses[@]}"; do
  log="$build/logs/$harness.log"
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  files=$(find "$build/corpus/$harness" -type f | wc -l)
  result="no crash"
  grep -qE 'ERROR: (libFuzzer|AddressSanitizer|UndefinedBehaviorSanitizer)|runtime error|deadly signal' "$log" &&
    result="CRASH: $(grep -m1 -oE 'ERROR: .*|runtime error: .*' "$log" | cut -c1-80); see $log"
  echo "| $harness | $seconds | $runs | $files | $result |"
done
exit "$failed"
