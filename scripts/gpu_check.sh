#!/usr/bin/env bash
# GPU check in parts, each one device call, most important first. On the first GPU you get, run part 0
# and then part 1, and record their output in docs/measurements.md.
#
# Usage: bash scripts/gpu_check.sh --part N [--out DIR]     (N = 0, 1, 2, 3 or all)
#        bash scripts/gpu_check.sh --help
#   part 0 (~3 min): install; 20 s of `harness train` on CUDA for the LSTM and for gpt (chars/s, precision,
#                    utilization, power, energy, the NVML fields that were null); a 2-trial sweep and its
#                    report. It ends on one JSON line of those figures: the first real GPU numbers.
#   part 1 (~7 min): the GPU test tier (pytest -m gpu, 240 s per test) and what each precision mode really
#                    computes in
#   part 2 (~6 min): the side-by-side benchmark: the course configuration and a large batch under `harness
#                    train`, and bench.py's GPU sections (course recipe vs harness, generation, families, MFU)
#   part 3 (~6 min): a 4-trial sweep with telemetry, and bench_workers.py with 1, 2 and 4 workers on this GPU
# Logs, JSON lines and markdown go to $OUT when it is set (what a device call brings back), else to DIR;
# checkpoints, journals and trial trees always go under DIR (default results/gpu-check).
#   PYTHON=...   the interpreter with the CUDA build of torch (default python3)
#   WHEELS=DIR   the wheel folder scripts/gpu_wheels.sh built (default ./wheels where it exists): what this
#                machine's Python lacks, installed with no network; the machine's torch is never replaced
# Every part stops at once, non-zero, where torch sees no CUDA device or a dependency does not import.
# The script's status is the part's: pytest's own for part 1.
set -uo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
part="" bulk="results/gpu-check"
while [ $# -gt 0 ]; do
  case "$1" in
    --part) part="${2:-}"; shift 2 || shift ;;
    --out) bulk="${2:-}"; shift 2 || shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$part" in 0|1|2|3|all) ;; *) echo "gpu_check: give --part 0, 1, 2, 3 or all (see --help)" >&2; exit 2 ;; esac
logs="${OUT:-$bulk}"
mkdir -p "$bulk" "$logs"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
harness() { "$PY" -m harness "$@"; }
tools() { "$PY" scripts/gpu_check_tools.py "$@"; }
stop() { echo "gpu_check: $*"; exit 1; }

preflight() {  # $1: the modules this part needs beyond the harness's own
  command -v "$PY" >/dev/null || stop "no interpreter '$PY' here: set PYTHON to the one that has the CUDA build of torch"
  "$PY" -c 'import sys, platform; print(f"python {sys.executable}: {sys.version.split()[0]} on {platform.machine()}")' \
    || stop "'$PY' does not run"
  "$PY" - <<'PY' || exit 1
import sys
try:
    import torch
except Exception as e:
    sys.exit(f"gpu_check: torch does not import ({type(e).__name__}: {e}): this machine needs a CUDA build of torch (README)")
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA device on this machine: nothing to check, and a GPU "
             f"check without a GPU proves nothing")
print("torch", torch.__version__, "CUDA", torch.version.cuda, "device", torch.cuda.get_device_name(),
      "count", torch.cuda.device_count(), "integrated", torch.cuda.get_device_properties(0).is_integrated)
PY
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,mig.mode.current \
    --format=csv 2>&1
  local wheels="${WHEELS:-}"
  [ -z "$wheels" ] && [ -d wheels ] && wheels=wheels
  if [ -n "$wheels" ]; then
    [ -d "$wheels" ] || stop "WHEELS=$wheels is not a folder: build it with bash scripts/gpu_wheels.sh where there is network"
    tools wheels "$wheels" || exit 1
    "$PY" -c "import torch; print('torch==' + torch.__version__)" > "$bulk/keep-torch.txt"
    echo "installing what is missing from $wheels (torch stays $(cut -d= -f3 "$bulk/keep-torch.txt"))"
    "$PY" -m pip install --quiet --no-index --find-links "$wheels" -c "$bulk/keep-torch.txt" \
      optuna sqlalchemy alembic colorlog tqdm PyYAML pytest pytest-timeout 2>&1 \
      || stop "pip could not install from $wheels (its output is above): rebuild it with bash scripts/gpu_wheels.sh"
  fi
  tools imports torch optuna sqlalchemy alembic pandas numpy pynvml seaborn matplotlib sacrebleu pyarrow $1 \
    || exit 1
}

