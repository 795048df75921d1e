"""cnbsim: the Cloud Native Buildpacks lifecycle, offline and without Docker.

    import cnbsim
    result = cnbsim.build("my-app", buildpacks=["./my-buildpack"])
    result.layer("my/buildpack", "deps").launch
    result.launch_env("web")["PATH"]
"""

from __future__ import annotations

from typing import Any

from cnbsim.errors import (
    BuildError,
    BuildpackApiError,
    CnbsimError,
    ConfigError,
    DetectError,
    LaunchError,
    PlatformApiError,
)

__version__ = "0.1.0"

# Imported on first use (PEP 562), so that `cnbsim lifecycle ...` starts without loading the whole API.
_LAZY = {"build": "cnbsim.api", "detect": "cnbsim.api", "BuildOptions": "cnbsim.api", "BuildResult": "cnbsim.api",
         "DetectFailed": "cnbsim.phase.detect", "DetectResult": "cnbsim.phase.detect"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnbsim' has no attribute {name!r}")

__all__ = [
    "BuildError",
    "BuildOptions",
    "BuildResult",
    "BuildpackApiError",
    "CnbsimError",
    "ConfigError",
    "DetectError",
    "DetectFailed",
    "DetectResult",
    "LaunchError",
    "PlatformApiError",
    "build",
    "detect",
]
