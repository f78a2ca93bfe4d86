#!/usr/bin/env bash
# GPU check in parts, each one device call of under 8 minutes on an H200, most important first.
# Run part 1 first on the first GPU you get, and record its output in docs/measurements.md.
#
# Usage: bash scripts/gpu_check.sh --part N [--out DIR]     (N = 1, 2, 3 or all; DIR default results/gpu-check)
#        bash scripts/gpu_check.sh --help
#   part 1 (~5 min): the GPU test tier (python -m pytest -m gpu), what each precision mode really computes in
#   part 2 (~6 min): one side-by-side benchmark: the course configuration and a large batch under `harness
#                    train`, and bench.py's GPU sections (course recipe vs harness, generation, families, MFU)
#   part 3 (~6 min): a 4-trial sweep with telemetry, and bench_workers.py with 1, 2 and 4 workers on this GPU
#                    (trials per hour, rank agreement, each configuration's sharing gain)
# Each part writes its log to DIR/partN.log and its files under DIR.
#   WHEELS=DIR   install the Python dependencies this machine lacks from a folder of wheels made
#                beforehand with scripts/gpu_wheels.sh (no network needed; the machine's torch is
#                never replaced). The harness itself runs from this checkout (PYTHONPATH).
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
part="" out="${OUT:-results/gpu-check}"
while [ $# -gt 0 ]; do
  case "$1" in
    --part) part="${2:-}"; shift 2 ;;
    --out) out="${2:-}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$part" in 1|2|3|all) ;; *) echo "gpu_check: give --part 1, 2, 3 or all (see --help)" >&2; exit 2 ;; esac
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
harness() { python -m harness "$@"; }

setup() {
  if [ -n "${WHEELS:-}" ]; then
    python -c "import torch; print('torch==' + torch.__version__)" > "$out/keep-torch.txt"
    python -m pip install --quiet --no-index --find-links "$WHEELS" -c "$out/keep-torch.txt" \
      optuna sqlalchemy alembic colorlog tqdm PyYAML pytest
  fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,mig.mode.current --format=csv || true
  python - <<'PY'
import torch
assert torch.cuda.is_available(), "torch sees no CUDA GPU: install a CUDA build of torch (README)"
print("torch", torch.__version__, "CUDA", torch.version.cuda, "device", torch.cuda.get_device_name(),
      "count", torch.cuda.device_count())
PY
}

summarize() {
  python - "$1" "$2" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
t = s["telemetry"]
fmt = lambda v, f: "-" if v is None else format(v, f)
print(f"== {sys.argv[2]}: held-out {fmt(s['val_bpc'], '.4f')} bpc, {s['train_chars_per_s']:,.0f} chars/s, "
      f"{s['device_seconds']:.1f} device-s")
print(f"   GPU util mean {fmt(t['util_mean'], '.1f')}% p95 {fmt(t['util_p95'], '.1f')}%, power {fmt(t['power_mean_w'], '.1f')} W, "
      f"energy {fmt(t['energy_j'], '.1f')} J ({fmt(t['joules_per_char'] and t['joules_per_char'] * 1e3, '.4f')} mJ/char), "
      f"peak mem {fmt(t['peak_mem_bytes'] and t['peak_mem_bytes'] / 2**20, ',.0f')} MiB ({t['peak_mem_source']}), "
      f"MFU {fmt(t['mfu'] and t['mfu'] * 100, '.2f')}% of {t['matmul_tflops']:.1f} TFLOP/s measured")
print(f"   unsupported NVML fields: {', '.join(t['unsupported']) or 'none'}")
PY
}


part1() {
echo "--- 1a. the GPU test tier"
python -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -25 || echo "gpu tier: FAILED (see above)"

echo "--- 1b. what each precision mode really computes in (forward hooks under autocast)"
python - <<'PY'
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

}

part2() {
echo "--- 2a. course configuration (E128 H256 L2, seq 50, batch 32), 60 s on CUDA"
harness train --device cuda --budget 60s --evals 4 --out "$out/course" --json > "$out/course.json"
summarize "$out/course.json" "course configuration"

echo "--- 2b. larger batch and sequence (E128 H512 L2, seq 128, batch 256), 45 s on CUDA"
harness train --device cuda --hidden-dim 512 --seq-len 128 --batch-size 256 --lr 2e-3 --budget 45s --evals 3 \
  --out "$out/large" --json > "$out/large.json"
summarize "$out/large.json" "large batch"

echo "--- 2c. the performance benchmark's GPU sections (recipe vs harness, generation, families, utilization)"
corpus=builtin:pydoc
[ -f ../shared/corpora/theprince.txt ] && corpus=../shared/corpora/theprince.txt
python scripts/bench.py --device cuda --corpus "$corpus" --quick \
  --only ceiling,throughput,generation,telemetry,families,gpu --markdown "$out/performance.md"

}

part3() {
echo "--- 3a. four-trial sweep with telemetry"
harness sweep studies/demo.toml --device cuda --trials 4 --results "$out/sweep"
harness status "$out/sweep" --json | tail -1 > "$out/sweep-status.json"
python - "$out/sweep" <<'PY'
import sys, optuna
from pathlib import Path
from harness.search import open_storage
study = optuna.load_study(study_name="demo", storage=open_storage(Path(sys.argv[1])))
for t in study.trials:
    a = t.user_attrs
    print(f"trial {t.number} {t.state.name}: util {a.get('util_mean')}, chars/s {a.get('train_chars_per_s')}, "
          f"energy {a.get('energy_j')} J, unsupported {a.get('unsupported')}")
PY

echo "--- 3b. trials per hour with 1, 2 and 4 workers on this one GPU, and the rank agreement"
python scripts/bench_workers.py --device cuda --workers 1 2 4 --budget 8s
}

run_part() {
  echo "=== gpu_check part $1, $(date -u +%Y-%m-%dT%H:%M:%SZ), output in $out/part$1.log"
  { setup; "part$1"; } 2>&1 | tee "$out/part$1.log"
}

if [ "$part" = all ]; then
  for p in 1 2 3; do run_part "$p"; done
else
  run_part "$part"
fi
