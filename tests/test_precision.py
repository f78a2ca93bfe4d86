"""Precision decided by what the layers really return: the decision table, the CPU path, the records."""

from __future__ import annotations

import pytest
import torch

from harness.common import HarnessError
from harness.models import build_model, family_names
from harness.training import Budget, Evaluations, TrainConfig, normalize_precision, resolve_precision, train
from harness.training._precision import decide, probe

BF16_REAL = {"core": "bf16", "head": "bf16"}
BF16_AS_FP16 = {"core": "fp16", "head": "bf16"}  # AutocastRNN casting a cuDNN LSTM to fp16 under bf16 autocast
FP16_REAL = {"core": "fp16", "head": "fp16"}


@pytest.mark.parametrize("requested,bf16_ok,probes,expected", [
    ("auto", True, {"bf16": BF16_REAL, "fp16": FP16_REAL}, "bf16"),
    ("auto", True, {"bf16": BF16_AS_FP16, "fp16": FP16_REAL}, "fp16"),  # never silently fp16 without a scaler
    ("auto", False, {"fp16": FP16_REAL}, "fp16"),  # e.g. a V100 or T4
    ("auto", True, {"bf16": {"core": "fp32", "head": "fp32"}, "fp16": {"core": "fp32", "head": "fp32"}}, "fp32"),
    ("auto", True, {"bf16": {"core": None, "head": "bf16"}}, "bf16"),  # mlp: no recurrent core
    ("bf16", True, {"bf16": BF16_REAL}, "bf16"),
    ("fp16", True, {"fp16": FP16_REAL}, "fp16"),
    ("fp32", True, {}, "fp32"),
    ("off", True, {}, "fp32"),  # the old --amp off
])
def test_decision_on_a_gpu(requested, bf16_ok, probes, expected):
    mode, reason = decide(requested, "cuda", bf16_ok, probes, torch_version="2.x")
    assert mode == expected and reason


@pytest.mark.parametrize("requested,bf16_ok,probes,message", [
    ("bf16", True, {"bf16": BF16_AS_FP16}, "runs the recurrent core in fp16"),
    ("bf16", False, {}, "no bfloat16 support"),
    ("fp16", True, {"fp16": {"core": "fp32", "head": "fp16"}}, "runs the core in fp32"),
])
def test_a_mode_the_gpu_cannot_honour_is_refused(requested, bf16_ok, probes, message):
    with pytest.raises(HarnessError, match=message):
        decide(requested, "cuda", bf16_ok, probes, torch_version="2.x")


@pytest.mark.parametrize("requested", ["bf16", "fp16"])
def test_half_precision_on_the_cpu_is_refused(requested):
    with pytest.raises(HarnessError, match="needs a CUDA GPU"):
        decide(requested, "cpu", False, {})
    assert decide("auto", "cpu", False, {}) == ("fp32", "CPU: fp32")


def test_unknown_mode():
    with pytest.raises(HarnessError, match="not one of"):
        normalize_precision("fp8")


@pytest.mark.parametrize("family", family_names())
def test_the_probe_reads_every_part(family):
    model = build_model(family, 20, 8, 12, 2, 0.0)
    seen = probe(model, torch.device("cpu"), "fp32")
    assert seen["embedding"] == "fp32" and seen["head"] == "fp32"
    assert seen["core"] == (None if family == "mlp" else "fp32")
    # the CPU's own bf16 autocast shows the hooks see real output dtypes, not the mode's name
    bf16 = probe(model, torch.device("cpu"), "bf16")
    assert bf16["head"] == "bf16" or "error" in bf16  # (CPU autocast cannot run every LSTM path: recorded)


def test_a_run_records_its_precision(small_corpus):
    result = train(TrainConfig(model="gru", embedding_dim=16, hidden_dim=24, layers=1, seq_len=16, batch_size=8),
                   small_corpus, Budget.parse("5k"), evaluations=Evaluations(1))
    p = result.summary()["precision"]
    assert p["mode"] == "fp32" and p["recurrent"] == "fp32" and p["head"] == "fp32" and p["tf32"] is False
    assert p["grad_scaler"] is False and p["summary"].startswith("fp32 (")
    assert resolve_precision("auto", build_model("lstm", 10, 4, 4, 1, 0.0), torch.device("cpu")).mode == "fp32"
