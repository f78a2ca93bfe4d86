"""One trial record: what the trainer and the telemetry produce is exactly what the schema names."""

from __future__ import annotations

from dataclasses import replace

import torch

from harness.data import load_corpus
from harness.measure import Telemetry, cost_summary
from harness.training import (
    RUN_FIELDS,
    TELEMETRY_FIELDS,
    Budget,
    Evaluations,
    Observers,
    TrainConfig,
    report_columns,
    run_attrs,
    telemetry_attrs,
    train,
)


def test_a_runs_record_is_the_schema(tmp_path):
    corpus = load_corpus("builtin:pydoc")
    device = torch.device("cpu")
    with Telemetry(device) as telemetry:
        result = train(TrainConfig(embedding_dim=8, hidden_dim=16, layers=1, seq_len=16, batch_size=8), corpus,
                       Budget.parse("3000tok"), device, out_dir=tmp_path, evaluations=Evaluations(1), observers=Observers(telemetry=telemetry))
    summary = result.summary()
    assert list(summary) == [f.name for f in RUN_FIELDS]  # a renamed or new key must be named in the schema
    cost = replace(cost_summary(telemetry, result),  # as the trial and harness train do
                   samples_csv=str(telemetry.save_csv(tmp_path / "telemetry.csv"))).summary()
    assert {f.name for f in TELEMETRY_FIELDS} <= set(cost)
    attrs = {**run_attrs(summary), **telemetry_attrs(cost)}
    assert {"val_bpc", "device_seconds", "util_mean", "mfu", "peak_mem_source"} <= set(attrs)
    # every report column has a stored source (the trial runner writes reason, host and a PBT segment's own cost)
    assert set(report_columns()) - {"reason", "host", "segment_device_seconds", "segment_train_chars"} <= set(attrs)
