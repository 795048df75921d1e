"""The Python API: `detect()` and `build()` of an app dir, returning typed results.

`build()` does what `pack build` does without Docker: copy the app into a workspace (the
source is never modified), write the platform env, run detect and build as the lifecycle
does, and leave an output dir holding what an image would: `workspace/`, `layers/` (with
group.toml, plan.toml and config/metadata.toml) and `report.json`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from cnbsim import leaks
from cnbsim import report as reportmod
from cnbsim.phase.build import BuildOutcome, BuildpackBuild, Layer
from cnbsim.phase.build import build as build_phase
from cnbsim.builder import Sources, resolve_sources
from cnbsim.cache import Cache
from cnbsim.phase.export import reuse_layers
from cnbsim.phase.restore import restore
from cnbsim.phase.detect import DetectFailed, DetectResult
from cnbsim.phase.detect import detect as detect_phase
from cnbsim.errors import ConfigError
from cnbsim.fs import special_files
from cnbsim.phase.launch import launch_env
from cnbsim.log import Logger
from cnbsim.model.api import DEFAULT_PLATFORM_API, ApiVersion
from cnbsim.model.launch import Process
from cnbsim.model.order import GroupElement, group_to_toml
from cnbsim.model.plan import Plan
from cnbsim.output import OutputDir
from cnbsim.platform import DEFAULT_BUILD_TIMEOUT, DEFAULT_DETECT_TIMEOUT, Platform
from cnbsim.tomlio import write_toml

INSTALLERS = ("stub", "real")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class BuildOptions:
    """How the platform runs a build (defaults are `cnbsim build`'s)."""

    env: Mapping[str, str] = field(default_factory=dict)
    installer: str = "stub"
    wheelhouse: Path | None = None
    platform_api: ApiVersion = DEFAULT_PLATFORM_API
    detect_timeout: float = DEFAULT_DETECT_TIMEOUT
    build_timeout: float = DEFAULT_BUILD_TIMEOUT
    secret_env: tuple[str, ...] = ()
    buildpack_store: tuple[Path, ...] = ()   # dirs of saved buildpackages for registry references

    def platform_env(self) -> dict[str, str]:
        if self.installer not in INSTALLERS:
            raise ConfigError(f"unknown installer '{self.installer}'", field="installer",
                              hint="use 'stub' (record, fast) or 'real' (install with virtualenv + pip)")
        values = {k: str(v) for k, v in self.env.items()}
        for name in values:
            if not _ENV_NAME.match(name):
                raise ConfigError(f"'{name}' is not a valid environment variable name", field="env",
                                  hint="use letters, digits and '_' (e.g. BP_MY_SETTING)")
        values["CNBSIM_INSTALLER"] = self.installer
        values["CNBSIM_PYTHON"] = sys.executable
        values["CNBSIM_BASE_PYTHON"] = base_python()
        values["CNBSIM_PYTHONS"] = os.pathsep.join(installed_pythons())
        if self.wheelhouse is not None:
            wheelhouse = Path(self.wheelhouse).absolute()
            if not wheelhouse.is_dir():
                raise ConfigError("wheelhouse directory not found", file=wheelhouse,
                                  hint="give a directory of .whl files (pip wheel -w DIR ...)")
            values["CNBSIM_WHEELHOUSE"] = str(wheelhouse)
        return values

    def secrets(self) -> dict[str, str]:
        return leaks.secret_values(self.env, self.secret_env)


def base_python() -> str:
    """The host's base interpreter (not a venv): what the cpython stub exposes."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


_PYTHON_XY = re.compile(r"^python3\.[0-9]+$")


def _newest_first(path: Path) -> list[int | str]:
    """Sort key: version numbers in the path compared as numbers, highest first."""
    return [-int(part) if part.isdigit() else part for part in re.split(r"([0-9]+)", path.as_posix())]


def installed_pythons() -> list[str]:
    """The base interpreters installed on this machine (pyenv, uv, /usr), one per path, for the
    cpython stub to pick the requested version from; globbing only, no interpreter is run."""
    home = Path.home()
    pyenv = Path(os.environ.get("PYENV_ROOT") or home / ".pyenv") / "versions"
    uv = Path(os.environ.get("UV_PYTHON_INSTALL_DIR")
              or Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "uv" / "python")
    found: list[str] = []
    seen: set[str] = set()
    for pattern in (pyenv / "*" / "bin", uv / "cpython-*" / "bin", Path("/usr/local/bin"), Path("/usr/bin")):
        dirs = Path(pattern.anchor).glob(str(pattern.relative_to(pattern.anchor)))
        for bin_dir in sorted(dirs, key=_newest_first):
            if (bin_dir.parent / "pyvenv.cfg").exists():
                continue  # a virtual environment, not an installation
            for exe in sorted(bin_dir.glob("python3.*"), key=_newest_first):
                real = os.path.realpath(exe)
                if _PYTHON_XY.match(exe.name) and real not in seen and os.access(exe, os.X_OK):
                    seen.add(real)
                    found.append(exe.as_posix())
    return found


@dataclass(frozen=True)
class BuildResult:
    """A finished build: typed access that reads like the spec."""

    app: Path
    output: Path
    sources: Sources = field(repr=False)
    detect: DetectResult = field(repr=False)
    outcome: BuildOutcome = field(repr=False)
    log: str = field(default="", repr=False)
    timings: dict[str, float] = field(default_factory=dict, repr=False)
    layer_status: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    report: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def workspace(self) -> Path:
        return self.output / "workspace"

    @property
    def layers_dir(self) -> Path:
        return self.output / "layers"

    @property
    def group(self) -> tuple[GroupElement, ...]:
        return self.detect.group

    @property
    def plan(self) -> Plan:
        return self.detect.plan

    @property
    def buildpacks(self) -> tuple[BuildpackBuild, ...]:
        return self.outcome.buildpacks

    def buildpack(self, bp_id: str) -> BuildpackBuild:
        for bp in self.outcome.buildpacks:
            if bp.element.id == bp_id:
                return bp
        raise KeyError(f"{bp_id} is not in the group ({', '.join(e.id for e in self.group)})")

    def output_of(self, bp_id: str) -> str:
        return self.buildpack(bp_id).output

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(layer for bp in self.outcome.buildpacks for layer in bp.layers)

    def layer(self, bp_id: str, name: str) -> Layer:
        for layer in self.buildpack(bp_id).layers:
            if layer.name == name:
                return layer
        names = ", ".join(lay.name for lay in self.buildpack(bp_id).layers) or "none"
        raise KeyError(f"{bp_id} has no layer '{name}' (its layers: {names})")

    @property
    def processes(self) -> tuple[Process, ...]:
        return self.outcome.metadata.processes

    @property
    def default_process(self) -> str:
        return self.outcome.metadata.default_process

    def process(self, ptype: str) -> Process:
        found = self.outcome.metadata.process(ptype)
        if found is None:
            raise KeyError(f"no process of type '{ptype}' ({', '.join(p.type for p in self.processes) or 'none'})")
        return found

    def launch_env(self, process_type: str | None = None, environ: Mapping[str, str] | None = None
                   ) -> dict[str, str]:
        """The env a process starts with (before exec.d), from `environ` (default: empty)."""
        ptype = process_type or self.default_process or None
        return launch_env(self.layers_dir, self.outcome.metadata, ptype, dict(environ or {})).vars


def _prepare_workspace(app: Path, workspace: Path, output: Path) -> None:
    """Copy the app (symlinks kept), leaving out the output dir when it lies inside the app."""
    out_real = output.resolve()
    skip = {out_real, out_real.with_name(out_real.name + ".cnbsim-previous")}

    def ignore(dirpath: str, names: list[str]) -> list[str]:
        left_out = special_files(dirpath, names)    # sockets and FIFOs: an image holds none
        if str(out_real).startswith(dirpath.rstrip("/") + "/"):
            left_out += [n for n in names if Path(dirpath, n) in skip]
        return left_out
    try:
        shutil.copytree(app.resolve(), workspace, symlinks=True, ignore=ignore)
    except shutil.Error as exc:
        raise ConfigError(f"cannot copy the app into the workspace: {exc.args[0][0][2]}", file=app)


def _check_app(app: Path) -> Path:
    if not app.exists():
        raise ConfigError("app directory does not exist", file=app, hint="give the path of your project")
    if not app.is_dir():
        raise ConfigError("app must be a directory", file=app, hint="give the project folder, not a file")
    return app.absolute()


def write_platform_dir(platform_dir: Path, values: Mapping[str, str]) -> None:
    env_dir = platform_dir / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        path = env_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value)


def default_output(app: Path) -> Path:
    return Path.cwd() / "cnbsim-out" / app.absolute().name


def _detect_redacted(sources: Sources, platform: Platform, log: Logger) -> DetectResult:
    """The detect phase; a failure's account of buildpack output hides the build's secrets."""
    try:
        return detect_phase(sources.order, sources.store, platform, log)
    except DetectFailed as failed:
        failed.secrets = log.secrets
        if sources.builder is not None:
            failed.builder_hint = sources.builder.detect_hint
        raise


def detect(app: Path | str, *, builder: Path | str | None = None,
           buildpacks: Sequence[Path | str] | None = None, options: BuildOptions | None = None,
           log: Logger | None = None, **kwargs: Any) -> DetectResult:
    """Run detection alone on a copy of `app`; raises DetectFailed when no group passes."""
    options = options or BuildOptions(**kwargs)
    log = log or Logger(stream=None)
    log.secrets = tuple(v for v in options.secrets().values() if len(v) >= leaks.MIN_LENGTH)
    app = _check_app(Path(app))
    sources = resolve_sources(builder, buildpacks, log, options.buildpack_store)
    with tempfile.TemporaryDirectory(prefix="cnbsim-detect-") as tmp:
        workspace, platform_dir = Path(tmp) / "workspace", Path(tmp) / "platform"
        _prepare_workspace(app, workspace, Path(tmp) / "none")
        write_platform_dir(platform_dir, options.platform_env())
        platform = Platform(app_dir=workspace, platform_dir=platform_dir, layers_dir=Path(tmp) / "layers",
                            api=options.platform_api, detect_timeout=options.detect_timeout)
        return _detect_redacted(sources, platform, log)


def build(app: Path | str, *, builder: Path | str | None = None, buildpacks: Sequence[Path | str] | None = None,
          output: Path | str | None = None, options: BuildOptions | None = None, log: Logger | None = None,
          cache_dir: Path | str | None = None, clear_cache: bool = False, **kwargs: Any) -> BuildResult:
    """Detect and build `app`; returns a BuildResult, or raises a CnbsimError (with its exit code).

    `cache_dir` keeps `cache = true` layers between builds (None: no cache); the previous
    output at `output`, if any, is the "previous image" whose launch layers can be reused.
    """
    options = options or BuildOptions(**kwargs)
    log = log or Logger(stream=None)
    app = _check_app(Path(app))
    started = time.perf_counter()
    platform_values = options.platform_env()
    log.secrets = tuple(v for v in options.secrets().values() if len(v) >= leaks.MIN_LENGTH)
    sources = resolve_sources(builder, buildpacks, log, options.buildpack_store)
    out = Path(output) if output else default_output(app)
    with OutputDir(out) as target, tempfile.TemporaryDirectory(prefix="cnbsim-platform-") as tmp:
        workspace, layers = target.path / "workspace", target.path / "layers"
        _prepare_workspace(app, workspace, target.path)
        layers.mkdir()
        write_platform_dir(Path(tmp), platform_values)
        platform = Platform(app_dir=workspace, platform_dir=Path(tmp), layers_dir=layers,
                            api=options.platform_api, detect_timeout=options.detect_timeout,
                            build_timeout=options.build_timeout)
        t0 = time.perf_counter()
        log.phase("DETECTING")
        detected = _detect_redacted(sources, platform, log)
        write_toml(layers / "group.toml", group_to_toml(detected.group))
        write_toml(layers / "plan.toml", detected.plan.to_toml())
        t1 = time.perf_counter()
        cache = Cache(Path(cache_dir)) if cache_dir else None
        if cache and clear_cache:
            cache.clear()
        previous = target.previous / "layers" if (target.previous / "layers").is_dir() else None
        log.phase("RESTORING")
        restored = restore(detected.group, layers, previous, cache, log)
        t2 = time.perf_counter()
        log.phase("BUILDING")
        outcome = build_phase(detected.group, detected.plan, sources.store, platform, log)
        status = reuse_layers(outcome, previous, restored, log)
        secrets = options.secrets()
        for warning in leaks.check(secrets, layers=layers, workspace=workspace, source=app,
                                   texts={"the build log": log.text}, shown_root=target.path):
            log.warn(warning)
        t3 = time.perf_counter()
        if cache:
            log.phase("CACHING")
            cache.save(outcome, layers, status, log)
        result = BuildResult(app=app, output=target.path, sources=sources, detect=detected, outcome=outcome,
                             log=log.text, layer_status=status,
                             timings={"detect": t1 - t0, "restore": t2 - t1, "build": t3 - t2,
                                      "cache": time.perf_counter() - t3})
        normalize = reportmod.Normalizer(
            {str(layers): "/layers", str(workspace): "/workspace", str(target.path): "/output",
             str(Path(tmp)): "/platform"},
            log.secrets)
        report = reportmod.build_report(result, normalize)
        report["timings"]["total"] = round(time.perf_counter() - started, 4)
        (target.path / "report.json").write_text(reportmod.dumps(report), encoding="utf-8")
        (target.path / "build.log").write_text(normalize(log.text), encoding="utf-8")
        object.__setattr__(result, "report", report)
    return result
