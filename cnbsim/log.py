"""The lifecycle's log, and the one secret redactor.

Logger: leveled lines with `ERROR: ` / `Warning: ` prefixes (lifecycle log/default_logger.go), kept
as records (the build log, the leak check) and written to a stream unless it is None;
BufferedLogger holds lines to replay into another Logger later (the detector's, lifecycle
phase/detector.go). Redactor: a build-time secret's value is shown as `<redacted>`; which env
var names are secrets is decided here too (SECRET_NAME_PATTERNS).
"""

from __future__ import annotations

import fnmatch
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TextIO

# Env var names whose values are secrets (searched case-insensitively), besides those named with --secret-env.
# Shell-style patterns, matched against the upper-cased name.
SECRET_NAME_PATTERNS: tuple[str, ...] = ("*TOKEN*", "*SECRET*", "*PASSWORD*", "*PASSW*", "*_KEY*", "*_PAT", "*APIKEY*",
                                         "*CREDENTIAL*", "*PRIVATE*")
MIN_SECRET_LENGTH = 4   # shorter values would match everywhere: never redacted, and not searched for leaks
REDACTED = "<redacted>"


def is_secret_name(name: str, extra_names: Iterable[str] = ()) -> bool:
    """True when env var `name` holds a secret: it matches SECRET_NAME_PATTERNS or is one of `extra_names`."""
    upper = name.upper()
    return name in set(extra_names) or any(fnmatch.fnmatchcase(upper, p) for p in SECRET_NAME_PATTERNS)


class Redactor:
    """Replaces each secret value (of at least MIN_SECRET_LENGTH characters) by `<redacted>`, longest first."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def __bool__(self) -> bool:
        return bool(self.secrets)


NO_SECRETS = Redactor()


class Level(str, Enum):
    """A log line's level; `output` is a buildpack's own output, passed through as written."""

    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"
    OUTPUT = "output"

    def __str__(self) -> str:
        return self.value


_RANK = {"debug": 0, "info": 1, "warn": 2, "error": 3}
_PREFIX = {"error": "ERROR: ", "warn": "Warning: "}
_WRITE = threading.Lock()   # whole lines, from any thread (cnbsim serve logs from its job threads)


@dataclass
class Logger:
    """Writes lines at or above `level` to `stream` (None = keep only) and keeps every line in `records`."""

    level: str = "info"
    stream: TextIO | None = field(default_factory=lambda: sys.stdout)
    records: list[tuple[str, str]] = field(default_factory=list)
    banners: bool = False          # pack's `===> DETECTING` phase lines (the lifecycle prints none)
    color: bool = False
    redact: Redactor = NO_SECRETS  # applied to what is shown; records keep the values for the leak check
    keep: bool = True              # False: keep no records (a long-running server)

    def with_secrets(self, redact: Redactor) -> Logger:
        """This logger, redacting `redact`'s secrets: same stream and records, the caller's logger unchanged."""
        return replace(self, redact=redact)

    def phase(self, name: str) -> None:
        if self.banners and self.stream is not None:
            self._write(f"\033[1;36m===> {name}\033[0m" if self.color else f"===> {name}")

    def log(self, level: str, message: str) -> None:
        if self.keep:
            self.records.append((str(level), message))
        if self.stream is not None and _RANK[str(level)] >= _RANK.get(str(self.level), 1):
            prefix = prefix_of(level)
            if self.color and prefix:
                prefix = f"\033[{'31' if level == Level.ERROR else '33'}m{prefix}\033[0m"
            self._write(prefix + message)

    def _write(self, text: str) -> None:
        assert self.stream is not None
        text = self.redact(text)
        with _WRITE:
            self.stream.write(text if text.endswith("\n") else text + "\n")
            self.stream.flush()

    def debug(self, message: str) -> None:
        self.log(Level.DEBUG, message)

    def info(self, message: str) -> None:
        self.log(Level.INFO, message)

    def warn(self, message: str) -> None:
        self.log(Level.WARN, message)

    def error(self, message: str) -> None:
        self.log(Level.ERROR, message)

    def raw(self, text: str) -> None:
        """Buildpack output: passed through as written (lc streams bin/build output)."""
        if self.keep:
            self.records.append((str(Level.OUTPUT), text))
        if self.stream is not None:
            with _WRITE:
                self.stream.write(self.redact(text))
                self.stream.flush()

    def replay(self, records: Iterable[tuple[str, str]]) -> None:
        """Print buffered lines regardless of level (the detector does so on failure)."""
        records = list(records)
        for level, message in records:
            if self.stream is not None:
                self._write(prefix_of(level) + message)
        self.records.extend(records)

    def lines(self, since: int = 0, levels: tuple[str, ...] = ("info", "warn", "error")) -> tuple[str, ...]:
        """The records from index `since` at these levels, as shown (with their prefix)."""
        return tuple(prefix_of(lvl) + m for lvl, m in self.records[since:] if lvl in levels)

    @property
    def text(self) -> str:
        return "".join(m if lvl == Level.OUTPUT else prefix_of(lvl) + m + ("" if m.endswith("\n") else "\n")
                       for lvl, m in self.records)


@dataclass
class BufferedLogger(Logger):
    """Keeps lines without showing them, to pass on to another Logger once the outcome is known."""

    stream: TextIO | None = None

    def flush_to(self, log: Logger, *, every_level: bool = False) -> None:
        """Each line to `log` at its level, or (`every_level`) shown whatever `log`'s level is."""
        if every_level:
            log.replay(self.records)
        else:
            for level, message in self.records:
                log.log(level, message)
        self.records = []


class _LineStream:
    """A text stream that hands each written line to a callable."""

    def __init__(self, on_line: Callable[[str], Any]) -> None:
        self.on_line = on_line

    def write(self, text: str) -> int:
        self.on_line(text.rstrip("\n"))
        return len(text)

    def flush(self) -> None:
        pass


def as_logger(log: Logger | Callable[[str], Any] | None) -> Logger:
    """A Logger for what an API caller gave: a Logger, a callable taking each shown line, or nothing."""
    if isinstance(log, Logger):
        return log
    if log is None:
        return Logger(stream=None)
    return Logger(stream=_LineStream(log))   # type: ignore[arg-type]


def prefix_of(level: str) -> str:
    return _PREFIX.get(str(level), "")


def quiet() -> Logger:
    return Logger(level="error", stream=None)
