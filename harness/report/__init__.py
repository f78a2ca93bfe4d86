"""How a study is judged: the trials as a DataFrame, the frontier and verdict, tables, seaborn figures, documents.

`build_report(study, out)` writes everything; `study_frame(study)` is the table it starts from.
Figures are drawn on figures of their own (no pyplot state) under a theme that is scoped to the
report, so a notebook that builds a report keeps its backend and its style.
"""

from harness.report._build import Report, build_report, pareto_meaningful
from harness.report._figures import fig_embeddings, fig_gradflow
from harness.report._frame import numeric_columns, pareto_mask, sampled_params, study_frame
from harness.report._frontier import (
    best_for_budgets,
    default_budgets,
    default_targets,
    eval_points,
    frontier,
    time_to_targets,
)
from harness.report._tables import html_table, latex_table, markdown_table, param_summary, top_table
from harness.report._verdict import Verdict, morning_verdict

__all__ = [
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
