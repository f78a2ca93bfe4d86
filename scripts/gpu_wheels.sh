#!/usr/bin/env bash
# Prepare, on a machine with network, the wheels scripts/gpu_check.sh installs on a GPU machine without:
# the dependencies the lent H200's Python (3.12, x86-64; torch, pandas, seaborn, pyarrow, nvidia-ml-py and
# sacrebleu already there) lacks. Never torch: the machine's own CUDA build is the one to test.
# Usage: bash scripts/gpu_wheels.sh [DIR]      (default wheels/, which git ignores)
set -euo pipefail
dir="${1:-wheels}"
mkdir -p "$dir"
pip download --quiet --dest "$dir" --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any \
  "optuna>=5.0" "sqlalchemy>=2.0" alembic colorlog tqdm PyYAML Mako MarkupSafe typing_extensions greenlet \
  "jinja2>=3.1" "tabulate>=0.9" packaging pytest iniconfig pluggy
ls "$dir" | sed 's/^/  /'
echo "wheels in $dir; run on the GPU machine: WHEELS=$dir bash scripts/gpu_check.sh"
