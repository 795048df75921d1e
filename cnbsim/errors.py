"""One error hierarchy for cnbsim: every error names the file, the field and the fix.

The CLI maps each error to the Platform API's exit code (platform.md "Exit Codes")
and prints one clear message; nothing below ever reaches a user as a traceback.
"""

from __future__ import annotations

from pathlib import Path


class CnbsimError(Exception):
    """Base class: a message, optionally the file and field it is about, and a hint."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        hint: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.field = field
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(f"{self.file}: ")
        if self.field:
            parts.append(f"field '{self.field}': ")
        parts.append(self.message)
        if self.hint:
            parts.append(f" ({self.hint})")
        return "".join(parts)


class ConfigError(CnbsimError):
    """A file given to cnbsim (TOML, JSON, a directory) is missing or invalid."""


class PlatformApiError(CnbsimError):
    """platform.md: 11 = platform API incompatible."""

    exit_code = 11


class BuildpackApiError(CnbsimError):
    """platform.md: 12 = buildpack API incompatible."""

    exit_code = 12


class DetectError(CnbsimError):
    """platform.md: 20 = all groups failed, 21 = a buildpack errored, 22 = other detect error."""

    exit_code = 22


class BuildError(CnbsimError):
    """platform.md: 51 = a buildpack's bin/build failed, 52 = other build error."""

    exit_code = 52


class LaunchError(CnbsimError):
    """platform.md: 80-89 = launch errors (82 = failed to launch)."""

    exit_code = 82


class ExportError(CnbsimError):
    """platform.md "Exit Codes": 62 = generic export error."""

    exit_code = 62
