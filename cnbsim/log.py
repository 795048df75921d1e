"""The lifecycle's log: leveled lines, `ERROR: ` / `Warning: ` prefixes (lc:log/default_logger.go)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3}


@dataclass
class Logger:
    """Writes lines at or above `level` to `stream` (None = keep only) and keeps every line."""

    level: str = "info"
    stream: TextIO | None = field(default_factory=lambda: sys.stdout)
    records: list[tuple[str, str]] = field(default_factory=list)
    banners: bool = False          # pack's `===> DETECTING` phase lines (the lifecycle prints none)
    color: bool = False
    secrets: tuple[str, ...] = ()  # values never shown on the stream (records keep them for the leak check)

    def redact(self, text: str) -> str:
        """`text` with every secret value replaced by `<redacted>`."""
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def phase(self, name: str) -> None:
        if self.banners and self.stream is not None:
            self._write(f"\033[1;36m===> {name}\033[0m" if self.color else f"===> {name}")

    def log(self, level: str, message: str) -> None:
        self.records.append((level, message))
        if self.stream is not None and LEVELS[level] >= LEVELS.get(self.level, 1):
            prefix = _prefix(level)
            if self.color and prefix:
                prefix = f"\033[{'31' if level == 'error' else '33'}m{prefix}\033[0m"
            self._write(prefix + message)

    def _write(self, text: str) -> None:
        assert self.stream is not None
        text = self.redact(text)
        self.stream.write(text if text.endswith("\n") else text + "\n")
        self.stream.flush()

    def debug(self, message: str) -> None:
        self.log("debug", message)

    def info(self, message: str) -> None:
        self.log("info", message)

    def warn(self, message: str) -> None:
        self.log("warn", message)

    def error(self, message: str) -> None:
        self.log("error", message)

    def raw(self, text: str) -> None:
        """Buildpack output: passed through as written (lc streams bin/build output)."""
        self.records.append(("output", text))
        if self.stream is not None:
            self.stream.write(self.redact(text))
            self.stream.flush()

    def replay(self, records: list[tuple[str, str]]) -> None:
        """Print buffered lines regardless of level (the detector does so on failure)."""
        for level, message in records:
            if self.stream is not None:
                self._write(_prefix(level) + message)
        self.records.extend(records)

    @property
    def text(self) -> str:
        return "".join(m if lvl == "output" else _prefix(lvl) + m + ("" if m.endswith("\n") else "\n")
                       for lvl, m in self.records)


def _prefix(level: str) -> str:
    return {"error": "ERROR: ", "warn": "Warning: "}.get(level, "")


def quiet() -> Logger:
    return Logger(level="error", stream=None)
