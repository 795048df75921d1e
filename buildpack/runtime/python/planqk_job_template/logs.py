"""Logging to stdout in loguru's line layout, at the level `LOG_LEVEL` names (default DEBUG).

PlanQK's runtime sends every log line, its own and the user's `logging` calls, to stdout
(PlanQK's job-template runtime, as planqk-commons' planqk/commons/runtime has it); only tracebacks go to stderr. loguru is not needed for that.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Optional, Tuple

DEFAULT_LEVEL = "DEBUG"
# loguru's own level names (TRACE, SUCCESS) map to the nearest stdlib level.
LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "SUCCESS": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}


class LoguruLayout(logging.Formatter):
    """`YYYY-MM-DD HH:mm:ss.SSS | LEVEL    | module:function:line - message`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        head = f"{stamp}.{int(record.msecs):03d} | {record.levelname:<8} | {record.name}:{record.funcName}:{record.lineno}"
        text = f"{head} - {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def parse_level(value: Optional[str]) -> Tuple[int, str]:
    """The level for a LOG_LEVEL value (case-insensitive) and, if it is not one, why."""
    if value is None or not value.strip():
        return LEVELS[DEFAULT_LEVEL], ""
    name = value.strip().upper()
    if name in LEVELS:
        return LEVELS[name], ""
    return LEVELS[DEFAULT_LEVEL], (f"LOG_LEVEL={value!r} is not a log level; using {DEFAULT_LEVEL} "
                                   "(use DEBUG, INFO, WARNING, ERROR or CRITICAL)")


def setup(value: Optional[str]) -> None:
    """Route the root logger (runtime and user code alike) to stdout at the level `value` names."""
    level, problem = parse_level(value)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LoguruLayout())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if problem:
        logging.getLogger(__name__).warning("%s", problem)
