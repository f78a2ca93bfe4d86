"""`python -m harness ...` is the `harness` command, for environments where the script is not on PATH."""

import sys

from harness.cli import main

sys.exit(main())
