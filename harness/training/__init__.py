"""How a model trains and is evaluated: configuration and budgets, the trainer, precision, checkpoints, generation.

`train(config, corpus, budget)` is the whole loop (harness.training._trainer reads top to bottom);
its result's `summary()` is the record every reader uses (harness.training._record).
"""

from harness.training._checkpoint import Checkpoint, load_checkpoint
from harness.training._config import (
    EVAL_SPACINGS,
    LR_SCHEDULES,
    Budget,
    Evaluations,
    TrainConfig,
    eval_fractions,
    parse_duration,
)
from harness.training._continuation import Start
from harness.training._dynamic import dynamic_evaluate
from harness.training._evaluation import (
    checkpoint_corpus,
    evaluate,
    evaluate_checkpoint,
)
from harness.training._generation import (
    GenerateSpec,
    filter_logits,
    generate_and_score,
    sample,
    sample_batch,
    sample_temperatures,
)
from harness.training._precision import MODES as PRECISION_MODES
from harness.training._precision import Precision, normalize_precision, resolve_precision
from harness.training._record import (
    RUN_FIELDS,
    TELEMETRY_FIELDS,
    numeric_columns,
    report_columns,
    run_attrs,
    telemetry_attrs,
)
from harness.training._result import EvalPoint, Progress, TrainResult
from harness.training._trainer import (
    WARMUP_STEPS,
    Observers,
    Trainer,
    train,
)

__all__ = [
    "EVAL_SPACINGS",
    "LR_SCHEDULES",
    "PRECISION_MODES",
    "RUN_FIELDS",
    "TELEMETRY_FIELDS",
    "WARMUP_STEPS",
    "Budget",
    "Checkpoint",
    "EvalPoint",
    "Evaluations",
    "GenerateSpec",
    "Observers",
    "Precision",
    "Progress",
    "Start",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "checkpoint_corpus",
    "dynamic_evaluate",
    "eval_fractions",
    "evaluate",
    "evaluate_checkpoint",
    "filter_logits",
    "generate_and_score",
    "load_checkpoint",
    "normalize_precision",
    "numeric_columns",
    "parse_duration",
    "report_columns",
    "resolve_precision",
    "run_attrs",
    "sample",
    "sample_batch",
    "sample_temperatures",
    "telemetry_attrs",
    "train",
]