part0() {
  preflight ""
  echo "--- 0a. the LSTM, 20 s of training on CUDA"
  harness train --device cuda --budget 20s --evals 2 --out "$bulk/part0-lstm" --json > "$bulk/part0-lstm.json" \
    || stop "harness train (lstm) failed: its error is above"
  tools train "$bulk/part0-lstm.json" lstm
  echo "--- 0b. gpt, 20 s of training on CUDA"
  harness train --device cuda --model gpt --embedding-dim 128 --hidden-dim 512 --layers 2 --seq-len 128 \
    --batch-size 64 --lr 1e-3 --budget 20s --evals 2 --out "$bulk/part0-gpt" --json > "$bulk/part0-gpt.json" \
    || stop "harness train (gpt) failed: its error is above"
  tools train "$bulk/part0-gpt.json" gpt
  echo "--- 0c. a 2-trial sweep and its report"
  rm -rf "$bulk/part0-sweep"
  harness sweep studies/demo.toml --device cuda --trials 2 --results "$bulk/part0-sweep" || stop "harness sweep failed"
  harness status "$bulk/part0-sweep" --json > "$bulk/part0-status.json" || stop "harness status failed"
  harness report "$bulk/part0-sweep" --out "$bulk/part0-report" --format png || stop "harness report failed"
  cp "$bulk/part0-report/report.md" "$logs/part0-report.md"
  tools part0 "$bulk/part0-lstm.json" "$bulk/part0-gpt.json" "$bulk/part0-status.json" | tee "$logs/part0.json"
}

part1() {
  preflight "pytest"
  local limit=()
  if "$PY" -c "import pytest_timeout" 2>/dev/null; then
    limit=(--timeout=240)
  else
    echo "gpu_check: pytest-timeout is not installed, so no test has a limit of its own (gpu_wheels.sh adds it)"
  fi
  echo "--- 1a. the GPU test tier"
  "$PY" -m pytest -m gpu -p no:cacheprovider -rA --durations=15 "${limit[@]}" tests/test_gpu.py
  local tier=$?
  echo "--- 1b. what each precision mode really computes in (forward hooks under autocast)"
  "$PY" - <<'PY'
import torch
from harness.common import HarnessError
from harness.models import build_model, family_names
from harness.training import probe, resolve_precision as resolve
d = torch.device("cuda")
for family in family_names():
    m = build_model(family, 60, 32, 64, 2, 0.0).to(d)
    seen = {mode: probe(m, d, mode) for mode in ("bf16", "fp16")}
    try:
        auto = resolve("auto", m, d).describe()
    except HarnessError as e:
        auto = f"refused: {e}"
    print(f"{family:>13}: bf16 autocast -> {seen['bf16']}; fp16 -> {seen['fp16']}; auto = {auto}")
PY
  local probe=$?
  echo "=== gpu_check part 1: the GPU test tier exited $tier (pytest's status; its summary is above), the precision" \
    "probe $probe"
  return $tier
}

part2() {
  preflight ""
  echo "--- 2a. course configuration (E128 H256 L2, seq 50, batch 32), 60 s on CUDA"
  harness train --device cuda --budget 60s --evals 4 --out "$bulk/course" --json > "$bulk/course.json" || exit 1
  tools train "$bulk/course.json" "course configuration"
  echo "--- 2b. larger batch and sequence (E128 H512 L2, seq 128, batch 256), 45 s on CUDA"
  harness train --device cuda --hidden-dim 512 --seq-len 128 --batch-size 256 --lr 2e-3 --budget 45s --evals 3 \
    --out "$bulk/large" --json > "$bulk/large.json" || exit 1
  tools train "$bulk/large.json" "large batch"
  echo "--- 2c. the performance benchmark's GPU sections (recipe vs harness, generation, families, utilization)"
  local corpus=builtin:pydoc
  [ -f ../shared/corpora/theprince.txt ] && corpus=../shared/corpora/theprince.txt
  "$PY" scripts/bench.py --device cuda --corpus "$corpus" --quick \
    --only ceiling,throughput,generation,telemetry,families,gpu --markdown "$logs/performance.md"
}

part3() {
  preflight ""
  echo "--- 3a. four-trial sweep with telemetry"
  rm -rf "$bulk/sweep"
  harness sweep studies/demo.toml --device cuda --trials 4 --results "$bulk/sweep" || exit 1
  harness status "$bulk/sweep" --json | tail -1 > "$logs/part3-status.json"
  tools trials "$bulk/sweep" demo
  echo "--- 3b. trials per hour with 1, 2 and 4 workers on this one GPU, and the rank agreement"
  "$PY" scripts/bench_workers.py --device cuda --workers 1 2 4 --budget 8s
}

run_part() {  # the log is written line by line, so a run killed at its limit keeps what it printed
  echo "=== gpu_check part $1, $(date -u +%Y-%m-%dT%H:%M:%SZ), log in $logs/part$1.log" | tee "$logs/part$1.log"
  ( "part$1" ) 2>&1 | tee -a "$logs/part$1.log"
  local status=${PIPESTATUS[0]}
  echo "=== gpu_check part $1 exited $status" | tee -a "$logs/part$1.log"
  return "$status"
}

if [ "$part" = all ]; then
  worst=0
  for p in 0 1 2 3; do run_part "$p" || worst=$?; [ "$worst" -ne 0 ] && break; done
  exit "$worst"
fi
run_part "$part"
