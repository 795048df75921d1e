"""The states and modes cnbsim names: enums whose values are the strings users see (reports, flags, JSON)."""

from __future__ import annotations

from enum import Enum


class _Named(str, Enum):
    """A str-valued enum that formats as its value on every supported Python (3.10 has no StrEnum)."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(str(m.value) for m in cls)


class DetectStatus(_Named):
    """A buildpack's outcome in one group (lifecycle phase/detector.go: pass, fail, err; skip = an optional fail)."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"


class LayerStatus(_Named):
    """What a build did with a layer: kept as the cache put it back (contents and metadata unchanged), kept
    from the previous output (a launch layer the buildpack left without contents), changed or recreated
    what was put back, or made one where there was none before."""

    RESTORED = "restored"
    REUSED = "reused"
    REBUILT = "rebuilt"
    NEW = "new"


class Installer(_Named):
    """How the Paketo Python stand-ins install packages: record them (fast, offline) or install for real."""

    STUB = "stub"
    REAL = "real"


class SandboxMode(_Named):
    """`--sandbox`: bubblewrap when it works here, always (or fail), or never."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"
