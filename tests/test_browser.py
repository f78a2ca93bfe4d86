"""The report as a person sees it: report.html in a real browser (headless Chromium, driven by Playwright).

Measured by the page itself: nothing wider than the window at 1280 and 1920 px (a table cut at the
edge of its scrolling box counts as too wide), every column has a header, every image loaded, and
the page asked the network for nothing. Without Chromium or Playwright the tests skip with the
reason, except where HARNESS_REQUIRE_BROWSER=1 (.ci/run sets it, and installs Debian's chromium).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from report_helpers import make_study
from sweep_helpers import harness_cli

from harness.report import build_report

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "overflowing_report.html"

MEASURE = """() => {
  const width = document.documentElement.clientWidth;
  const boxes = [...document.querySelectorAll('.wrap')];
  return {
    page_overflow: document.documentElement.scrollWidth - width,
    wider_than_window: [...document.querySelectorAll('table, figure, img, pre, .wrap')]
      .filter(e => e.getBoundingClientRect().right > width + 1).map(e => e.tagName + ': ' + e.textContent.slice(0, 40)),
    cut_tables: boxes.filter(b => b.scrollWidth > b.clientWidth + 1).map(b => b.textContent.slice(0, 60)),
    headerless_columns: [...document.querySelectorAll('th')].filter(th => !th.textContent.trim()).length,
    images: document.images.length,
    broken_images: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length,
  };
}"""


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if chromium is None or sync_playwright is None:
        missing = "chromium (apt-get install chromium)" if chromium is None else "playwright (pip install -e '.[dev]')"
        if os.environ.get("HARNESS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"HARNESS_REQUIRE_BROWSER=1 but {missing} is not installed")
        pytest.skip(f"no real browser here: {missing} is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


def measure(browser, page_path: Path, width: int) -> dict:
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_path.resolve().as_uri())
    page.wait_for_load_state("load")
    found = page.evaluate(MEASURE)
    page.close()
    found["network"] = [u for u in requests if not u.startswith(("file:", "data:"))]
    return found


def assert_fits(found: dict) -> None:
    assert found["page_overflow"] <= 0 and not found["wider_than_window"], found
    assert not found["cut_tables"], found
    assert found["headerless_columns"] == 0 and found["broken_images"] == 0 and found["images"] >= 5, found
    assert found["network"] == [], found


def test_the_checks_find_a_table_cut_at_the_edge_of_its_box(browser):
    """The fixture a broken layout looks like: if these checks passed it, they would prove nothing."""
    found = measure(browser, FIXTURE, 1280)
    assert found["cut_tables"] and found["headerless_columns"] == 1
    with pytest.raises(AssertionError):
        assert_fits(found)


def test_the_demo_studys_report_fits_the_window_at_1280_and_1920(browser, tmp_path):
    study = tmp_path / "demo.toml"
    text = (ROOT / "studies" / "demo.toml").read_text()
    study.write_text(text.replace('per_trial = "12s"', 'per_trial = "10k"').replace("trials = 12", "trials = 3"))
    run = harness_cli("sweep", study, "--results", tmp_path / "r", timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    report = harness_cli("report", tmp_path / "r", "--format", "png", timeout=600, cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    page = next((tmp_path / "r").rglob("report.html"))
    for width in (1280, 1920):
        assert_fits(measure(browser, page, width))


def test_a_200_trial_reports_tables_fit_too(browser, tmp_path):
    rng = random.Random(0)
    rows = [(rng.choices(["COMPLETE", "PRUNED", "FAIL"], weights=[6, 3, 1])[0], rng.uniform(1.4, 3.0),
             rng.uniform(20, 300), rng.choice([64, 128, 256, 512]), rng.choice(["lstm", "gru"])) for _ in range(200)]
    telemetry = tmp_path / "telemetry"
    telemetry.mkdir()
    study = make_study(tmp_path / "res", rows, telemetry_dir=telemetry)
    build_report(study, tmp_path / "report", ["png"])
    assert_fits(measure(browser, tmp_path / "report" / "report.html", 1280))
