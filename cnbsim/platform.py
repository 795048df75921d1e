"""What the platform gives the lifecycle: directories, Platform API, run-image target, limits.

Also the per-buildpack `CNB_*` variables for bin/detect and bin/build, which depend on
the Buildpack API the buildpack declares (buildpacks/spec buildpack.md, per Buildpack API; buildpack.md#detection; lifecycle buildpack/detect.go; buildpack.md#build; lifecycle buildpack/build.go).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cnbsim import proc, sandbox
from cnbsim.env import Env
from cnbsim.errors import ConfigError
from cnbsim.model._fields import Fields
from cnbsim.model.api import DEFAULT_PLATFORM_API, ApiVersion
from cnbsim.model.buildpack import BuildpackDescriptor, Target, escape_id
from cnbsim.session import Session
from cnbsim.tomlio import read_toml

# platform.md "Inputs": where the lifecycle's containers have the app, layers, platform dir, buildpacks.
IMAGE_APP_DIR = "/workspace"
IMAGE_LAYERS_DIR = "/layers"
IMAGE_PLATFORM_DIR = "/platform"
IMAGE_BUILDPACKS_DIR = "/cnb/buildpacks"
# A Paketo build image's PATH (the builder's ENV; /cnb/process and /cnb/lifecycle come first in pack)
IMAGE_PATH = "/cnb/process:/cnb/lifecycle:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_STUBS_DIR = Path(__file__).resolve().parent / "stubs"

DEFAULT_DETECT_TIMEOUT = 60.0
DEFAULT_BUILD_TIMEOUT = 1800.0

# platform.md "Target data": the run image labels the analyzer reads the distro from
DISTRO_NAME_LABEL = "io.buildpacks.base.distro.name"
DISTRO_VERSION_LABEL = "io.buildpacks.base.distro.version"

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}


@dataclass(frozen=True)
class RunTarget:
    """The run image's target (buildpacks/spec platform.md#analyzedtoml-toml [run-image.target])."""

    os: str = "linux"
    arch: str = ""
    arch_variant: str = ""
    distro_name: str = ""
    distro_version: str = ""

    @classmethod
    def host(cls, os_release: Path = Path("/etc/os-release")) -> RunTarget:
        """linux/<host arch>, distro from /etc/os-release as lifecycle platform/target_data.go reads it."""
        values: dict[str, str] = {}
        try:
            for line in os_release.read_text(encoding="utf-8").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    values[key.strip()] = value.strip().strip('"').strip("'")
        except OSError:
            pass
        machine = os.uname().machine.lower()      # platform.machine()'s answer, without importing it
        return cls("linux", _ARCH.get(machine, machine), "", values.get("ID", ""), values.get("VERSION_ID", ""))

    @classmethod
    def from_image_config(cls, config: dict, os_release: Path = Path("/etc/os-release")) -> RunTarget:
        """The run image's target as the analyzer reads it (lc platform/target_data.go GetTargetMetadata):
        os, architecture and variant of the image config, the distro from the io.buildpacks.base.distro.*
        labels; without those labels the detector reads /etc/os-release of the build image (lc
        phase/detector.go), which is this host's here."""
        labels = (config.get("config") or {}).get("Labels") or {}
        name = labels.get(DISTRO_NAME_LABEL, "")
        version = labels.get(DISTRO_VERSION_LABEL, "")
        if not name and not version:
            host = cls.host(os_release)
            name, version = host.distro_name, host.distro_version
        return cls(str(config.get("os") or "linux"), str(config.get("architecture") or ""),
                   str(config.get("variant") or ""), str(name), str(version))

    def to_toml(self) -> dict[str, object]:
        """analyzed.toml's [run-image.target] (platform.md)."""
        out: dict[str, object] = {"os": self.os, "arch": self.arch}
        if self.arch_variant:
            out["arch-variant"] = self.arch_variant
        if self.distro_name or self.distro_version:
            out["distro"] = {"name": self.distro_name, "version": self.distro_version}
        return out

    @classmethod
    def from_analyzed(cls, analyzed: Path, os_release: Path = Path("/etc/os-release")) -> RunTarget:
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
class Isolation:
    """Buildpacks run in the namespace (cnbsim.sandbox) where the lifecycle's paths are, as a
    non-root user without capabilities, with the build network asked for."""

    network: sandbox.Network = sandbox.Network.HOST
    uid: int = sandbox.DEFAULT_UID
    gid: int = sandbox.DEFAULT_GID
    host_paths: tuple[str, ...] = ()     # host files and dirs the build needs, shown read-only where they are
    volumes: tuple[Volume, ...] = ()     # `--volume HOST:TARGET[:ro|rw]`: bound at TARGET, as pack binds them
    shared_dirs: tuple[str, ...] = ()    # cnbsim's own dirs kept between builds (real mode's dependency
                                         # cache), bound read-write where they are, for cnbsim's pip stub

    @staticmethod
    def base_env(environ: dict[str, str]) -> Env:
        """The build image's env: its PATH and the cnb user's HOME, the proxies of the host."""
        env = Env.for_build(environ)
        env.vars = {k: v for k, v in env.vars.items() if k not in ("PATH", "HOME", "LD_LIBRARY_PATH", "LIBRARY_PATH",
                                                                  "CPATH", "PKG_CONFIG_PATH")}
        env.vars.update({"PATH": IMAGE_PATH, "HOME": sandbox.HOME})
        return env


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
    isolation: Isolation | None = None   # None: buildpacks run on the host with the host paths
    # With isolation: the build's session (cnbsim.session), and the host dir its runs' scratch dirs are
    # made in (shown at /tmp/<its name>); None: each run has a namespace, and a scratch dir, of its own.
    session: Session | None = field(default=None, compare=False)
    scratch_root: Path | None = None

    def shown(self, path: Path, scratch: Path | None = None) -> str:
        """`path` as the buildpacks see it: under /workspace, /layers, /platform (or /tmp for a
        scratch dir) in the namespace; the host path without one."""
        if self.isolation is None:
            return str(path)
        if scratch is not None:
            bind = self._scratch_bind(scratch)
            scratch_image: tuple[Path | None, str] = (Path(bind.source), bind.target)
        else:
            scratch_image = (None, "")
        for host, image in ((self.layers_dir, IMAGE_LAYERS_DIR), (self.app_dir, IMAGE_APP_DIR),
                            (self.platform_dir, IMAGE_PLATFORM_DIR), scratch_image):
            if host is None:
                continue
            if path == host:
                return image
            if host in path.parents:
                return f"{image}/{path.relative_to(host).as_posix()}"
        return str(path)

    def buildpack_dir(self, bp: BuildpackDescriptor) -> str:
        """CNB_BUILDPACK_DIR: /cnb/buildpacks/<escaped id>/<version> in the namespace (platform.md)."""
        if self.isolation is None:
            return str(bp.root)
        return f"{IMAGE_BUILDPACKS_DIR}/{escape_id(bp.id)}/{bp.version}"

    def run_buildpack(self, bp: BuildpackDescriptor, executable: str, args: list[str], env: dict[str, str],
                      timeout: float, scratch: Path, on_line=None, tracker: proc.Tracker | None = None
                      ) -> proc.Completed:
        """Run `bin/<executable>` of `bp` with `args` (paths as `shown` gives them) in the app dir: in
        the build's session when there is one and it holds this run's view, else in a namespace of its own."""
        host_exe = bp.root / "bin" / executable
        if self.isolation is None:
            return proc.run([str(host_exe), *args], env=env, cwd=self.app_dir, timeout=timeout, on_line=on_line,
                            tracker=tracker)
        binds = self._common_binds(scratch) + self._buildpack_binds(bp)
        if bp.id == "paketo-buildpacks/pip" and _STUBS_DIR in bp.root.parents:
            # only cnbsim's own pip stub sees the dependency cache: no other buildpack (nor the code of
            # the packages pip-install builds) can change what later builds install
            binds += [sandbox.Bind(p, p, writable=True) for p in self.isolation.shared_dirs]
        return proc.run([f"{self.buildpack_dir(bp)}/bin/{executable}", *args], env=env, cwd=self.app_dir,
                        timeout=timeout, on_line=on_line, view=self._view(binds), executable=host_exe,
                        shown=str(host_exe), tracker=tracker, session=self.session)

    def session_view(self, buildpacks: Iterable[BuildpackDescriptor]) -> sandbox.View:
        """The view a build's session starts with: what every run has, and each of `buildpacks` where
        a builder image has it (/cnb/buildpacks/<escaped id>/<version>). Needs `scratch_root`."""
        assert self.isolation is not None and self.scratch_root is not None
        binds = self._common_binds(self.scratch_root)
        for bp in buildpacks:
            binds += self._buildpack_binds(bp)
        return self._view(list(dict.fromkeys(binds)))

    def _view(self, binds: list[sandbox.Bind]) -> sandbox.View:
        assert self.isolation is not None
        iso = self.isolation
        return sandbox.View(binds=tuple(binds), cwd=IMAGE_APP_DIR, root=sandbox.Root.BUILD, network=iso.network,
                            uid=iso.uid, gid=iso.gid)

    def _scratch_bind(self, scratch: Path) -> sandbox.Bind:
        """A run's scratch dir (its plan file) at /tmp/<name>; all of them at once when they are in `scratch_root`."""
        if self.scratch_root is not None and (scratch == self.scratch_root or self.scratch_root in scratch.parents):
            scratch = self.scratch_root
        return sandbox.Bind(str(scratch), f"/tmp/{scratch.name}", writable=True)

    def _common_binds(self, scratch: Path) -> list[sandbox.Bind]:
        assert self.isolation is not None
        iso = self.isolation
        binds = [sandbox.Bind(str(self.app_dir), IMAGE_APP_DIR, writable=True),
                 sandbox.Bind(str(self.layers_dir), IMAGE_LAYERS_DIR, writable=True),
                 sandbox.Bind(str(self.platform_dir), IMAGE_PLATFORM_DIR),
                 self._scratch_bind(scratch)]
        if self.build_config_dir is not None:
            binds.append(sandbox.Bind(str(self.build_config_dir), "/cnb/build-config"))
        binds += [sandbox.Bind(p, p) for p in iso.host_paths]
        binds += [sandbox.Bind(str(v.host), v.target, writable=v.writable) for v in iso.volumes]
        return binds

    def _buildpack_binds(self, bp: BuildpackDescriptor) -> list[sandbox.Bind]:
        binds = [sandbox.Bind(str(bp.root), self.buildpack_dir(bp))]
        if _STUBS_DIR in bp.root.parents and (bp.root.parent / "lib").is_dir():
            # the stubs share bin helpers in their parent's lib/: shown where $CNB_BUILDPACK_DIR/../lib finds it
            binds.append(sandbox.Bind(str(bp.root.parent / "lib"), f"{IMAGE_BUILDPACKS_DIR}/{escape_id(bp.id)}/lib"))
        return binds

    def buildpack_env(self, env: Env, bp: BuildpackDescriptor, cnb_vars: dict[str, str]) -> dict[str, str]:
        """The env of one bin/detect or bin/build run: the given env with the platform's
        overrides (unless clear-env), then the CNB_* variables of the buildpack's API."""
        base = env.with_platform(None if bp.info.clear_env else self.platform_dir, self.build_config_dir)
        out = dict(base.vars)
        api = bp.api   # not verified here: a nested buildpack is verified when it builds
        out["CNB_BUILDPACK_DIR"] = self.buildpack_dir(bp)
        if api >= ApiVersion(0, 8):
            out.update(cnb_vars)
            out["CNB_PLATFORM_DIR"] = self.shown(self.platform_dir)
        if api >= ApiVersion(0, 10):
            out.update(self.target.env())
        if api >= ApiVersion(0, 12) and self.exec_env:
            out["CNB_EXEC_ENV"] = self.exec_env
        return out


