"""scripts/gpu_check.sh in a fake environment: what its first call on a bare GPU machine would do.

A GPU machine is lent for minutes, so the script must fail loudly, keep its log when it is killed,
and never read as green without a GPU. Here the hardware boundary is faked: a `sitecustomize`
makes torch report a CUDA device, an `optuna` package that fails to import stands for a machine
without it, and the interpreter's `-m pytest` and `-m pip` are stand-ins that report what they were
asked. Everything else (the script, its checks, the real torch and Optuna) runs for real.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/usr/bin/env bash
# the real interpreter, except that `-m pytest` runs $FAKE_PYTEST and `-m pip` only records its arguments
if [ "${1:-} ${2:-}" = "-m pytest" ]; then echo "pytest $*" >> "$FAKE_LOG"; exec "$REAL_PY" -c "$FAKE_PYTEST"; fi
if [ "${1:-} ${2:-}" = "-m pip" ]; then echo "pip $*" >> "$FAKE_LOG"; exit 0; fi
exec "$REAL_PY" "$@"
"""

FAKE_CUDA = """
import os
if os.environ.get("FAKE_CUDA"):
    from types import SimpleNamespace

    import torch
    torch.cuda.is_available = lambda: True
    torch.cuda.device_count = lambda: 1
    torch.cuda.get_device_name = lambda *a: "Fake GPU"
    torch.cuda.get_device_properties = lambda *a: SimpleNamespace(is_integrated=False)
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the scripts the check runs, in a tree of its own (so ./wheels is the test's)."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("gpu_check.sh", "gpu_check_tools.py"):
        shutil.copy(ROOT / "scripts" / name, repo / "scripts" / name)
    fake = tmp_path / "fake"
    (fake / "site").mkdir(parents=True)
    (fake / "site" / "sitecustomize.py").write_text(FAKE_CUDA)
    (fake / "no-optuna" / "optuna").mkdir(parents=True)
    (fake / "no-optuna" / "optuna" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'optuna'\")\n")
    python = fake / "python3"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return repo


def env_for(checkout: Path, *, cuda: bool, optuna: bool = True, pytest_code: str = "import sys; sys.exit(0)",
            out: Path | None = None) -> dict[str, str]:
    fake = checkout.parent / "fake"
    paths = [str(fake / "site")] + ([] if optuna else [str(fake / "no-optuna")])
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "WHEELS", "FAKE_CUDA", "PYTHONUNBUFFERED")}
    env.update(PYTHON=str(fake / "python3"), REAL_PY=sys.executable, PYTHONPATH=os.pathsep.join(paths),
               FAKE_LOG=str(checkout.parent / "fake.log"), FAKE_PYTEST=pytest_code)
    if cuda:
        env["FAKE_CUDA"] = "1"
    if out is not None:
        env["OUT"] = str(out)
    return env


def run(checkout: Path, part: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(checkout / "scripts" / "gpu_check.sh"), "--part", part], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=checkout.parent)


def calls(checkout: Path) -> str:
    log = checkout.parent / "fake.log"
    return log.read_text() if log.exists() else ""


@pytest.mark.parametrize("part", ["0", "1", "2", "3", "all"])
def test_every_part_stops_at_once_without_a_cuda_device(checkout, part):
    proc = run(checkout, part, env_for(checkout, cuda=False))
    assert proc.returncode != 0
    assert proc.stdout.count("sees no CUDA device") == 1, proc.stdout
    assert "--- " not in proc.stdout and "Traceback" not in proc.stdout  # nothing ran, and no traceback
    assert calls(checkout) == ""  # neither pip nor pytest was called


@pytest.mark.parametrize("part", ["0", "1"])
def test_parts_0_and_1_stop_with_one_line_when_optuna_is_missing(checkout, part):
    proc = run(checkout, part, env_for(checkout, cuda=True, optuna=False))
    assert proc.returncode != 0
    lines = [line for line in proc.stdout.splitlines() if line.startswith("gpu_check: ")]
    assert len(lines) == 1 and "optuna does not import" in lines[0] and "gpu_wheels.sh" in lines[0], proc.stdout
    assert "pytest" not in calls(checkout) and "--- " not in proc.stdout


def test_it_finds_and_installs_from_the_checkouts_wheel_folder_by_itself(checkout):
    (checkout / "wheels").mkdir()
    (checkout / "wheels" / "optuna-5.1.0-py3-none-any.whl").write_bytes(b"")
    proc = run(checkout, "1", env_for(checkout, cuda=True))
    pip = [line for line in calls(checkout).splitlines() if line.startswith("pip ")]
    assert len(pip) == 1 and "--no-index --find-links wheels" in pip[0] and "optuna" in pip[0], calls(checkout)
    assert "-c results/gpu-check/keep-torch.txt" in pip[0]  # the machine's torch is pinned, never replaced
    assert (checkout / "results" / "gpu-check" / "keep-torch.txt").read_text().startswith("torch==")
    assert "1 wheels in wheels match Python" in proc.stdout


def test_wheels_for_another_python_are_refused_before_anything_is_installed(checkout):
    other = f"cp{sys.version_info.major}{sys.version_info.minor - 2}"
    (checkout / "wheels").mkdir()
    (checkout / "wheels" / f"greenlet-3.1.1-{other}-{other}-manylinux_2_17_x86_64.whl").write_bytes(b"")
    proc = run(checkout, "0", env_for(checkout, cuda=True))
    assert proc.returncode != 0
    assert "for another interpreter" in proc.stdout and "gpu_wheels.sh --arch" in proc.stdout, proc.stdout
    assert calls(checkout) == ""


@pytest.mark.parametrize("status", [0, 5])
def test_the_scripts_status_is_pytests(checkout, tmp_path, status):
    out = tmp_path / "out"
    proc = run(checkout, "1", env_for(checkout, cuda=True, pytest_code=f"import sys; sys.exit({status})", out=out))
    assert proc.returncode == status, proc.stdout[-2000:]
    assert f"the GPU test tier exited {status}" in proc.stdout
    assert "-rA --durations=15" in calls(checkout) and "tests/test_gpu.py" in calls(checkout)
    assert (out / "part1.log").read_text().rstrip().endswith(f"part 1 exited {status}")
    assert not (out / "keep-torch.txt").exists()  # bulk stays out of the folder a device call brings back


def test_the_log_keeps_what_was_printed_when_the_run_is_killed(checkout, tmp_path):
    """As a device call's limit kills the whole pipeline: pytest's output must already be in the log."""
    out = tmp_path / "out"
    env = env_for(checkout, cuda=True, out=out,
                  pytest_code="import time; print('collected 14 items: test_gpu.py ....'); time.sleep(120)")
    proc = subprocess.Popen(["bash", str(checkout / "scripts" / "gpu_check.sh"), "--part", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=checkout.parent,
                            start_new_session=True)
    log = out / "part1.log"
    try:
        deadline = time.monotonic() + 120
        while "pytest -m pytest" not in calls(checkout) and time.monotonic() < deadline:
            time.sleep(0.2)
        # the stand-in prints at once and then sleeps 120 s: a buffered interpreter would hold the line until
        # it exits, so it would never reach the log within this wait (30 s: a loaded CI machine starts slowly)
        deadline = time.monotonic() + 30
        while not (log.exists() and "collected 14 items" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert "collected 14 items" in log.read_text(), log.read_text()


def test_the_parts_are_listed_each_sized_for_one_device_call_and_bad_arguments_are_refused():
    shown = subprocess.run(["bash", "scripts/gpu_check.sh", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert shown.returncode == 0
    for part in ("part 0 (~3 min)", "part 1 (~7 min)", "part 2 (~6 min)", "part 3 (~6 min)"):
        assert part in shown.stdout
    refused = subprocess.run(["bash", "scripts/gpu_check.sh", "--part", "4"], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2 and "--part 0, 1, 2, 3 or all" in refused.stderr
    for args, message in ((["--arch", "arm64"], "x86_64 or aarch64"), (["--python", "3.10"], "3.11 or later"),
                          (["--python", "twelve"], "a version such as 3.12")):
        wheels = subprocess.run(["bash", "scripts/gpu_wheels.sh", *args], capture_output=True, text=True, cwd=ROOT)
        assert wheels.returncode == 2 and message in wheels.stderr, (args, wheels.stderr)
