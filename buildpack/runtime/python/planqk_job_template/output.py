"""What `run()` returned: its kind and the result block on stdout (planqk-runtime.md §1.7, §1.8).

The kind is decided by the class name alone (`ResultResponse`, `ErrorResponse`), as PlanQK
documents: users bring their own classes. The block is an empty line, the marker, the value as
JSON (keys sorted, indent 2, objects as their `__dict__`, anything else as `str`), the marker.
For `None` only the empty line is printed.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

MARKER = "PlanQK:Job:MultilineResult"
RESULT, ERROR, OTHER, NONE = "ResultResponse", "ErrorResponse", "other", "none"


def kind_of(value: Any) -> str:
    if value is None:
        return NONE
    name = type(value).__name__
    return name if name in (RESULT, ERROR) else OTHER


def to_json(value: Any) -> str:
    """The block's JSON; raises TypeError or ValueError for values JSON cannot hold (circular, bad keys)."""
    return json.dumps(value, sort_keys=True, indent=2, default=_fallback)


def block(value: Any) -> str:
    """The text printed after the user's output."""
    if value is None:
        return "\n"
    return f"\n{MARKER}\n{to_json(value)}\n{MARKER}\n"


def emit(text: str, stream: TextIO) -> None:
    stream.write(text)
    stream.flush()


def _fallback(value: Any) -> Any:
    attributes = getattr(value, "__dict__", None)
    return attributes if isinstance(attributes, dict) else str(value)
