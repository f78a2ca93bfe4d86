"""One trial record: every figure a run stores, named once, with what it is.

A run's record is `TrainResult.summary()` (what the trainer measured) plus `cost_summary()` (what
the telemetry measured) under "telemetry". `result.json` holds it whole; a sweep stores most of
it as Optuna user attributes of the trial (so `optuna-dashboard` and `trials_dataframe()` read
it), and the report's trial table takes its columns from here. Readers get figures by the names
below; a renamed key fails `tests/test_record.py` instead of becoming a missing column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # number | text | object
    doc: str
    trial: bool = True  # stored as a user attribute of the trial
    column: bool = False  # a column of the report's trial table (trials.csv / trials.parquet)


def _table(text: str) -> tuple[Field, ...]:
    """Fields from a table of lines: name, kind, where it goes (t: a trial attribute, c: a report column,
    -: result.json only), then what it is."""
    fields = []
    for line in text.strip().splitlines():
        if line.lstrip().startswith("#"):
            continue
        name, kind, where, doc = line.split(maxsplit=3)
        fields.append(Field(name, kind, doc, trial="t" in where, column="c" in where))
    return tuple(fields)


RUN_FIELDS = _table("""  # TrainResult.summary(), in its order
status                text    tc  completed | stopped_early (patience ran out) | pruned | diverged
reason                text    -   why the run stopped early, or null
val_loss              number  -   held-out loss (nats/char) at the best evaluation
val_bpc               number  tc  held-out bits/char at the best evaluation
val_ppl               number  tc  held-out perplexity at the best evaluation
best_step             number  t   optimizer step of the best evaluation
final_val_loss        number  -   held-out loss at the last evaluation
final_val_bpc         number  tc  held-out bits/char at the last evaluation
final_val_ppl         number  tc  held-out perplexity at the last evaluation
train_chars_per_s     number  tc  predicted characters per training device-second
train_seconds         number  tc  training time, this run's fair share of the device
eval_seconds          number  tc  evaluation time, fair share
device_seconds        number  tc  train + eval seconds: what budgets and the frontier count
wall_seconds          number  tc  wall time of the run, warm-up included
train_wall_seconds    number  tc  training wall time (synchronized)
eval_wall_seconds     number  t   evaluation wall time (synchronized)
concurrency           number  tc  time-weighted mean number of runs on the device (1.0 alone)
warmup_seconds        number  tc  untimed warm-up before the clock started
checkpoint_seconds    number  -   time spent writing best.pt
steps                 number  t   optimizer steps
train_chars           number  t   predicted training characters
params                number  tc  model parameters
vocab_size            number  tc  vocabulary size, the unknown symbol included
flops_per_char        number  t   training FLOPs per character (6 x weights touched, + attention)
achieved_tflops       number  t   model TFLOP/s while training
peak_mem_bytes        number  tc  this process's peak memory (source in peak_mem_source)
device                text    t   the torch device
budget                text    t   the budget as written (12s, 500000tok, 2ep)
checkpoint            text    tc  path of the best checkpoint
config                object  -   the full training configuration
curve                 object  -   every evaluation point
fingerprint           object  t   software and hardware the run was measured on
precision             object  t   the precision used, part by part, and why
eval_context          text    tc  the context each held-out character had: carried state or sliding windows
""")

TELEMETRY_FIELDS = _table("""  # cost_summary() keys a trial stores
energy_j              number  tc  energy of the measured windows (J), attributed by share when the device was shared
energy_j_integrated   number  t   power integrated over the whole run (J)
joules_per_char       number  tc  training energy per training character
util_mean             number  tc  mean utilization (%) of the device (GPU) or process (CPU) in the training windows
util_p95              number  tc  95th percentile of utilization (%) in the training windows
util_source           text    tc  which utilization: gpu_util or cpu_util, shared or not
util_window           text    t   the samples the headline utilization and power average: the training windows
util_mean_trial       number  tc  mean utilization over the whole run (building, evaluations, checkpoints included)
util_p95_trial        number  t   95th percentile of utilization over the whole run
power_mean_w_trial    number  t   mean power over the whole run
process_sm_util_mean  number  tc  this process's own SM utilization (%) while training (NVML per-process samples)
process_mem_source    text    t   where the process's GPU memory samples come from
matmul_ceiling        object  t   the matmul rate MFU is relative to, and how it was measured
power_mean_w          number  tc  mean power (W), device-wide, in the training windows
mfu                   number  tc  model FLOPs utilization against the measured matmul rate (a CPU's per wall second)
matmul_tflops         number  t   the measured matmul rate MFU is relative to
telemetry_device      text    tc  the device the telemetry sampled
telemetry_source      text    t   nvml or cpu
unsupported           object  t   fields the device answered NotSupported
missing_readings      object  t   readings NVML had no answer for, by field (NotFound: no new process sample)
phases                object  t   seconds and energy per phase (training, evaluation, generation)
samples_csv           text    tc  path of the telemetry samples
energy_scope          text    t   what the energy figure covers
shared                object  t   whether the run shared its device
""")

OPTIONAL_TELEMETRY = _table("""  # stored only when measured
peak_mem_bytes        number  t   see above
peak_mem_source       text    tc  where the peak memory figure comes from
""")

TRIAL_FIELDS = _table("""  # written by the trial runner itself
reason                text    tc  why a trial was pruned or failed
config                object  t   the full training configuration
curve                 object  t   every evaluation point, appended as the trial runs
generation            object  t   samples and text metrics per temperature
worker                object  t   host, pid and CPU threads of the worker
host                  text    tc  the machine that ran the trial (HARNESS_HOST, else the host name)
results_dir           text    t   the results directory on that machine
trial_dir             text    t   where the trial's files are, on that machine
timings               object  t   where the trial's wall time went
traceback             text    t   the last lines of a failed trial's traceback
segment_device_seconds number tc  a PBT segment's own device-seconds (device_seconds is its lineage's)
segment_train_chars   number  tc  a PBT segment's own training characters (train_chars is its lineage's)
pbt                   object  t   a PBT segment: member, generation, parent trial, checkpoint, schedule share
""")


def run_attrs(summary: dict[str, Any]) -> dict[str, Any]:
    """The user attributes a trial stores from a run's summary (a missing key is a bug: KeyError)."""
    return {f.name: summary[f.name] for f in RUN_FIELDS if f.trial}


def telemetry_attrs(cost: dict[str, Any]) -> dict[str, Any]:
    attrs = {f.name: cost[f.name] for f in TELEMETRY_FIELDS}
    if cost.get("peak_mem_bytes") is not None:
        attrs.update({f.name: cost[f.name] for f in OPTIONAL_TELEMETRY})
    return attrs


def _all() -> list[Field]:
    seen: dict[str, Field] = {}
    for f in (*RUN_FIELDS, *TELEMETRY_FIELDS, *OPTIONAL_TELEMETRY, *TRIAL_FIELDS):
        if f.column or f.name not in seen:
            seen[f.name] = f
    return list(seen.values())


def report_columns() -> list[str]:
    """The stored attributes that become columns of the report's trial table."""
    return [f.name for f in _all() if f.column]


def numeric_columns() -> set[str]:
    return {f.name for f in _all() if f.column and f.kind == "number"}
