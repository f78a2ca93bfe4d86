"""How a study is judged: the trials as a DataFrame, the frontier and verdict, tables, seaborn figures, documents.

`build_report(study, out)` writes everything; `study_frame(study)` is the table it starts from.
Figures are drawn on figures of their own (no pyplot state) under a theme that is scoped to the
report, so a notebook that builds a report keeps its backend and its style.
"""

from harness.report._build import Report, build_report, pareto_meaningful
from harness.report._confirmation import (
    Confirmation,
    ConfirmRequest,
    run_confirmation,
)
from harness.report._drift import lr_drift
from harness.report._figures import fig_embeddings, fig_gradflow
from harness.report._forecast import Fit, Forecast, fit_power_law, forecast_curve, kendall_tau
from harness.report._frame import numeric_columns, pareto_mask, study_frame
from harness.report._frontier import (
    best_for_budgets,
    default_budgets,
    frontier,
    time_to_targets,
)
from harness.report._outlook import (
    MULTIPLES,
    Calibration,
    backtest,
    calibration_for,
    forecast_study,
    outlook_sentences,
    outlook_table,
)
from harness.report._tables import param_summary
from harness.report._verdict import Verdict

__all__ = [
    "MULTIPLES",
    "Calibration",
    "ConfirmRequest",
    "Confirmation",
    "Fit",
    "Forecast",
    "Report",
    "Verdict",
    "backtest",
    "best_for_budgets",
    "build_report",
    "calibration_for",
    "default_budgets",
    "fig_embeddings",
    "fig_gradflow",
    "fit_power_law",
    "forecast_curve",
    "forecast_study",
    "frontier",
    "kendall_tau",
    "lr_drift",
    "numeric_columns",
    "outlook_sentences",
    "outlook_table",
    "param_summary",
    "pareto_mask",
    "pareto_meaningful",
    "run_confirmation",
    "study_frame",
    "time_to_targets",
]
