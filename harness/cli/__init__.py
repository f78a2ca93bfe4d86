"""The `harness` command: argument parsing and printing only; the work lives in the other subpackages.

Each command's parser and handler live in the module for its concern (_train, _checkpoints,
_study, _diagnostics); `main` runs one with stop signals routed to KeyboardInterrupt and user
mistakes printed as one line with their exit code.
"""

from __future__ import annotations

import argparse
import sys

from harness.cli._checkpoints import add_generate_parsers
from harness.cli._diagnostics import add_course_parsers
from harness.cli._forecast import add_forecast_parser
from harness.cli._study import add_confirm_parser, add_sweep_parsers
from harness.cli._train import add_train_parser, unique_run_dir
from harness.common import HarnessError, interrupts

__all__ = ["build_parser", "main", "unique_run_dir"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Sweep and benchmark character-level language models: Optuna studies, NVML telemetry, "
                    "pandas/seaborn reports. Start with: harness sweep studies/demo.toml && harness report "
                    "studies/demo.toml")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_generate_parsers(sub)
    add_sweep_parsers(sub)
    add_confirm_parser(sub)
    add_forecast_parser(sub)
    add_course_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    interrupts.install()  # SIGTERM and SIGHUP stop a command the way Ctrl-C does
    try:
        return args.handler(args)
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted; nothing was lost (what was finished is kept)", file=sys.stderr)
        return 130
    finally:
        interrupts.restore()

