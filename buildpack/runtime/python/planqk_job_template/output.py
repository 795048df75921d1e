"""What `run()` returned: its kind and the result block on stdout (PlanQK's job-template runtime, as planqk-commons' planqk/commons/runtime has it).

The kind is decided by the class name alone (`ResultResponse`, `ErrorResponse`), as PlanQK
documents: users bring their own classes. The block is an empty line, the marker, the value as
JSON (keys sorted, indent 2, a pydantic model as its JSON dump, other objects as their
`__dict__`, anything else as `str`), the marker. For `None` only the empty line is printed.

As PlanQK's current (v2) runtime does, the result is also written to `OUTPUT_DIRECTORY`
(default `/var/runtime/output`) when that directory exists: `output.json`, or `output.txt` for
a str, int, float or bool (as JSON: a string with its quotes), keys in their order; a pydantic
model as its own JSON dump; nothing for `None`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, TextIO

from planqk_job_template.binding import model_json_text, model_json_value

MARKER = "PlanQK:Job:MultilineResult"
OUTPUT_DIRECTORY_VAR = "OUTPUT_DIRECTORY"
DEFAULT_OUTPUT_DIRECTORY = "/var/runtime/output"
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


def output_file(value: Any, env: Mapping[str, str]) -> Optional[str]:
    """Write the v2 output file when the output directory exists; its path, or None when none is written.
    Raises TypeError/ValueError for values JSON cannot hold, OSError when the file cannot be written."""
    directory = env.get(OUTPUT_DIRECTORY_VAR) or DEFAULT_OUTPUT_DIRECTORY
    if value is None or not os.path.isdir(directory):
        return None
    simple = isinstance(value, (str, int, float, bool))
    text = model_json_text(value)
    if text is None:
        text = json.dumps(value, indent=2, default=_fallback)
    path = os.path.join(directory, "output.txt" if simple else "output.json")
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(partial, path)
    return path


def _fallback(value: Any) -> Any:
    dumped = model_json_value(value)
    if dumped is not value:
        return dumped
    attributes = getattr(value, "__dict__", None)
    return attributes if isinstance(attributes, dict) else str(value)
