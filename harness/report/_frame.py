"""The study as one DataFrame: a row per trial, with the record's columns (harness.training._record).

Efficiency is "perplexity per GPU-second" made a single number: the held-out bits per character
a trial saved over a uniform guess (log2 of the vocabulary size minus its best bpc), divided by
the device-seconds it used. Higher is better. The Pareto front (perplexity against
device-seconds, both minimised) is the comparison that needs no such choice.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd

from harness.common import HarnessError
from harness.search import SPEC_ATTR, retried_numbers
from harness.training import TrainConfig, report_columns
from harness.training import numeric_columns as record_numeric_columns


def study_frame(study: optuna.Study) -> pd.DataFrame:
    """A row per trial: parameters, state, reason, held-out figures, cost, telemetry, text metrics."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    rows = []
    for t in trials:
        a = t.user_attrs
        config = a.get("config") or {}
        row = {"number": t.number, "state": t.state.name, "retried": t.number in retried,
               "retry_of": t.user_attrs.get("retry_of", t.system_attrs.get("failed_trial"))}
        row.update({k: config.get(k) for k in ("model", "embedding_dim", "hidden_dim", "layers", "dropout", "seq_len",
                                               "batch_size", "lr")})
        row.update(t.params)
        idle = inactive_params(t)
        for name in idle:  # could not act (sampled by an older harness, or a default in the config): no value to credit
            if name in row:
                row[name] = None
        row["inactive"] = ", ".join(sorted(idle)) or None
        for key in report_columns():
            row[key] = a.get(key)
        row["n_params"] = row.pop("params")
        row["precision"] = (a.get("precision") or {}).get("summary")
        row["best_bpc"] = t.values[0] if t.values else a.get("val_bpc")
        row["start"] = t.datetime_start
        row["complete"] = t.datetime_complete
        gen = a.get("generation") or {}
        for group in gen.get("temperatures", []):
            for name in ("distinctness", "real_word_share", "novelty", "self_bleu"):
                row[f"{name}@T{group['temperature']:g}"] = group["metrics"].get(name)
        rows.append(row)
    frame = numeric_columns(pd.DataFrame(rows), NUMERIC_ATTRS)
    if frame.empty:
        return frame
    frame["best_ppl"] = np.exp2(frame["best_bpc"].astype(float))
    vocab = frame["vocab_size"].astype(float)
    frame["efficiency_bits_per_device_s"] = (np.log2(vocab) - frame["best_bpc"].astype(float)) / frame[
        "device_seconds"].astype(float)
    done = frame["state"] == "COMPLETE"
    frame["pareto"] = False
    frame.loc[done, "pareto"] = pareto_mask(frame.loc[done, "best_ppl"].to_numpy(float),
                                            frame.loc[done, "device_seconds"].to_numpy(float))
    sweep_cumulative(frame)
    frame["rank_bpc"] = frame["best_bpc"].where(done).rank(method="min")
    frame["rank_efficiency"] = frame["efficiency_bits_per_device_s"].where(done).rank(method="min", ascending=False)
    return frame


def sweep_cumulative(frame: pd.DataFrame) -> None:
    """The sweep's own cost axis: `sweep_device_seconds` is what all trials finished by this one's end had
    spent (every worker, pruned, stopped and failed trials included), `sweep_best_bpc` the best complete
    trial among them. Trials still running have neither."""
    finished = frame["complete"].notna()
    order = frame[finished].sort_values(["complete", "number"]).index
    own = frame["segment_device_seconds"] if "segment_device_seconds" in frame else frame["device_seconds"]
    own = own.astype(float).fillna(frame["device_seconds"].astype(float))  # a PBT segment's own, not its lineage's
    spent = own.loc[order].fillna(0.0).cumsum()
    best = frame.loc[order, "best_bpc"].astype(float).where(frame.loc[order, "state"] == "COMPLETE").cummin()
    frame["sweep_device_seconds"] = spent.reindex(frame.index)
    frame["sweep_best_bpc"] = best.reindex(frame.index)


def sweep_best_at(frame: pd.DataFrame, shares: tuple[float, ...] = (0.25, 0.5, 1.0)) -> list[tuple[float, float, float]]:
    """(share, device-seconds, best bpc) at each share of the device-seconds the sweep has spent: what a
    user who stopped the night there would have had; NaN where no trial had completed by then."""
    if "sweep_device_seconds" not in frame or frame["sweep_device_seconds"].notna().sum() == 0:
        return []
    done = frame[frame["sweep_device_seconds"].notna()].sort_values("sweep_device_seconds")
    total = float(done["sweep_device_seconds"].max())
    rows = []
    for share in shares:
        by_then = done[done["sweep_device_seconds"] <= share * total + 1e-9]
        rows.append((share, share * total, float(by_then["sweep_best_bpc"].min()) if len(by_then) else float("nan")))
    return rows


NUMERIC_ATTRS = record_numeric_columns() - {"params"} | {"n_params", "best_bpc", "retry_of"}


def numeric_columns(frame: pd.DataFrame, numeric: set[str] = frozenset()) -> pd.DataFrame:
    """Columns whose values are all numbers (or missing) become float, so CSV and Parquet readers see numbers.

    A figure missing on every trial (a CPU has no energy counter) or mixed with other objects
    would otherwise leave the column as Python objects, written to Parquet as text; columns in
    `numeric` are numbers even when all of them are missing.
    """
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        values = [v for v in frame[column] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if not values and column in numeric:
            frame[column] = frame[column].astype(float)
        elif values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            whole = all(isinstance(v, int) for v in values)
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64" if whole else float)
    return frame


def pareto_mask(cost_a: np.ndarray, cost_b: np.ndarray) -> np.ndarray:
    """True where no other point is at least as good on both costs and better on one (both minimised)."""
    cost_a, cost_b = np.asarray(cost_a, dtype=float), np.asarray(cost_b, dtype=float)
    n = len(cost_a)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = (cost_a <= cost_a[i]) & (cost_b <= cost_b[i]) & ((cost_a < cost_a[i]) | (cost_b < cost_b[i]))
        mask[i] = not dominated.any()
    return mask


def inactive_params(trial: optuna.trial.FrozenTrial) -> set[str]:
    """The trial's parameters (Optuna names) that could not act on its configuration.

    New trials record them ("inactive": not sampled at all); a trial of an older harness sampled
    them anyway, so they are worked out again from its config (`TrainConfig.inactive`), and an
    old study's dropout at one layer is not read as if it had done something.
    """
    names = set(trial.user_attrs.get("inactive") or [])
    config = trial.user_attrs.get("config")
    if config:
        try:
            off = set(TrainConfig.from_dict(config).inactive())
        except (HarnessError, TypeError):  # a config of a family this process does not know
            off = set()
        names |= {name for name in trial.params if name.rpartition(".")[2] in off}
    return names


def sampled_params(study: optuna.Study, frame: pd.DataFrame) -> dict[str, dict]:
    """Parameter name -> how it was sampled (log scale, categorical), from the spec or the distributions."""
    spec = study.user_attrs.get(SPEC_ATTR, {}).get("space")
    if spec:
        return spec
    found = {}
    for t in study.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            found[name] = {"kind": "categorical" if isinstance(dist, optuna.distributions.CategoricalDistribution)
                           else "float", "log": getattr(dist, "log", False)}
    return found
