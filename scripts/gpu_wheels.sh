#!/usr/bin/env bash
# Prepare, on a machine with network, the wheels scripts/gpu_check.sh installs on a GPU machine without:
# the dependencies its Python lacks (the lent H200 has torch, pandas, seaborn, pyarrow, nvidia-ml-py and
# sacrebleu already). Never torch: the machine's own CUDA build is the one to test. Wheels are chosen for
# the target's platform and Python, not this machine's:
#
# Usage: bash scripts/gpu_wheels.sh [--arch x86_64|aarch64] [--python 3.12] [DIR]   (default x86_64, 3.12, wheels/)
#   --arch aarch64   the DGX Spark (GB10) and other Grace machines
#   --python X.Y     the target interpreter's version (python3 -c 'import sys; print(sys.version[:4])' there)
set -euo pipefail
arch=x86_64 py=3.12 dir=wheels
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:-}"; shift 2 ;;
    --python) py="${2:-}"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_wheels: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) dir="$1"; shift ;;
  esac
done
case "$arch" in x86_64|aarch64) ;; *) echo "gpu_wheels: --arch is x86_64 or aarch64, got '$arch'" >&2; exit 2 ;; esac
case "$py" in 3.1[0-9]) ;; *) echo "gpu_wheels: --python is a version such as 3.12, got '$py'" >&2; exit 2 ;; esac
mkdir -p "$dir"
pip download --quiet --dest "$dir" --only-binary=:all: --python-version "$py" --implementation cp \
  --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" \
  --platform any \
  "optuna>=5.0" "sqlalchemy>=2.0" alembic colorlog tqdm PyYAML Mako MarkupSafe typing_extensions greenlet \
  packaging pytest iniconfig pluggy
ls "$dir" | sed 's/^/  /'
echo "wheels for $arch, Python $py, in $dir; copy them over and run there: WHEELS=$dir bash scripts/gpu_check.sh --part 1"
