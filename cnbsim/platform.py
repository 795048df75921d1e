"""What the platform gives the lifecycle: directories, Platform API, run-image target, limits.

Also the per-buildpack `CNB_*` variables for bin/detect and bin/build, which depend on
the Buildpack API the buildpack declares (cnb-spec.md 1.3 A9-A12, 2.5.4, 3.2.4).
"""

from __future__ import annotations

import platform as _host
from dataclasses import dataclass, field
from pathlib import Path

from cnbsim.env import Env
from cnbsim.model._fields import Fields
from cnbsim.model.api import DEFAULT_PLATFORM_API, ApiVersion
from cnbsim.model.buildpack import BuildpackDescriptor, Target
from cnbsim.tomlio import read_toml

DEFAULT_DETECT_TIMEOUT = 60.0
DEFAULT_BUILD_TIMEOUT = 1800.0

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}


@dataclass(frozen=True)
class RunTarget:
    """The run image's target (platform.md "analyzed.toml" [run-image.target])."""

    os: str = "linux"
    arch: str = ""
    arch_variant: str = ""
    distro_name: str = ""
    distro_version: str = ""

    @classmethod
    def host(cls, os_release: Path = Path("/etc/os-release")) -> "RunTarget":
        """linux/<host arch>, distro from /etc/os-release as lc:platform/target_data.go reads it."""
        values: dict[str, str] = {}
        try:
            for line in os_release.read_text(encoding="utf-8").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    values[key.strip()] = value.strip().strip('"').strip("'")
        except OSError:
            pass
        machine = _host.machine().lower()
        return cls("linux", _ARCH.get(machine, machine), "", values.get("ID", ""), values.get("VERSION_ID", ""))

    @classmethod
    def from_analyzed(cls, analyzed: Path, os_release: Path = Path("/etc/os-release")) -> "RunTarget":
        """`[run-image.target]` of analyzed.toml, as lifecycle platform/target_data.go fills it in.

        Without a distro: os defaults to linux, arch to the host's, and the distro comes from
        /etc/os-release; a target with a distro is taken as written. No file: the host's target."""
        host = cls.host(os_release)
        if not analyzed.is_file():
            return host
        data = read_toml(analyzed, what="analyzed.toml")
        fields = Fields(data, analyzed).sub("run-image").sub("target")
        distro = fields.sub("distro") if fields.has("distro") else None
        if distro is not None:
            return cls(fields.str("os"), fields.str("arch"), fields.str("arch-variant"),
                       distro.str("name"), distro.str("version"))
        return cls(fields.str("os") or "linux", fields.str("arch") or host.arch, fields.str("arch-variant"),
                   host.distro_name, host.distro_version)

    def satisfies(self, target: Target) -> bool:
        """lc TargetSatisfiedForBuild: os/arch/variant equal or either empty; any listed distro matches."""
        def match(a: str, b: str) -> bool:
            return not a or not b or a == b
        if not (match(target.os, self.os) and match(target.arch, self.arch)
                and match(target.arch_variant, self.arch_variant)):
            return False
        if not target.distros:
            return True
        if not self.distro_name:
            return False
        return any(match(d.name, self.distro_name) and match(d.version, self.distro_version)
                   for d in target.distros)

    def env(self) -> dict[str, str]:
        out = {"CNB_TARGET_OS": self.os, "CNB_TARGET_ARCH": self.arch}
        for key, value in (("CNB_TARGET_ARCH_VARIANT", self.arch_variant),
                           ("CNB_TARGET_DISTRO_NAME", self.distro_name),
                           ("CNB_TARGET_DISTRO_VERSION", self.distro_version)):
            if value:
                out[key] = value
        return out

    def describe(self) -> str:
        return (f'{{"os":"{self.os}","arch":"{self.arch}","distro":'
                f'{{"name":"{self.distro_name}","version":"{self.distro_version}"}}}}')


@dataclass(frozen=True)
class Platform:
    """The lifecycle's inputs shared by detect and build."""

    app_dir: Path
    platform_dir: Path
    layers_dir: Path
    build_config_dir: Path | None = None
    api: ApiVersion = DEFAULT_PLATFORM_API
    exec_env: str = "production"
    target: RunTarget = field(default_factory=RunTarget.host)
    detect_timeout: float = DEFAULT_DETECT_TIMEOUT
    build_timeout: float = DEFAULT_BUILD_TIMEOUT
    base_env: Env = field(default_factory=Env.for_build)

    def buildpack_env(self, env: Env, bp: BuildpackDescriptor, cnb_vars: dict[str, str]) -> dict[str, str]:
        """The env of one bin/detect or bin/build run: the given env with the platform's
        overrides (unless clear-env), then the CNB_* variables of the buildpack's API."""
        base = env.with_platform(None if bp.info.clear_env else self.platform_dir, self.build_config_dir)
        out = dict(base.vars)
        api = bp.declared_api   # not verified here: a nested buildpack is verified when it builds
        out["CNB_BUILDPACK_DIR"] = str(bp.root)
        if api >= ApiVersion(0, 8):
            out.update(cnb_vars)
            out["CNB_PLATFORM_DIR"] = str(self.platform_dir)
        if api >= ApiVersion(0, 10):
            out.update(self.target.env())
        if api >= ApiVersion(0, 12) and self.exec_env:
            out["CNB_EXEC_ENV"] = self.exec_env
        return out
