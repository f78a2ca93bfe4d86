"""The report's PDFs at a paper's width: the check finds what a reader would stumble on, and the
report's own figures pass it at 3.3 in (one column) or 6.9 in (the text width, several panels)."""

from __future__ import annotations

import random
import re
import warnings

import pytest
from matplotlib.figure import Figure
from report_helpers import make_study

from harness.report import build_report
from harness.report._paper import (
    COLUMN_IN,
    MIN_PT,
    TEXT_IN,
    PaperLayoutWarning,
    lay_out_for_paper,
    layout_problems,
)
from harness.report._paper import save_figure as _save


def _screen_figure(panels: int = 1) -> Figure:
    """A figure as the report draws it for the screen: 6 in per panel, 10-pt text, long labels."""
    fig = Figure(figsize=(6.0 * panels, 4.0))
    for ax in fig.subplots(1, panels, squeeze=False).flat:
        ax.plot(range(1000, 20001, 1000), [3 - i / 40 for i in range(20)], label="every trial's evaluations "
                "(pruned ones too), drawn in grey")
        ax.set(xlabel="device-seconds spent by the trial (fair share of the device)",
               ylabel="best held-out bits per character so far", title="Best held-out bpc for the device-seconds")
        ax.legend()
    fig.tight_layout()
    return fig


def test_the_check_names_small_text_text_off_the_page_and_overlapping_labels():
    fig = Figure(figsize=(COLUMN_IN, 2.2))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    ax.annotate("#3", (0.5, 0.5), fontsize=8)
    ax.annotate("#4", (0.5, 0.5), fontsize=8)
    ax.text(0.1, 0.9, "tiny", fontsize=4)
    ax.text(0.9, 0.1, "a label far too long to stay on a page a column wide", fontsize=8)
    fig.tight_layout()
    problems = layout_problems(fig)
    assert any("'#3' overlaps '#4'" in p or "'#4' overlaps '#3'" in p for p in problems), problems
    assert any("'tiny' is 4.0 pt" in p for p in problems), problems
    assert any("far too long" in p and "runs off the page" in p for p in problems), problems


def test_a_screen_figure_shrunk_to_a_column_would_not_read_and_laid_out_for_it_does():
    fig = _screen_figure()
    fig.set_size_inches(COLUMN_IN, 2.2)  # what pasting the 6-in figure into a column does, text kept
    assert layout_problems(fig)
    fig = _screen_figure()
    assert lay_out_for_paper(fig) == COLUMN_IN
    assert fig.get_size_inches()[0] == pytest.approx(COLUMN_IN)
    assert layout_problems(fig) == []
    sizes = [t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize")) if t.get_text()]
    assert min(sizes) >= MIN_PT and max(sizes) <= 8.0


def test_several_panels_take_the_text_width():
    fig = _screen_figure(panels=2)
    assert lay_out_for_paper(fig) == TEXT_IN
    assert layout_problems(fig) == []


def test_a_pdf_that_would_not_read_warns_and_the_png_keeps_the_screen_layout(tmp_path):
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    fig.text(0.9, 0.5, "a note placed past the right edge", fontsize=8)  # no layout moves a figure's text
    with pytest.warns(PaperLayoutWarning, match=r"crowded\.pdf at 3\.3 in: 'a note placed.*runs off the page"):
        paths = _save(fig, tmp_path, "crowded", ["pdf", "png"])
    assert [p.suffix for p in paths] == [".png", ".pdf"]  # the PNG drawn first, at 6 in
    assert _page_inches(paths[1]) == pytest.approx((COLUMN_IN, fig.get_size_inches()[1]), abs=0.01)


def _page_inches(path) -> tuple[float, float]:
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", path.read_bytes())
    return float(box.group(1)) / 72, float(box.group(2)) / 72


@pytest.mark.parametrize("trials", [7, 200])
def test_every_report_pdf_reads_at_a_papers_width(tmp_path, trials):
    rng = random.Random(trials)
    rows = [(rng.choices(["COMPLETE", "PRUNED", "FAIL"], weights=[6, 3, 1])[0] if i > 1 else "COMPLETE",
             rng.uniform(1.4, 3.0), rng.uniform(20, 300), rng.choice([64, 128, 256, 512]), rng.choice(["lstm", "gru"]))
            for i in range(trials)]
    telemetry = tmp_path / "telemetry"
    telemetry.mkdir()
    study = make_study(tmp_path / "res", rows, telemetry_dir=telemetry)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PaperLayoutWarning)
        report = build_report(study, tmp_path / "report", ["png", "pdf"])
    pdfs = sorted((tmp_path / "report").glob("*.pdf"))
    assert {p.stem for p in pdfs} >= {"frontier", "learning_curves", "param_effects", "progress", "families"}
    for pdf in pdfs:
        width, height = _page_inches(pdf)
        assert width == pytest.approx(COLUMN_IN, abs=0.01) or width == pytest.approx(TEXT_IN, abs=0.01), pdf
        assert height <= 9.01, pdf
    page = (report.out_dir / "report.md").read_text()
    assert "the PDF" not in page  # no figure's PDF was reported as unreadable
