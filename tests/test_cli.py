"""The command line as a user meets it: real subprocesses, exit codes, no tracebacks."""

from __future__ import annotations

import json
import sys

import pytest
from sweep_helpers import harness_cli

from harness.cli import main


def test_train_json_last_line(small_text_file, tmp_path):
    out = tmp_path / "run"
    proc = harness_cli("train", "--corpus", str(small_text_file), "--model", "lstm", "--hidden-dim", "32",
                   "--embedding-dim", "16", "--layers", "1", "--budget", "20k", "--evals", "2", "--out", str(out),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("val_loss", "val_bpc", "val_ppl", "train_chars_per_s", "device_seconds", "steps", "params", "device"):
        assert key in summary
    assert summary["device"] == "cpu"
    assert summary["val_bpc"] == pytest.approx(summary["val_loss"] / 0.6931471805599453)
    assert (out / "best.pt").exists()
    assert json.loads((out / "result.json").read_text())["steps"] == summary["steps"]
    assert "eval  1" in proc.stderr  # progress and evaluations go to stderr, stdout stays parseable


def test_train_cli_schedule_flags_reach_the_run(small_text_file, tmp_path):
    proc = harness_cli("train", "--corpus", str(small_text_file), "--hidden-dim", "32", "--embedding-dim", "16",
                   "--layers", "1", "--budget", "8k", "--evals", "2", "--lr-schedule", "wsd", "--lr-decay", "0.5",
                   "--lr-min-ratio", "0.1", "--out", str(tmp_path / "run"), "--json")
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout.strip().splitlines()[-1])["config"]
    assert (config["lr_schedule"], config["lr_decay"], config["lr_min_ratio"], config["lr_warmup"]) == \
        ("wsd", 0.5, 0.1, 0.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corpus", "no/such/file.txt"], "does not exist"),
        (["--corpus", "ftp:thing"], "unknown corpus scheme"),
        (["--budget", "soon"], "budget 'soon'"),
        (["--device", "tpu"], "device 'tpu'"),
        (["--layers", "0"], "layers must be"),
        (["--seq-len", "5000", "--corpus", "SMALL"], "needs at least"),
        (["--split", "0.5", "0.1", "0.1"], "add up to 1"),
        (["--lr-schedule", "wsd", "--lr-decay", "0"], "lr_decay"),
        (["--lr-warmup", "1.5"], "lr_warmup"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(args, message, small_text_file, tmp_path):
    args = [str(small_text_file) if a == "SMALL" else a for a in args]
    proc = harness_cli("train", "--out", str(tmp_path / "o"), *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("harness: error:")


def test_cuda_request_without_gpu_is_a_clear_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["train", "--device", "cuda"]) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = harness_cli("train", "--out", str(blocker / "run"), "--budget", "1k")
    assert proc.returncode == 2 and "cannot create the directory" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert blocker.read_text() == "not a directory"


def test_default_run_directories_never_collide(tmp_path):
    from harness.cli import unique_run_dir

    base = tmp_path / "20261128-120000"
    base.mkdir()
    assert unique_run_dir(base).name == "20261128-120000-2"
    (tmp_path / "20261128-120000-2").mkdir()
    assert unique_run_dir(base).name == "20261128-120000-3"


def test_trial_takes_a_study_not_a_checkpoint(tmp_path):
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"\x80 not a study")
    proc = harness_cli("generate", str(checkpoint), "--trial", "0")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"with --trial 0, give the study file (.toml) or the results directory the trial belongs to, not {checkpoint}" \
        in proc.stderr


def test_in_a_jupyter_kernel_the_progress_is_one_line_updated_in_place(monkeypatch):
    """A kernel's stderr is no TTY: without a display handle every redraw would be a new output line."""
    import types

    from harness.common import ProgressLine

    shown = []

    class Handle:
        def update(self, data, raw=False):
            shown.append(data["text/plain"])

    def display(data, raw=False, display_id=False):
        assert display_id is True and raw
        return Handle()

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace(config={"IPKernelApp": {}})
    ipython_display = types.ModuleType("IPython.display")
    ipython_display.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython_display)
    line = ProgressLine()
    assert line.handle is not None
    for i in range(50):
        line.update(i / 50, f"step {i}")
    line.update(1.0, "done")
    assert 1 <= len(shown) <= 3 and shown[-1].endswith("100% done")  # one line, redrawn at most every 0.5 s
    ipython.get_ipython = lambda: types.SimpleNamespace(config={})  # a terminal IPython: no kernel
    assert ProgressLine().handle is None
