"""A synthetic study with known numbers, created through Optuna, for the report tests and its benchmark."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from harness.search import SPEC_ATTR, open_storage

DISTRIBUTIONS = {
    "hidden_dim": IntDistribution(16, 512, log=True),
    "model": CategoricalDistribution(["lstm", "gru"]),
    "lr": FloatDistribution(1e-4, 1e-2, log=True),
}
HOSTILE = "<script>alert('x')</script> & </pre><img src=x onerror=alert(1)>"


def trial_attrs(number: int, bpc: float, device_seconds: float, params: dict, samples_csv: Path | None) -> dict:
    curve = [{"index": i, "step": 10 * i, "device_seconds": device_seconds * i / 4, "bpc": bpc + 0.5 / i,
              "loss": (bpc + 0.5 / i) * math.log(2)} for i in (1, 2, 3, 4)]
    return {
        "config": {"model": params["model"], "hidden_dim": params["hidden_dim"], "layers": 2, "batch_size": 32,
                   "lr": params["lr"], "embedding_dim": 64, "seq_len": 50, "dropout": 0.1},
        "val_bpc": bpc, "final_val_bpc": bpc + 0.01, "val_ppl": 2**bpc, "final_val_ppl": 2 ** (bpc + 0.01),
        "device_seconds": device_seconds, "train_seconds": device_seconds * 0.9, "eval_seconds": device_seconds * 0.1,
        "wall_seconds": device_seconds * 1.1, "train_chars_per_s": 1000.0 * params["hidden_dim"],
        "peak_mem_bytes": params["hidden_dim"] * 2**20, "peak_mem_source": "synthetic", "vocab_size": 64,
        "util_mean": 50.0, "energy_j": device_seconds * 100, "curve": curve,
        "fingerprint": {"device_name": "Synthetic GPU", "host": "testhost", "machine": "x86_64", "torch": "2.x"},
        "samples_csv": str(samples_csv) if samples_csv else None,
        "generation": {"prompt": "the ", "temperatures": [
            {"temperature": t, "samples": [HOSTILE, f"sample at {t}"],
             "metrics": {"distinctness": 0.5 + t / 4, "novelty": t / 2, "real_word_share": 1 - t / 3,
                         "self_bleu": 0.2}} for t in (0.5, 1.0, 1.5)]},
    }


def make_study(results: Path, rows: list[tuple], name: str = "synth", telemetry_dir: Path | None = None) -> optuna.Study:
    """rows: (state, bpc, device_seconds, hidden_dim, model) per trial, in order."""
    study = optuna.create_study(study_name=name, storage=open_storage(results))
    study.set_user_attr(SPEC_ATTR, {
        "question": "Which synthetic configuration wins?", "corpus": "synthetic", "budget": "60s", "evals": 4,
        "sampler": "tpe", "pruner": "hyperband",
        "space": {"hidden_dim": {"kind": "int", "log": True}, "model": {"kind": "categorical", "log": False},
                  "lr": {"kind": "float", "log": True}},
    })
    for i, (state, bpc, seconds, hidden, model) in enumerate(rows):
        params = {"hidden_dim": hidden, "model": model, "lr": 1e-3 * (1 + i % 5)}
        csv = None
        if telemetry_dir is not None and state == "COMPLETE":
            csv = telemetry_dir / f"t{i}.csv"
            csv.write_text("t,phase,gpu_util,power_w,mem_used_bytes\n" +
                           "".join(f"{k * 0.25},training,{50 + k % 40},{100 + k},\n" for k in range(40)))
        attrs = trial_attrs(i, bpc, seconds, params, csv)
        values = [bpc] if state == "COMPLETE" else None
        intermediate = {p["index"]: p["bpc"] for p in attrs["curve"]}
        if state != "COMPLETE":
            attrs["reason"] = "pruned by hyperband" if state == "PRUNED" else "RuntimeError: boom"
        study.add_trial(optuna.create_trial(
            state=TrialState[state], values=values, params=params, distributions=DISTRIBUTIONS, user_attrs=attrs,
            intermediate_values=intermediate if state != "FAIL" else {},
        ))
    return study