# The lifecycle's own dirs in the build container: a volume there would hide or leak into them
# (pack warns "Mounting to a sensitive directory"; cnbsim refuses, since the workspace is the image's app).
RESERVED_TARGETS = ("/workspace", "/layers", "/platform", "/cnb")


@dataclass(frozen=True)
class Volume:
    """`--volume HOST:TARGET[:ro|rw]`, as `pack build --volume`: a host file or dir at TARGET in the build
    container, read-only unless `rw` (pack's default option is "ro")."""

    host: Path
    target: str
    writable: bool = False

    @classmethod
    def parse(cls, spec: str | Volume) -> Volume:
        if isinstance(spec, Volume):
            return spec
        parts = str(spec).split(":")
        hint = "write --volume HOST:TARGET[:ro|rw], e.g. --volume ./config:/etc/myapp:ro"
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ConfigError(f"'{spec}' is not HOST:TARGET[:ro|rw]", field="--volume", hint=hint)
        host_text, target = parts[0], parts[1]
        options = parts[2].split(",") if len(parts) == 3 else ["ro"]
        unknown = [o for o in options if o not in ("ro", "rw")]
        if unknown or len(set(options)) > 1:
            raise ConfigError(f"'{spec}': unsupported volume option '{(unknown or options)[0]}'", field="--volume",
                              hint="the options are ro (read-only, the default) or rw (read-write)")
        if not target.startswith("/") or posixpath.normpath(target) == "/":
            raise ConfigError(f"'{spec}': the target '{target}' must be an absolute path other than /",
                              field="--volume", hint=hint)
        target = posixpath.normpath(target)
        for reserved in RESERVED_TARGETS:
            if target == reserved or target.startswith(reserved + "/"):
                raise ConfigError(f"'{spec}': {reserved} is the lifecycle's own directory in the build",
                                  field="--volume", hint="mount the volume elsewhere, e.g. /mnt/NAME")
        host = Path(host_text).expanduser()
        if not host.is_absolute() and not host_text.startswith(".") and "/" not in host_text:
            raise ConfigError(f"'{spec}': '{host_text}' would be a named docker volume, which cnbsim has none of",
                              field="--volume", hint=f"give a host path: ./{host_text} or an absolute path")
        if not host.exists():
            raise ConfigError(f"'{spec}': the host path does not exist", file=host.absolute(), field="--volume",
                              hint="create it first, or fix the path")
        return cls(host.absolute(), target, options == ["rw"])

    def __str__(self) -> str:
        return f"{self.host}:{self.target}:{'rw' if self.writable else 'ro'}"
