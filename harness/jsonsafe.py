"""JSON that every reader accepts: NaN and infinities become null (strict parsers refuse them)."""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """The same data with non-finite floats as None; an unmeasured or undefined figure is null, never 0."""
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
