"""The report on a synthetic study with known numbers, a hostile sample, no finished trial, a running study."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from report_helpers import HOSTILE, make_study

from harness.cli import main
from harness.common import HarnessError
from harness.report import build_report, pareto_mask

ROWS = [  # state, bpc, device-seconds, hidden_dim, model
    ("COMPLETE", 2.0, 100.0, 64, "lstm"),
    ("COMPLETE", 1.8, 200.0, 256, "gru"),
    ("COMPLETE", 2.2, 50.0, 32, "lstm"),
    ("COMPLETE", 1.9, 300.0, 512, "gru"),   # dominated by #1
    ("COMPLETE", 2.5, 60.0, 16, "lstm"),    # dominated by #2
    ("PRUNED", 3.0, 20.0, 128, "gru"),
    ("FAIL", 9.9, 1.0, 64, "lstm"),
]
FIGURES = ["frontier", "learning_curves", "param_effects", "importance", "throughput", "device_timeseries",
           "text_metrics", "progress"]


@pytest.fixture
def synthetic(tmp_path):
    telemetry = tmp_path / "telemetry"
    telemetry.mkdir()
    return make_study(tmp_path / "res", ROWS, telemetry_dir=telemetry)


def test_tables_match_hand_computed_values(synthetic, tmp_path):
    out = tmp_path / "report"
    report = build_report(synthetic, out, ["png", "svg", "pdf"], top_k=3)
    frame = report.frame.set_index("number")
    assert not report.partial
    assert set(frame.index[frame["pareto"]]) == {0, 1, 2}
    assert frame.loc[[1, 3, 0, 2, 4], "rank_bpc"].tolist() == [1, 2, 3, 4, 5]
    # efficiency = (log2(64) - bpc) / device-seconds
    assert frame.loc[2, "efficiency_bits_per_device_s"] == pytest.approx((6 - 2.2) / 50)
    assert frame.loc[[2, 4, 0, 1, 3], "rank_efficiency"].tolist() == [1, 2, 3, 4, 5]
    assert frame.loc[1, "best_ppl"] == pytest.approx(2**1.8)
    assert math.isnan(frame.loc[5, "rank_bpc"]) and frame.loc[6, "state"] == "FAIL"
    assert frame.loc[6, "reason"] == "RuntimeError: boom"

    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 7 and set(trials["state"]) == {"COMPLETE", "PRUNED", "FAIL"}
    assert len(pd.read_parquet(out / "trials.parquet")) == 7
    top = (out / "top.md").read_text()
    by_bpc = top.split("## Top 3 by efficiency")[0]
    assert [line.split("|")[1].strip() for line in by_bpc.splitlines() if line.startswith("| ") and "---" not in line][1:] \
        == ["1", "3", "0"]
    assert "bpc (bits/char)" in top and "device (s)" in top
    tex = (out / "top.tex").read_text()
    assert r"\begin{tabular}" in tex and r"bpc (bits/char)" in tex
    summary = (out / "param_summary.md").read_text()
    assert "hidden_dim" in summary and "Spearman" in summary and "mean bpc by value" in summary

    for name in FIGURES:
        for ext in ("png", "svg", "pdf"):
            path = out / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 1000, path


def test_html_is_self_contained_and_escapes_samples(synthetic, tmp_path):
    out = tmp_path / "report"
    build_report(synthetic, out)
    page = (out / "report.html").read_text()
    assert "<script" not in page.lower() and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "data:image/png;base64," in page and "src='frontier.png'" not in page
    assert "Which synthetic configuration wins?" in page and "Synthetic GPU" in page
    md = (out / "report.md").read_text()
    assert "![" in md and "frontier.png" in md and HOSTILE in md  # Markdown keeps it inside a code block
    # the answer comes first: the question, the winner with its caveat, then the frontier figure
    assert page.index("Which synthetic configuration wins?") < page.index("Best trial: #1") < \
        page.index("data:image/png") < page.index("Best configuration for a budget")
    assert "harness confirm" in page  # no confirmation yet: it says how to get one


def test_every_image_is_embedded_and_the_page_requests_nothing(synthetic, tmp_path):
    import base64
    import re

    out = tmp_path / "report"
    build_report(synthetic, out)
    page = (out / "report.html").read_text()
    sources = re.findall(r"""src=['"]([^'"]*)['"]""", page)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    for src in sources:
        assert len(base64.b64decode(src.split(",", 1)[1])) > 1000  # a real PNG, not an empty one
    assert not re.search(r"(href|src|url)\s*[=(]\s*['\"]?(https?:)?//", page)  # no external requests
    assert "default-src 'none'" in page


def test_the_pareto_figure_is_kept_only_where_trials_differ_in_cost(tmp_path):
    from harness.report import pareto_meaningful

    assert not pareto_meaningful({"budget": "60s"})
    assert pareto_meaningful({"budget": "500000tok"}) and pareto_meaningful({"budget": "2ep"})
    assert pareto_meaningful({"budget": "60s", "second_objective": "device_seconds"})


def test_study_without_finished_trials_is_a_clear_message(tmp_path, capsys):
    make_study(tmp_path / "res", [("PRUNED", 3.0, 10.0, 64, "lstm"), ("FAIL", 9.0, 1.0, 32, "gru")])
    with pytest.raises(HarnessError, match="no finished trial yet"):
        build_report(__import__("optuna").load_study(study_name="synth", storage=_storage(tmp_path)), tmp_path / "o")
    assert main(["report", str(tmp_path / "res")]) == 2
    assert "no finished trial yet (trials: 1 pruned, 1 fail)" in capsys.readouterr().err


def _storage(tmp_path):
    from harness.search import open_storage

    return open_storage(tmp_path / "res")


def test_running_study_gives_a_partial_report(synthetic, tmp_path, capsys):
    synthetic.ask()  # a trial left RUNNING, as while the sweep goes on
    assert main(["report", str(tmp_path / "res"), "--out", str(tmp_path / "o"), "--format", "png"]) == 0
    assert "partial report" in capsys.readouterr().err
    assert "PARTIAL REPORT" in (tmp_path / "o" / "report.html").read_text()


def test_bad_format_is_refused(synthetic, tmp_path):
    with pytest.raises(HarnessError, match="^figure format gif is not supported; choose from png, svg, pdf$"):
        build_report(synthetic, tmp_path / "o", ["png", "gif"])  # a notebook's words: no flag in them
    assert main(["report", str(tmp_path / "res"), "--out", str(tmp_path / "o"), "--format", "png,gif"]) == 2


def test_pareto_mask():
    assert pareto_mask([1, 2, 3], [3, 2, 1]).tolist() == [True, True, True]
    assert pareto_mask([1, 2, 2], [1, 2, 3]).tolist() == [True, False, False]
    assert pareto_mask([1, 1], [2, 2]).tolist() == [True, True]  # ties dominate neither


def test_parameter_axes_can_be_read_whole_numbers_and_log_ranges():
    from matplotlib.figure import Figure

    from harness.report._figures import readable_axis

    def labelled(values, log, integer):
        ax = Figure().subplots()
        ax.scatter(values, range(len(values)))
        readable_axis(ax.xaxis, pd.Series(values), log=log, integer=integer)
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        return ticks, [ax.xaxis.get_major_formatter()(t, i) for i, t in enumerate(ticks)]

    ticks, _ = labelled([1, 2, 3, 4], log=False, integer=True)
    assert ticks and all(float(t).is_integer() for t in ticks)  # layers has no 1.5
    ticks, labels = labelled([1e-4, 3e-4, 1e-3, 1e-2, 0.1], log=True, integer=False)
    assert len(ticks) >= 4 and ("0.002" in labels or "0.0002" in labels), labels  # 1-2-5 steps, not one a decade
    ticks, labels = labelled([39, 45, 58], log=True, integer=True)  # within a decade: plain ticks
    assert len(ticks) >= 2 and all(label.isdigit() for label in labels)
