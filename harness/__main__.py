"""`python -m harness ...` is the `harness` command, for environments where the script is not on PATH."""

import sys

from harness.cli import main

if __name__ == "__main__":  # not when a worker process (multiprocessing's spawn) re-imports the main module
    sys.exit(main())
