"""Files that are whole or absent, and JSON that every reader accepts.

NaN and infinities become null (strict parsers refuse them; an unmeasured or undefined figure is
null, never 0). Every file the harness writes for later (result.json, checkpoints, heartbeats)
goes through `write_atomic`: a temporary file beside it, then a rename, so an interrupt, a crash
or a full disk never leaves half of it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def finite(value: Any) -> Any:
    """The same data with non-finite floats as None."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # a numpy scalar (pandas hands them out)
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(data: Any, **kwargs: Any) -> str:
    return json.dumps(finite(data), allow_nan=False, **kwargs)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary path beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    text = dumps(data, indent=indent, default=str) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text))
