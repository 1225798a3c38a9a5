#!/usr/bin/env bash
# End-to-end test of a serq sweep on a real SLURM: starts a private one-node cluster (local_cluster.sh), submits
# the sbatch array job that `serq-run --emit-sbatch` writes for a 4-point sweep, merges the results with
# serq-merge and checks that the merged table holds every run id of `serq-run --dry-run` exactly once.
#
#   test_slurm_sweep.sh BUILD_DIR     (BUILD_DIR holds serq-run and serq-merge)
#
# Exit status: 0 pass, 1 fail, 77 skipped (not root, or slurm-wlm / munge not installed). The cluster's daemons
# and the scratch directory are removed on every exit, Ctrl-C included.
set -euo pipefail

(($# == 1)) || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
skip() { echo "SKIP: $*"; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root to run slurmctld and slurmd"
export PATH=$PATH:/usr/sbin:/sbin  # slurmctld, slurmd and munged live in sbin, which a non-login PATH may lack
for tool in sbatch squeue scontrol slurmctld slurmd munged mungekey; do
  command -v "$tool" >/dev/null || skip "$tool not found (apt-get install slurm-wlm munge)"
done

# Hermetic against an outer SLURM job or sbatch defaults (serq-run takes its shard from SLURM_ARRAY_TASK_ID).
unset "${!SLURM_@}" "${!SBATCH_@}"
# Same default as serq's assets_root(): ../shared beside the source checkout.
export SERQ_ASSETS=${SERQ_ASSETS:-$(cd "$here/../../.." && pwd)/shared}
export OPENBLAS_NUM_THREADS=1  # array tasks inherit the environment; two of them share the node's cores
job_timeout=300                # seconds for the whole array job, queueing included

work=$(mktemp -d)
chmod 755 "$work"  # munged needs the directories above its socket searchable
cluster=$work/cluster
cleanup() {
  "$here/local_cluster.sh" stop "$cluster" || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# If this script is SIGKILLed (ctest's timeout), a detached watchdog stops the cluster and removes $work.
# shellcheck disable=SC2016  # the watchdog's own positional parameters
setsid bash -c 'while kill -0 "$1"; do sleep 2; done; "$2" stop "$3"; rm -rf "$4"' watchdog \
  $$ "$here/local_cluster.sh" "$cluster" "$work" </dev/null >/dev/null 2>&1 &

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

for tool in serq-run serq-merge; do
  [ -x "$build/$tool" ] || fail "no $tool in $build: build it (cmake --build $build --target $tool)"
done
[ -d "$SERQ_ASSETS/models/stories260K-hf" ] || fail "no stories260K-hf under SERQ_ASSETS=$SERQ_ASSETS"

config=$work/sweep.yaml
cat >"$config" <<'EOF'
# tests/slurm: a 4-point round-to-nearest sweep on stories260K, small enough for a test.
experiment:
  name: slurm_sweep
model:
  path: ${SERQ_ASSETS}/models/stories260K-hf
quant:
  method: rtn
eval:
  seq_len: 64
  max_windows: 2
sweep:
  quant.w_bits: [4, 8]
  quant.group_size: [32, channel]
EOF

started=$SECONDS
"$here/local_cluster.sh" start "$cluster"
export SLURM_CONF=$cluster/slurm.conf
echo "cluster started in $((SECONDS - started))s"

results=$work/results
"$build/serq-run" "$config" --out "$results" --emit-sbatch "$work/job.sh"
jobid=$(cd "$work" && sbatch --parsable "$work/job.sh")
jobid=${jobid%%;*}
echo "submitted array job $jobid"

# Every array task's line from scontrol (kept MinJobAge = 300 s after the job ends).
task_lines() { scontrol -o show job "$jobid" 2>/dev/null | grep ArrayTaskId= || true; }
field() { grep -o " $1=[^ ]*" <<<"$2" | head -n1 | cut -d= -f2-; }

# Prints the state and the log of every task that did not complete, then fails with MESSAGE.
fail_with_task_logs() {
  local line log
  while read -r line; do
    [ "$(field JobState "$line")" = COMPLETED ] && continue
    log=$(field StdOut "$line")
    echo "---- task $(field ArrayTaskId "$line"): $(field JobState "$line"), exit $(field ExitCode "$line"), log $log" >&2
    [ -f "$log" ] && tail -n 60 "$log" >&2
  done < <(task_lines)
  fail "$1"
}

deadline=$((SECONDS + job_timeout))
while [ -n "$(squeue -h -j "$jobid" -o %i 2>/dev/null)" ]; do
  if ((SECONDS >= deadline)); then
    squeue -j "$jobid" >&2 || true
    fail_with_task_logs "array job $jobid still running after ${job_timeout}s"
  fi
  sleep 1
done
echo "array job $jobid finished in $((SECONDS - started))s since cluster start"

tasks=$(task_lines)
[ -n "$tasks" ] || fail "scontrol knows no tasks of job $jobid"
grep -v -q " JobState=COMPLETED " <<<"$tasks" && fail_with_task_logs "some tasks of array job $jobid did not complete"

"$build/serq-merge" "$results" --out "$work/merged"
"$build/serq-run" "$config" --dry-run | awk '{print $1}' >"$work/expected_ids"

python3 - "$work/expected_ids" "$work/merged.csv" "$results" <<'EOF'
import collections, csv, pathlib, sys
expected = open(sys.argv[1]).read().split()
if len(expected) != 4 or len(set(expected)) != 4:
    sys.exit(f"FAIL: serq-run --dry-run should list 4 distinct run ids, got {expected}")

def check(what, ids):
    counts = collections.Counter(ids)
    missing = [r for r in expected if counts[r] == 0]
    repeated = [r for r, n in counts.items() if n > 1]
    extra = [r for r in counts if r not in expected]
    if missing or repeated or extra:
        sys.exit(f"FAIL: {what}: missing {missing}, repeated {repeated}, unexpected {extra}")

with open(sys.argv[2], newline="") as f:
    check("merged.csv run ids", [row["run_id"] for row in csv.DictReader(f)])
check("result files <out>/slurm_sweep/<run_id>/run.h5",
      [p.parent.name for p in pathlib.Path(sys.argv[3]).rglob("run.h5") if p.parent.parent.name == "slurm_sweep"])
print(f"merged.csv and the result files hold the {len(expected)} runs of the sweep, each once")
EOF
echo "PASS: slurm sweep in $((SECONDS - started))s"
