#!/usr/bin/env bash
# Build, where there is network, the wheel folder scripts/gpu_check.sh installs on a GPU machine without:
# the dependencies that machine's Python lacks, for its platform and Python, not this machine's. Never
# torch: the machine's own CUDA build is the one to test.
#
# Usage: bash scripts/gpu_wheels.sh [--arch x86_64|aarch64] [--python 3.12] [DIR]   (default x86_64, 3.12, wheels/)
#   --arch x86_64    the lent H200 (its python3 has torch, pandas, seaborn, pyarrow, nvidia-ml-py, sacrebleu
#                    and pytest already; this adds Optuna, SQLAlchemy, Alembic and pytest-timeout)
#   --arch aarch64   the DGX Spark (GB10) in NVIDIA's NGC PyTorch container, which lacks pandas, seaborn,
#                    pyarrow, nvidia-ml-py and sacrebleu too: they are added
#   --python X.Y     the target interpreter's version: run `python3 -c 'import sys; print(sys.version[:4])'`
#                    there. The harness needs 3.11 or later; gpu_check.sh refuses wheels of another version.
# Then the device command carries the folder: see the README ("GPU machines").
set -euo pipefail
arch=x86_64 py=3.12 dir=wheels
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:-}"; shift 2 || shift ;;
    --python) py="${2:-}"; shift 2 || shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu_wheels: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) dir="$1"; shift ;;
  esac
done
case "$arch" in x86_64|aarch64) ;; *) echo "gpu_wheels: --arch is x86_64 or aarch64, got '$arch'" >&2; exit 2 ;; esac
case "$py" in
  3.1[1-9]) ;;
  3.[0-9]|3.10) echo "gpu_wheels: --python $py: the harness needs Python 3.11 or later (pyproject.toml), so a" \
                     "machine whose python3 is $py cannot run it; use a newer interpreter there" >&2; exit 2 ;;
  *) echo "gpu_wheels: --python is a version such as 3.12, got '$py'" >&2; exit 2 ;;
esac
packages=("optuna>=5.0" "sqlalchemy>=2.0" alembic colorlog tqdm PyYAML Mako MarkupSafe typing_extensions greenlet
          packaging pytest pytest-timeout iniconfig pluggy)
[ "$arch" = aarch64 ] && packages+=("pandas>=2.1" "seaborn>=0.13" "matplotlib>=3.8" "pyarrow>=15"
                                     "nvidia-ml-py>=12.535" "sacrebleu>=2.4")
mkdir -p "$dir"
if ! pip download --quiet --dest "$dir" --only-binary=:all: --python-version "$py" --implementation cp \
  --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" \
  --platform any "${packages[@]}"; then
  echo "gpu_wheels: pip found no wheels of these packages for Python $py on $arch (its message is above):" \
       "check the target's python3 version" >&2
  exit 1
fi
ls "$dir" | sed 's/^/  /'
echo "wheels for $arch, Python $py, in $dir: carry the folder with the checkout; bash scripts/gpu_check.sh finds ./wheels"
