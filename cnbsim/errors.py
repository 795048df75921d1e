"""One error hierarchy for cnbsim: every error names the file, the field and the fix.

The CLI maps each error to the Platform API's exit code (`ExitCode`) and prints one clear
message; nothing below ever reaches a user as a traceback.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path
from typing import Any


class ExitCode(IntEnum):
    """Every exit code cnbsim gives: the Platform API's (the Exit Code table of each phase in buildpacks/spec
    platform.md, e.g. #detector; lifecycle cmd/exit.go, platform/exit.go) and cnbsim's own (53, 130)."""

    SUCCESS = 0
    FAILED = 1                           # generic lifecycle error
    INVALID_ARGS = 3
    INCOMPATIBLE_PLATFORM_API = 11
    INCOMPATIBLE_BUILDPACK_API = 12
    DETECT_FAILED = 20                   # no buildpacks participating
    DETECT_FAILED_WITH_ERRORS = 21       # no group passed, and a buildpack errored
    DETECT_ERROR = 22
    ANALYZE_ERROR = 32
    RESTORE_ERROR = 42
    BUILD_FAILED_WITH_ERRORS = 51        # a bin/build failed
    BUILD_ERROR = 52
    SECRET_LEAK = 53                     # cnbsim: a build-time secret was found in the output
    EXPORT_ERROR = 62
    REBASE_ERROR = 72
    LAUNCH_ERROR = 82                    # launch errors are 80-89
    GENERATE_FAILED_WITH_ERRORS = 91
    GENERATE_ERROR = 92
    EXTEND_ERROR = 102
    INTERRUPTED = 130                    # cnbsim: SIGINT (128 + 2), as a shell reports it

    def __str__(self) -> str:   # the number, on every Python (3.10's IntEnum shows the name)
        return str(int(self))

    @staticmethod
    def is_launch(code: int) -> bool:
        """buildpacks/spec platform.md#launcher: 80-89 are the launcher's."""
        return 80 <= code <= 89


class CnbsimError(Exception):
    """Base class: a message, optionally the file and field it is about, and a hint."""

    exit_code: int = ExitCode.FAILED

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
    """Platform API incompatible (exit 11)."""

    exit_code = ExitCode.INCOMPATIBLE_PLATFORM_API


class BuildpackApiError(CnbsimError):
    """Buildpack API incompatible (exit 12)."""

    exit_code = ExitCode.INCOMPATIBLE_BUILDPACK_API


class DetectError(CnbsimError):
    """Detect errors: 20 = all groups failed, 21 = a buildpack errored, 22 = other detect error."""

    exit_code = ExitCode.DETECT_ERROR


class BuildError(CnbsimError):
    """Build errors: 51 = a buildpack's bin/build failed, 52 = other build error.

    When a bin/build failed, `buildpack` is its id and `output` its stdout and stderr (secrets redacted),
    so that a test can show why without a terminal to scroll back in.
    """

    exit_code = ExitCode.BUILD_ERROR

    def __init__(self, message: str, *, buildpack: str | None = None, output: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.buildpack = buildpack
        self.output = output
        self.image_output = output     # the output with image paths (/layers, /workspace), set by build()


class LaunchError(CnbsimError):
    """Launch errors: 80-89 (82 = failed to launch)."""

    exit_code = ExitCode.LAUNCH_ERROR


class ExportError(CnbsimError):
    """Generic export error (exit 62)."""

    exit_code = ExitCode.EXPORT_ERROR
