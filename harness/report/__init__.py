"""How a study is judged: the trials as a DataFrame, the frontier and verdict, tables, seaborn figures, documents.

`build_report(study, out)` writes everything; `study_frame(study)` is the table it starts from.
Figures are drawn on figures of their own (no pyplot state) under a theme that is scoped to the
report, so a notebook that builds a report keeps its backend and its style.
"""

from harness.report._build import Report, build_report, pareto_meaningful
from harness.report._confirmation import (
    Confirmation,
    ConfirmationPlan,
    ConfirmRequest,
    confirmation_plan,
    run_confirmation,
)
from harness.report._drift import lr_drift
from harness.report._figures import fig_embeddings, fig_gradflow
from harness.report._forecast import Fit, Forecast, fit_power_law, forecast_curve, kendall_tau
from harness.report._frame import numeric_columns, pareto_mask, sampled_params, study_frame
from harness.report._frontier import (
    best_for_budgets,
    default_budgets,
    default_targets,
    eval_points,
    frontier,
    time_to_targets,
)
from harness.report._outlook import (
    MULTIPLES,
    Calibration,
    backtest,
    calibration_for,
    forecast_checks,
    forecast_study,
    long_budget_plan,
    outlook_sentences,
    outlook_table,
)
from harness.report._tables import html_table, latex_table, markdown_table, param_summary, top_table
from harness.report._verdict import Verdict, morning_verdict

__all__ = [
    "MULTIPLES",
    "Calibration",
    "ConfirmRequest",
    "Confirmation",
    "ConfirmationPlan",
    "calibration_for",
    "confirmation_plan",
    "run_confirmation",
    "Fit",
    "Forecast",
    "backtest",
    "fit_power_law",
    "forecast_checks",
    "forecast_curve",
    "forecast_study",
    "kendall_tau",
    "long_budget_plan",
    "lr_drift",
    "outlook_sentences",
    "outlook_table",
    "Report",
    "Verdict",
    "best_for_budgets",
    "build_report",
    "default_budgets",
    "default_targets",
    "eval_points",
    "fig_embeddings",
    "fig_gradflow",
    "frontier",
    "html_table",
    "latex_table",
    "markdown_table",
    "morning_verdict",
    "numeric_columns",
    "param_summary",
    "pareto_mask",
    "pareto_meaningful",
    "sampled_params",
    "study_frame",
    "time_to_targets",
    "top_table",
]
