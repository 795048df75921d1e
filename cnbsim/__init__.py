"""cnbsim: the Cloud Native Buildpacks lifecycle, offline and without Docker.

    import cnbsim
    result = cnbsim.build("my-app", buildpacks=["./my-buildpack"])
    result.layer("my/buildpack", "deps").launch
    result.launch_env("web")["PATH"]
"""

from cnbsim.api import BuildOptions, BuildResult, build, detect
from cnbsim.phase.detect import DetectFailed, DetectResult
from cnbsim.errors import (BuildError, BuildpackApiError, CnbsimError, ConfigError, DetectError, LaunchError,
                           PlatformApiError)

__version__ = "0.1.0"

__all__ = [
    "build", "detect", "BuildOptions", "BuildResult", "DetectResult", "DetectFailed", "CnbsimError",
    "ConfigError", "DetectError", "BuildError", "BuildpackApiError", "PlatformApiError", "LaunchError",
]
