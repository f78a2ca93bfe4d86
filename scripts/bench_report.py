"""Time to build the full report (tables, 8 figures as PNG+SVG, HTML, Markdown) for a synthetic study.

    python scripts/bench_report.py [--trials 200]
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import optuna  # noqa: E402
from report_helpers import make_study  # noqa: E402

from harness.report import build_report  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--formats", default="png,svg")
    args = parser.parse_args()
    rng = random.Random(0)
    rows = []
    for _ in range(args.trials):
        state = rng.choices(["COMPLETE", "PRUNED", "FAIL"], weights=[6, 3, 1])[0]
        rows.append((state, rng.uniform(1.4, 3.0), rng.uniform(20, 300), rng.choice([64, 128, 256, 512]),
                     rng.choice(["lstm", "gru"])))
    with tempfile.TemporaryDirectory() as tmp:
        telemetry = Path(tmp) / "telemetry"
        telemetry.mkdir()
        start = time.perf_counter()
        study = make_study(Path(tmp) / "res", rows, telemetry_dir=telemetry)
        made = time.perf_counter() - start
        report = build_report(study, Path(tmp) / "report", args.formats.split(","))
        print(f"{platform.machine()} {platform.processor() or ''}: synthetic study of {args.trials} trials "
              f"(created in {made:.1f} s)")
        print(f"report built in {report.seconds:.1f} s: {len(report.files)} files "
              f"({sum(p.stat().st_size for p in report.files) / 2**20:.1f} MiB), formats {args.formats}")


if __name__ == "__main__":
    main()
