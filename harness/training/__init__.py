"""How a model trains and is evaluated: configuration and budgets, the trainer, precision, checkpoints, generation.

`train(config, corpus, budget)` is the whole loop (harness.training._trainer reads top to bottom);
its result's `summary()` is the record every reader uses (harness.training._record).
"""

from harness.training._checkpoint import FORMAT as CHECKPOINT_FORMAT
from harness.training._checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from harness.training._config import (
    EVAL_SPACINGS,
    LR_SCHEDULES,
    Budget,
    TrainConfig,
    eval_fractions,
    parse_duration,
)
from harness.training._continuation import Start
from harness.training._dynamic import DYNAMIC_CHUNK, DYNAMIC_DECAY, DYNAMIC_LR, dynamic_evaluate
from harness.training._evaluation import (
    EVAL_CHUNK,
    EVAL_STREAMS,
    checkpoint_corpus,
    eval_streams,
    evaluate,
    evaluate_checkpoint,
)
from harness.training._generation import (
    UNKNOWN_POLICIES,
    GenerateSpec,
    draw,
    filter_logits,
    generate_and_score,
    sample,
    sample_batch,
    sample_temperatures,
)
from harness.training._precision import MODES as PRECISION_MODES
from harness.training._precision import Precision, decide, normalize_precision, probe, resolve_precision
from harness.training._record import (
    RUN_FIELDS,
    TELEMETRY_FIELDS,
    TRIAL_FIELDS,
    Field,
    numeric_columns,
    report_columns,
    run_attrs,
    telemetry_attrs,
)
from harness.training._result import EvalPoint, Progress, TrainResult
from harness.training._trainer import (
    SYNC_INTERVAL_S,
    WARMUP_STEPS,
    Trainer,
    chars_per_epoch,
    epoch_chunks,
    train,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "DYNAMIC_CHUNK",
    "DYNAMIC_DECAY",
    "DYNAMIC_LR",
    "EVAL_CHUNK",
    "EVAL_SPACINGS",
    "EVAL_STREAMS",
    "LR_SCHEDULES",
    "PRECISION_MODES",
    "RUN_FIELDS",
    "SYNC_INTERVAL_S",
    "TELEMETRY_FIELDS",
    "TRIAL_FIELDS",
    "UNKNOWN_POLICIES",
    "WARMUP_STEPS",
    "Budget",
    "Checkpoint",
    "EvalPoint",
    "Field",
    "GenerateSpec",
    "Precision",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "Start",
    "Trainer",
    "chars_per_epoch",
    "checkpoint_corpus",
    "decide",
    "draw",
    "dynamic_evaluate",
    "epoch_chunks",
    "eval_streams",
    "eval_fractions",
    "evaluate",
    "evaluate_checkpoint",
    "filter_logits",
    "generate_and_score",
    "load_checkpoint",
    "normalize_precision",
    "numeric_columns",
    "parse_duration",
    "probe",
    "report_columns",
    "resolve_precision",
    "run_attrs",
    "sample",
    "sample_batch",
    "sample_temperatures",
    "save_checkpoint",
    "telemetry_attrs",
    "train",
]
