"""The Python API: `detect()` and `build()` of an app dir, returning typed results.

`build()` does what `pack build` does without Docker: copy the app into a workspace (the
source is never modified), write the platform env, run detect and build as the lifecycle
does, and leave an output dir holding what an image would: `workspace/`, `layers/` (with
group.toml, plan.toml and config/metadata.toml) and `report.json`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnbsim import leaks, sandbox
from cnbsim import report as reportmod
from cnbsim.builder import Sources, resolve_sources
from cnbsim.cache import Cache
from cnbsim.errors import BuildError, CnbsimError, ConfigError, DetectError, ExportError
from cnbsim.fs import (
    TreeDigests,
    cache_home,
    is_inside,
    relocate,
    special_files,
    temp_dir,
    tree_changes,
    tree_state,
)
from cnbsim.log import Level, Logger, Redactor
from cnbsim.model.api import DEFAULT_PLATFORM_API, ApiVersion
from cnbsim.model.launch import Process
from cnbsim.model.layers import Layer
from cnbsim.model.order import GroupElement, group_to_toml
from cnbsim.model.plan import Plan
from cnbsim.model.platform_toml import PlatformRecord
from cnbsim.model.project import FILE_NAME as PROJECT_TOML
from cnbsim.model.project import FileFilter, ProjectDescriptor, read_project_toml
from cnbsim.model.states import Installer, LayerStatus, SandboxMode
from cnbsim.output import OutputDir
from cnbsim.phase.build import BuildOutcome, BuildpackBuild
from cnbsim.phase.build import build as build_phase
from cnbsim.phase.detect import DetectFailed, DetectResult
from cnbsim.phase.detect import detect as detect_phase
from cnbsim.phase.launch import launch_env
from cnbsim.phase.restore import put_back, restore
from cnbsim.phase.reuse import reuse_layers
from cnbsim.platform import (
    DEFAULT_BUILD_TIMEOUT,
    DEFAULT_DETECT_TIMEOUT,
    IMAGE_APP_DIR,
    IMAGE_LAYERS_DIR,
    Isolation,
    Platform,
    RunTarget,
    Volume,
)
from cnbsim.session import Session
from cnbsim.tomlio import write_toml

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
# what cnbsim itself tells the stubs; the two that name host dirs are bound into the build, so a
# user's env (--env, project.toml) may not set them: each has its own option
_RESERVED_ENV = {"CNBSIM_WHEELHOUSE": "use --wheelhouse DIR",
                 "CNBSIM_DEPS_DIR": "cnbsim sets it in real mode ($XDG_CACHE_HOME/cnbsim/deps)"}


@dataclass(frozen=True)
class BuildOptions:
    """How the platform runs a build (defaults are `cnbsim build`'s)."""

    env: Mapping[str, str] = field(default_factory=dict)
    installer: Installer | str = Installer.STUB
    wheelhouse: Path | None = None
    platform_api: ApiVersion = DEFAULT_PLATFORM_API
    detect_timeout: float = DEFAULT_DETECT_TIMEOUT
    build_timeout: float = DEFAULT_BUILD_TIMEOUT
    secret_env: tuple[str, ...] = ()
    sandbox: SandboxMode | str = SandboxMode.AUTO   # buildpacks in the namespace with the lifecycle's paths
    network: str = "host"          # the build's network, as `pack build --network`: host | none
    buildpack_store: tuple[Path, ...] = ()   # dirs of saved buildpackages for registry references
    volumes: tuple[Volume | str, ...] = ()    # `HOST:TARGET[:ro|rw]` bound into the build, as pack --volume
    default_process: str = ""                # the exporter's -process-type, as pack --default-process
    run_image: Path | str | None = None      # an OCI layout (DIR or DIR:TAG): the build's target, the export's base
    descriptor: Path | str | None = None     # the project descriptor (default: APP/project.toml, if any)
    strict: bool = False                     # a bin/detect that writes to the app dir fails the build

    def parsed_volumes(self) -> tuple[Volume, ...]:
        return tuple(Volume.parse(v) for v in self.volumes)

    def platform_env(self) -> dict[str, str]:
        try:
            installer = Installer(self.installer)
        except ValueError:
            raise ConfigError(f"unknown installer '{self.installer}'", field="installer",
                              hint="use 'stub' (record, fast) or 'real' (install with virtualenv + pip)") from None
        values = {k: str(v) for k, v in self.env.items()}
        for name in values:
            if not _ENV_NAME.match(name):
                raise ConfigError(f"'{name}' is not a valid environment variable name", field="env",
                                  hint="use letters, digits and '_' (e.g. BP_MY_SETTING)")
            if name in _RESERVED_ENV:
                raise ConfigError(f"{name} is cnbsim's own setting and cannot be given as a build env var",
                                  field="env", hint=f"remove it from --env / project.toml: {_RESERVED_ENV[name]}")
        values["CNBSIM_INSTALLER"] = installer.value
        values["CNBSIM_PYTHON"] = sys.executable
        values["CNBSIM_BASE_PYTHON"] = base_python()
        values["CNBSIM_PYTHONS"] = os.pathsep.join(installed_pythons())
        if self.wheelhouse is not None:
            wheelhouse = Path(self.wheelhouse).absolute()
            if not wheelhouse.is_dir():
                raise ConfigError("wheelhouse directory not found", file=wheelhouse,
                                  hint="give a directory of .whl files (pip wheel -w DIR ...)")
            values["CNBSIM_WHEELHOUSE"] = str(wheelhouse)
        if installer is Installer.REAL:
            deps = deps_dir()
            if deps:
                values["CNBSIM_DEPS_DIR"] = deps
        return values

    def secrets(self) -> dict[str, str]:
        return leaks.secret_values(self.env, self.secret_env)

    def isolation(self, platform_values: Mapping[str, str], log: Logger) -> Isolation | None:
        """How buildpacks run: in the namespace (None: on the host, said once in the log)."""
        network = sandbox.parse_network(self.network, (sandbox.Network.HOST, sandbox.Network.NONE))
        if not sandbox.use_sandbox(self.sandbox):
            if network is sandbox.Network.NONE:
                raise ConfigError("--network none needs the build namespace, but "
                                  + (sandbox.available() or "--sandbox never was given"), field="--network",
                                  hint="install bubblewrap (apt-get install bubblewrap), or build with the network")
            if self.sandbox != SandboxMode.NEVER:
                log.warn(f"{sandbox.available()}: buildpacks run on the host with host paths (not /workspace, "
                         "/layers), as this user, and background processes they start may survive the build")
            return None
        uid, gid = sandbox.user_ids({**os.environ, **{k: str(v) for k, v in self.env.items()}})
        pythons = [platform_values.get("CNBSIM_PYTHON", ""), platform_values.get("CNBSIM_BASE_PYTHON", "")]
        pythons += platform_values.get("CNBSIM_PYTHONS", "").split(os.pathsep)
        paths = sandbox.interpreter_paths(pythons)
        if platform_values.get("CNBSIM_WHEELHOUSE"):
            paths.append(platform_values["CNBSIM_WHEELHOUSE"])
        shared = (platform_values["CNBSIM_DEPS_DIR"],) if platform_values.get("CNBSIM_DEPS_DIR") else ()
        return Isolation(network=network, uid=uid, gid=gid, host_paths=tuple(dict.fromkeys(paths)),
                         volumes=self.parsed_volumes(), shared_dirs=shared)


def deps_dir() -> str:
    """Real mode's dependency cache, `$XDG_CACHE_HOME/cnbsim/deps`: the buildpacks' own dependencies
    (the pip wheel the pip buildpack installs), downloaded once per machine, as an offline
    buildpackage carries them. '' when it cannot be made."""
    path = cache_home() / "deps"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return ""
    return str(path)


def base_python() -> str:
    """The host's base interpreter (not a venv): what the cpython stub exposes."""
    return reportmod.HostPython.current().path


@dataclass(frozen=True)
class BuildRequest:
    """What `build()` was given, so that `BuildResult.rebuild()` can repeat it."""

    app: Path
    builder: Path | str | None
    buildpacks: tuple[Path | str, ...] | None
    output: Path
    options: BuildOptions
    cache_dir: Path | None
    log: Logger = field(repr=False, compare=False)


# build() arguments a rebuild may change; everything else it is given is a BuildOptions field.
REBUILD_ARGS = ("builder", "buildpacks", "output", "cache_dir", "clear_cache")


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
    layer_status: dict[tuple[str, str], LayerStatus] = field(default_factory=dict, repr=False)
    report: dict[str, Any] = field(default_factory=dict, repr=False)
    request: BuildRequest | None = field(default=None, repr=False)
    platform: PlatformRecord = field(default_factory=PlatformRecord, repr=False)   # default process, run image
    warnings: tuple[str, ...] = field(default=(), repr=False)
    image_paths: bool = False    # built in the namespace: layers hold /layers and /workspace paths

    def rebuild(self, **changes: Any) -> BuildResult:
        """Build the same app again with the same options, cache and output, as a second `pack build` would.

        The output's current contents are the previous image (its launch layers can be reused), the
        cache its cache. `changes` override one build: any `build()` argument (`builder`, `buildpacks`,
        `output`, `cache_dir`, `clear_cache=True`) or `BuildOptions` field (`env` replaces the env).
        """
        if self.request is None:
            raise TypeError("this BuildResult was not made by cnbsim.build(); build it with build() to rebuild")
        req = self.request
        option_names = {f.name for f in dataclasses.fields(BuildOptions)}
        unknown = sorted(set(changes) - option_names - set(REBUILD_ARGS))
        if unknown:
            raise TypeError(f"rebuild() got unknown argument(s) {', '.join(unknown)}; it takes "
                            f"{', '.join(REBUILD_ARGS)} and the BuildOptions fields ({', '.join(sorted(option_names))})")
        options = dataclasses.replace(req.options, **{k: v for k, v in changes.items() if k in option_names})
        args: dict[str, Any] = {"builder": req.builder, "buildpacks": req.buildpacks, "output": req.output,
                                "cache_dir": req.cache_dir, "clear_cache": False}
        args.update((k, v) for k, v in changes.items() if k in REBUILD_ARGS)
        return build(req.app, options=options, log=dataclasses.replace(req.log, records=[]), **args)

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
        """The image's default process: the platform's (`default_process=`), else the buildpacks'."""
        return self.platform.process_type or self.outcome.metadata.default_process

    def process(self, ptype: str) -> Process:
        found = self.outcome.metadata.process(ptype)
        if found is None:
            raise KeyError(f"no process of type '{ptype}' ({', '.join(p.type for p in self.processes) or 'none'})")
        return found

    def launch_env(self, process_type: str | None = None, environ: Mapping[str, str] | None = None
                   ) -> dict[str, str]:
        """The env a process starts with (before exec.d), from `environ` (default: empty)."""
        ptype = process_type or self.default_process or None
        env = launch_env(self.layers_dir, self.outcome.metadata, ptype, dict(environ or {})).vars
        if not self.image_paths:
            return env
        # the layers' bin/ and lib/ dirs as the image has them (what buildpacks wrote already is)
        return {k: v.replace(f"{self.layers_dir}/", "/layers/") for k, v in env.items()}


def _prepare_workspace(app: Path, workspace: Path, skip: Sequence[Path] = (),
                       files: FileFilter | None = None) -> None:
    """Copy the app (symlinks kept), leaving out cnbsim's own dirs (the output, its work dirs, the
    cache) where they lie inside the app, and the files project.toml's include/exclude leave out."""
    by_parent: dict[str, set[str]] = {}
    work_prefixes: dict[str, str] = {}
    for path in skip:
        real = Path(os.path.realpath(path))
        by_parent.setdefault(str(real.parent), set()).add(real.name)
        work_prefixes[str(real.parent)] = f".{real.name}.cnbsim-"    # work dirs beside an output
    root = app.resolve()

    def ignore(dirpath: str, names: list[str]) -> list[str]:
        left_out = special_files(dirpath, names)    # sockets and FIFOs: an image holds none
        real = os.path.realpath(dirpath)
        skipped, prefix = by_parent.get(real, set()), work_prefixes.get(real)
        return left_out + [n for n in names if n in skipped or (prefix and n.startswith(prefix))]
    try:
        shutil.copytree(root, workspace, symlinks=True, ignore=ignore, dirs_exist_ok=True)
    except shutil.Error as exc:
        raise ConfigError(f"cannot copy the app into the workspace: {exc.args[0][0][2]}", file=app)
    except OSError as exc:
        raise ConfigError(f"cannot copy the app into the workspace: {exc.strerror}", file=exc.filename or app)
    except RecursionError:
        raise ConfigError("the app nests directories too deeply to copy", file=app,
                          hint="leave the deep tree out of the app dir") from None
    if files is not None:
        _filter_workspace(workspace, files)


def _filter_workspace(workspace: Path, files: FileFilter) -> None:
    """Remove from the (fresh) workspace copy what include/exclude leave out. As pack's tar filter, each
    path is matched on its own (relative to the app dir); a directory stays when a file under it is kept."""
    for dirpath, dirnames, filenames in os.walk(workspace, topdown=False):
        base = Path(dirpath)
        rel_dir = base.relative_to(workspace).as_posix()
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            rel = f"{rel_dir}/{name}" if rel_dir != "." else name
            if not files.keeps(rel):
                (base / name).unlink()
        if rel_dir != "." and not any(base.iterdir()) and not files.keeps(rel_dir, is_dir=True):
            base.rmdir()


def _descriptor(app: Path, options: BuildOptions, log: Logger) -> ProjectDescriptor | None:
    """project.toml (or `descriptor=`), its warnings logged as pack logs them."""
    path = Path(options.descriptor).absolute() if options.descriptor else app / PROJECT_TOML
    if options.descriptor and not path.is_file():
        raise ConfigError("project descriptor not found", file=path, field="--descriptor",
                          hint="give the path of a project.toml")
    project = read_project_toml(path)
    for warning in project.warnings if project else ():
        log.warn(warning)
    return project


def _apply_descriptor(project: ProjectDescriptor | None, options: BuildOptions,
                      buildpacks: Sequence[Path | str] | None) -> tuple[BuildOptions, Sequence[Path | str] | None]:
    """pack's precedence: the descriptor's build env under `env` (--env, --env-file), its group unless
    buildpacks are given (--buildpack)."""
    if project is None:
        return options, buildpacks
    options = replace(options, env={**project.env_dict(), **dict(options.env)})
    if not buildpacks and project.group:
        buildpacks = project.buildpack_refs()
    return options, buildpacks


def _run_image(options: BuildOptions) -> tuple[PlatformRecord, RunTarget | None]:
    """The platform record of the build (default process, run image) and the run image's target."""
    if options.run_image is None:
        return PlatformRecord(process_type=options.default_process), None
    from cnbsim.oci.layout import read_run_image
    given = Path(options.run_image)
    try:
        image = read_run_image(given)
    except ExportError as exc:    # the same layout check as export's, reported as a build input error
        raise ConfigError(exc.message, file=exc.file, field="--run-image", hint=exc.hint) from None
    target = RunTarget.from_image_config(image.config)
    return PlatformRecord(options.default_process, str(given.absolute()), image.manifest_digest, target), target


def _check_volumes(options: BuildOptions, isolation: Isolation | None) -> None:
    """Volumes are bound into the build namespace (as pack binds them into its containers); a build that
    runs buildpacks on the host has no container to bind them into, and cnbsim never writes to TARGET there."""
    if options.parsed_volumes() and isolation is None:
        raise ConfigError("--volume needs the build namespace (bubblewrap), and this build runs buildpacks on "
                          "the host (" + (sandbox.available() or "--sandbox never was given") + ")", field="--volume",
                          hint="install bubblewrap (apt-get install bubblewrap) and build with --sandbox auto, "
                               "or give the files to the buildpack another way (an env var with their path)")


def _check_default_process(record: PlatformRecord, outcome: BuildOutcome) -> None:
    """lc phase/exporter.go: a -process-type the build has no process of fails the export."""
    if record.process_type and outcome.metadata.process(record.process_type) is None:
        types = ", ".join(p.type for p in outcome.metadata.processes) or "none"
        raise ExportError(f"tried to set {record.process_type} to default but it doesn't exist",
                          field="--default-process", hint=f"the build's process types: {types}")


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
        with os.fdopen(fd, "wb") as fh:
            # the bytes the user gave: a value from the shell that is not UTF-8 arrives here as
            # os.environ decodes it (surrogateescape), and goes back to those bytes
            fh.write(os.fsencode(value))


def default_output(app: Path) -> Path:
    return Path.cwd() / "cnbsim-out" / app.absolute().name


DETECT_WRITES_SHOWN = 5


def _detect(sources: Sources, platform: Platform, log: Logger, strict: bool = False) -> DetectResult:
    """The detect phase; a failure that no buildpack errored in carries what the builder says to such a project.

    buildpacks/spec buildpack.md#phase-2-detection: bin/detect MAY read the app directory (only bin/build
    MAY write to it). The lifecycle does not check; what a bin/detect writes there ends up in the image,
    so cnbsim warns of it (`strict`: fails with it).
    """
    before = tree_state(platform.app_dir)
    try:
        detected = detect_phase(sources.order, sources.store, platform, log)
    except DetectFailed as failed:
        if sources.builder is not None:
            failed.builder_hint = sources.builder.detect_hint
        raise
    changes = tree_changes(before, tree_state(platform.app_dir))
    if not changes:
        return detected
    shown = ", ".join(changes[:DETECT_WRITES_SHOWN]) + (f" and {len(changes) - DETECT_WRITES_SHOWN} more"
                                                        if len(changes) > DETECT_WRITES_SHOWN else "")
    message = f"bin/detect changed the app dir, and what it writes there ends up in the image: {shown}"
    if strict:
        raise DetectError(message, file=platform.app_dir,
                          hint="a buildpack's bin/detect may only read the app (buildpacks/spec buildpack.md, "
                               "Phase #2: Detection); write in bin/build, or drop --strict")
    log.warn(message)
    return replace(detected, warnings=(*detected.warnings, message))


def detect(app: Path | str, *, builder: Path | str | None = None,
           buildpacks: Sequence[Path | str] | None = None, options: BuildOptions | None = None,
           log: Logger | None = None, **kwargs: Any) -> DetectResult:
    """Run detection alone on a copy of `app`; raises DetectFailed when no group passes."""
    options = options or BuildOptions(**kwargs)
    log = log or Logger(stream=None)
    app = _check_app(Path(app))
    project = _descriptor(app, options, log)
    options, buildpacks = _apply_descriptor(project, options, buildpacks)
    log = log.with_secrets(Redactor(options.secrets().values()))   # the descriptor's env counts too
    values = options.platform_env()
    isolation = options.isolation(values, log)
    _check_volumes(options, isolation)
    _, target = _run_image(options)
    sources = resolve_sources(builder, buildpacks, log, options.buildpack_store)
    with _secrets_redacted(log), temp_dir("detect") as tmp, contextlib.ExitStack() as ending, \
            contextlib.ExitStack() as runs:
        workspace, platform_dir = Path(tmp) / "workspace", Path(tmp) / "platform"
        workspace.mkdir()
        write_platform_dir(platform_dir, values)
        (Path(tmp) / "layers").mkdir()
        platform = _platform(workspace, platform_dir, Path(tmp) / "layers", options, isolation, target)
        platform = runs.enter_context(_session(platform, sources, ending, log))
        _prepare_workspace(app, workspace, files=project.file_filter() if project else None)
        return _detect(sources, platform, log, options.strict)


@contextlib.contextmanager
def _session(platform: Platform, sources: Sources, ending: contextlib.ExitStack, log: Logger) -> Iterator[Platform]:
    """`platform` with a started session (cnbsim.session) when its buildpacks run in the namespace:
    one namespace for the build's runs, with the order's buildpacks under /cnb/buildpacks. Leaving
    it starts ending the namespace; `ending`, when it closes, waits until it is gone."""
    if platform.isolation is None:
        yield platform
        return
    with temp_dir("session") as root:
        platform = replace(platform, scratch_root=Path(root))
        try:
            session = Session(platform.session_view(sources.store.order_buildpacks(sources.order)), notice=log.warn)
        except OSError:      # bwrap could not start: each run tries on its own, and says why
            yield platform
            return
        ending.callback(session.join)
        with session:
            yield replace(platform, session=session)


def _platform(workspace: Path, platform_dir: Path, layers: Path, options: BuildOptions,
              isolation: Isolation | None, target: RunTarget | None) -> Platform:
    extra: dict[str, Any] = {"base_env": Isolation.base_env(dict(os.environ))} if isolation else {}
    if target is not None:
        extra["target"] = target
    return Platform(app_dir=workspace, platform_dir=platform_dir, layers_dir=layers, api=options.platform_api,
                    detect_timeout=options.detect_timeout, build_timeout=options.build_timeout,
                    isolation=isolation, **extra)


def _isolation_record(isolation: Isolation | None) -> dict[str, Any]:
    """The report's account of how buildpacks ran."""
    if isolation is None:
        return {"mode": "host", "reason": sandbox.available() or "--sandbox never",
                "paths": "host", "user": "the invoking user"}
    record: dict[str, Any] = {"mode": "namespace", "paths": "image", "network": isolation.network.value,
                              "user": f"{isolation.uid}:{isolation.gid}"}
    if isolation.volumes:   # their targets, as the buildpacks see them (the host paths are the user's)
        record["volumes"] = [f"{v.target}:{'rw' if v.writable else 'ro'}" for v in isolation.volumes]
    return record


def build(app: Path | str, *, builder: Path | str | None = None, buildpacks: Sequence[Path | str] | None = None,
          output: Path | str | None = None, options: BuildOptions | None = None, log: Logger | None = None,
          cache_dir: Path | str | None = None, clear_cache: bool = False, **kwargs: Any) -> BuildResult:
    """Detect and build `app`; returns a BuildResult, or raises a CnbsimError (with its exit code).

    `cache_dir` keeps `cache = true` layers between builds (None: no cache); the previous
    output at `output`, if any, is the "previous image" whose launch layers can be reused.
    """
    options = options or BuildOptions(**kwargs)
    log = log or Logger(stream=None)
    first_record = len(log.records)
    app = _check_app(Path(app))
    started = time.perf_counter()
    project = _descriptor(app, options, log)
    options, buildpacks = _apply_descriptor(project, options, buildpacks)
    platform_values = options.platform_env()
    log = log.with_secrets(Redactor(options.secrets().values()))   # the descriptor's env counts too
    isolation = options.isolation(platform_values, log)
    _check_volumes(options, isolation)
    record, run_target = _run_image(options)
    sources = resolve_sources(builder, buildpacks, log, options.buildpack_store)
    target = OutputDir(output if output is not None else default_output(app), notice=log.warn)
    cache = Cache(Path(cache_dir)) if cache_dir else None
    _check_places(app, target.target, cache.path if cache else None)
    if cache:
        cache.check()
        cache.reclaim(target.target, log)    # before the output's recovery removes what a killed build left
    with _secrets_redacted(log), target, _too_deep_is_an_error(target.target), contextlib.ExitStack() as ending, \
            contextlib.ExitStack() as runs:
        final, stage = target.target, target.path
        workspace, layers = stage / "workspace", stage / "layers"
        workspace.mkdir()
        layers.mkdir()
        write_platform_dir(target.platform_dir, platform_values)
        platform = _platform(workspace, target.platform_dir, layers, options, isolation, run_target)
        # the build's namespace comes up while the app is copied in
        platform = runs.enter_context(_session(platform, sources, ending, log))
        _prepare_workspace(app, workspace, [final, *([cache.path] if cache else [])],
                           project.file_filter() if project else None)
        shown_layers = platform.shown(layers)
        t0 = time.perf_counter()
        log.phase("DETECTING")
        detected = _detect(sources, platform, log, options.strict)
        write_toml(layers / "group.toml", group_to_toml(detected.group))
        write_toml(layers / "plan.toml", detected.plan.to_toml())
        t1 = time.perf_counter()
        if cache and clear_cache:
            cache.clear()
        previous = final / "layers" if target.current and (final / "layers").is_dir() else None
        log.phase("RESTORING")
        restored = restore(detected.group, layers, previous, cache, log, shown_layers=shown_layers)
        # layers moved out of the cache go back to it if the build stops before saving the cache
        saved: list[bool] = []
        ending.callback(put_back, restored, layers, cache, unless=saved)
        for toml in layers.glob("*/*.toml"):     # restored metadata names the output: buildpacks see theirs
            for old, new in _shown_output(final, stage, isolation):
                relocate(toml, old, new)
        t2 = time.perf_counter()
        log.phase("BUILDING")
        normalize = reportmod.Normalizer(
            {str(layers): "/layers", str(workspace): "/workspace", str(stage): "/output",
             str(final / "layers"): "/layers", str(final / "workspace"): "/workspace", str(final): "/output",
             str(target.platform_dir): "/platform"},
            log.redact)
        try:
            outcome = build_phase(detected.group, detected.plan, sources.store, platform, log)
        except BuildError as failed:
            failed.image_output = normalize(failed.output)   # with image paths: what goldens hold
            # named by its image path, not the staging dir that is removed on the way out
            failed.file = failed.file and normalize(failed.file)
            raise
        finally:
            runs.close()     # no buildpack runs after the build phase: its namespace ends (`ending` waits)
        _check_default_process(record, outcome)
        host = reportmod.HostPython.exposed(outcome)
        digests = TreeDigests(normalize.pairs, host)     # each layer read once by the reuse check and the report
        # in the namespace layers hold image paths only: a report digest depends on the contents and the
        # host python alone, and the cache keeps it (on the host, the output's paths in them count too)
        recorded_host = (host.path, host.version) if isolation is not None else None
        status = reuse_layers(outcome, previous, restored, log, digests, cache, recorded_host)
        secrets = options.secrets()
        for warning in leaks.check(secrets, output=stage, source=app, texts={"the build log": log.text}):
            log.warn(warning)
        if isolation is None:
            # Buildpacks wrote the work dir's path into layers (env files, scripts, links): make it the output's.
            # (In the namespace they saw /layers and /workspace, as in an image: nothing to relocate.)
            relocate(stage, str(stage), str(final))
        t3 = time.perf_counter()
        pending: list[Path] = []
        if cache:
            log.phase("CACHING")
            # where the buildpacks saw the layers (what restore relocates a cached layer from)
            pending = cache.save(outcome, Path(shown_layers) if isolation else final / "layers", status, log,
                                 digests, recorded_host, previous)
        saved.append(True)
        timings = {"detect": t1 - t0, "restore": t2 - t1, "build": t3 - t2, "cache": time.perf_counter() - t3}
        report = reportmod.build_report(detected, outcome, layers, status, timings, normalize, host, record, digests)
        report["isolation"] = _isolation_record(isolation)
        request = BuildRequest(app, builder, tuple(buildpacks) if buildpacks is not None else None, final,
                               options, Path(cache_dir).absolute() if cache_dir else None, log)
        report["timings"]["total"] = round(time.perf_counter() - started, 4)
        record.write(stage)
        (stage / "report.json").write_text(reportmod.dumps(report), encoding="utf-8")
        (stage / "build.log").write_text(normalize(log.text), encoding="utf-8")
        result = BuildResult(app=app, output=stage, sources=sources, detect=detected, outcome=outcome,
                             log=log.text, timings=timings, layer_status=status, report=report,
                             platform=record, image_paths=isolation is not None,
                             warnings=tuple(normalize(m) for lvl, m in log.records[first_record:] if lvl == Level.WARN))
        target.commit()
        if cache:
            cache.adopt(pending, target.replaced, final, log)
    return replace(rebase(result, str(stage), str(final)), request=request)   # the request names `final` already


def _shown_output(final: Path, stage: Path, isolation: Isolation | None) -> tuple[tuple[str, str], ...]:
    """How the output's paths in restored metadata become the ones this build's buildpacks see: the work
    dir's on the host; /layers and /workspace in the namespace."""
    if isolation is None:
        return ((str(final), str(stage)),)
    return ((str(final / "layers"), IMAGE_LAYERS_DIR), (str(final / "workspace"), IMAGE_APP_DIR))


@contextlib.contextmanager
def _secrets_redacted(log: Logger) -> Iterator[None]:
    """An error leaving the API shows no secret: what a buildpack wrote can be in its message (an
    unmet name in build.toml), and a test prints it where no log redacts it."""
    try:
        yield
    except CnbsimError as exc:
        exc.message, exc.hint = log.redact(exc.message), exc.hint and log.redact(exc.hint)
        exc.field = exc.field and log.redact(exc.field)
        raise


@contextlib.contextmanager
def _too_deep_is_an_error(stage: Path) -> Iterator[None]:
    """A directory tree deeper than the copy and walk functions recurse is a build error, not a crash."""
    try:
        yield
    except RecursionError:
        raise BuildError("a buildpack left a directory tree that nests too deeply to copy or check",
                         file=stage, hint="a layer's tree must nest less than a few hundred levels") from None


def _check_places(app: Path, output: Path, cache: Path | None) -> None:
    """Refuse an output or cache whose replacement would delete the app (or each other)."""
    if is_inside(app, output):
        raise ConfigError("the output is the app dir or contains it: replacing the output would delete the app",
                          file=output, field="--output", hint="choose an output outside the app dir")
    if cache is None:
        return
    for other, what in ((app, "the app dir"), (output, "the output")):
        if is_inside(other, cache):
            raise ConfigError(f"the cache dir is {what} or contains it: replacing the cache would delete it",
                              file=cache, field="--cache-dir", hint="choose a cache dir of its own")
    if is_inside(cache, output):
        raise ConfigError("the cache dir lies inside the output, which each build replaces",
                          file=cache, field="--cache-dir", hint="choose a cache dir outside the output")


def rebase(value: Any, old: str, new: str) -> Any:
    """`value` (a model, or strings and paths in it) with the path `old` replaced by `new`."""
    if isinstance(value, Path):
        text = str(value)
        return Path(new + text[len(old):]) if text == old or text.startswith(old + "/") else value
    if type(value) is str:
        return value.replace(old, new)
    if isinstance(value, tuple):
        return tuple(rebase(v, old, new) for v in value)
    if isinstance(value, list):
        return [rebase(v, old, new) for v in value]
    if isinstance(value, dict):
        return {rebase(k, old, new): rebase(v, old, new) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: rebase(getattr(value, f.name), old, new)
                                 for f in dataclasses.fields(value) if f.init})
    return value
