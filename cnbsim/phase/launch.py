"""The launcher: launch env, process selection, args, working dir, exec.d, profile.d, exec.

Follows lifecycle launch/ and cmd/launcher (buildpacks/spec platform.md#launcher, buildpack.md#launch). The env starts from the
container's env; for each buildpack, all its launch layers' bin/ and lib/ first, then each
layer's env/, env.launch/, env.launch/<type>/; then exec.d output; then the process runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnbsim.env import LAUNCH_ROOT_DIRS, Env
from cnbsim.errors import ExitCode, LaunchError
from cnbsim.model.api import DEFAULT_BUILDPACK_API, DEFAULT_PLATFORM_API, ApiVersion
from cnbsim.model.launch import Process
from cnbsim.model.layers import read_layers_dir
from cnbsim.model.metadata import BuildMetadata, read_metadata_toml
from cnbsim.tomlio import parse_toml


@dataclass(frozen=True)
class LaunchPlan:
    """Everything needed to start the process: what `exec` would receive."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: Path
    process: Process | None
    working_dir: str = ""      # as the process gives it (relative to the app dir), for error messages


def launch_layers(layers_dir: Path, metadata: BuildMetadata) -> list[tuple[str, list[Path]]]:
    """Per buildpack (group order), its launch layer dirs in ReadLayersDir order (buildpacks/spec buildpack.md#layer-paths).

    In an image every layer dir is a launch layer (its `<layer>.toml` files are not exported); in a
    build output only those whose `<layer>.toml` says `launch = true` would have been, and a malformed
    one would have failed the export (lifecycle phase/exporter.go).
    """
    out = []
    for bp in metadata.buildpacks:
        bp_layers = read_layers_dir(layers_dir, bp.id, error=LaunchError)
        if not bp_layers.exists:
            continue
        if bp_layers.malformed:
            bad = bp_layers.malformed[0].error
            raise LaunchError(str(bad), exit_code=ExitCode.LAUNCH_ERROR)
        if bp_layers.has_tomls:
            chosen = bp_layers.launch_layers()
        else:
            chosen = tuple(layer for layer in bp_layers.layers if not layer.name.endswith(".ignore"))
        out.append((bp.id, [layer.path for layer in chosen if layer.has_contents]))
    return out


def launch_env(layers_dir: Path, metadata: BuildMetadata, process_type: str | None,
               environ: Mapping[str, str]) -> Env:
    env = Env.for_launch(environ)
    for _, layers in launch_layers(layers_dir, metadata):
        for layer in layers:   # lc: all root dirs of a buildpack first ...
            env.add_root_dir(layer, LAUNCH_ROOT_DIRS)
        for layer in layers:   # ... then each layer's env dirs
            env.add_env_dir(layer / "env")
            env.add_env_dir(layer / "env.launch")
            if process_type:
                env.add_env_dir(layer / "env.launch" / process_type)
    return env


def run_exec_d(layers_dir: Path, metadata: BuildMetadata, process_type: str | None, env: Env,
               app_dir: Path) -> None:
    """lifecycle launch/exec_d.go: per layer, exec.d/* then exec.d/<type>/*; TOML on fd 3 overrides the env."""
    for _, layers in launch_layers(layers_dir, metadata):
        for layer in layers:
            dirs = [layer / "exec.d"] + ([layer / "exec.d" / process_type] if process_type else [])
            for d in dirs:
                if not d.is_dir():
                    continue
                for path in sorted((p for p in d.iterdir() if p.is_file()), key=lambda p: p.name):
                    _exec_d_one(path, env, app_dir)


def _exec_d_one(path: Path, env: Env, app_dir: Path) -> None:
    read_fd, write_fd = os.pipe()
    try:
        # fd 3 of the program is the pipe; sh sets it up, then becomes the program.
        proc = subprocess.Popen(["/bin/sh", "-c", f'exec "$0" 3>&{write_fd}', str(path)],
                                env=env.vars, cwd=app_dir, pass_fds=(write_fd,))
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        raise LaunchError(f"failed to execute exec.d file at path '{path}': {exc.strerror}")
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        data = fh.read()
    if proc.wait() != 0:
        raise LaunchError(f"failed to execute exec.d file at path '{path}': exit status {proc.returncode}",
                          hint="every file in exec.d must be an executable that exits 0")
    try:
        table = parse_toml(data.decode("utf-8"), path=path, what="exec.d output", error=LaunchError)
    except (UnicodeDecodeError, LaunchError):
        raise LaunchError(f"failed to decode output from exec.d file at path '{path}'",
                          hint='write NAME = "value" lines to fd 3')
    for name, value in table.items():
        if not isinstance(value, str):
            raise LaunchError(f"failed to decode output from exec.d file at path '{path}': "
                              f"{name} must be a string")
        env.vars[name] = value


def _profiles(layers_dir: Path, metadata: BuildMetadata, process_type: str | None, app_dir: Path) -> list[str]:
    out: list[str] = []
    for _, layers in launch_layers(layers_dir, metadata):
        for layer in layers:
            for d in [layer / "profile.d"] + ([layer / "profile.d" / process_type] if process_type else []):
                if d.is_dir():
                    out.extend(str(p) for p in sorted(d.iterdir(), key=lambda p: p.name) if p.is_file())
    if (app_dir / ".profile").is_file():
        out.append(".profile")
    return out


def _user_args(process: Process, user_args: Sequence[str], bp_api: ApiVersion, platform_api: ApiVersion
               ) -> tuple[str, tuple[str, ...]]:
    """lifecycle launch/process.go handleUserArgs (buildpacks/spec platform.md#launcher): the command and its final args."""
    if not process.command or not process.command[0]:
        raise LaunchError(f'no command provided for process type "{process.type}"')
    if platform_api < ApiVersion(0, 10):
        return process.command[0], (*process.command[1:], *process.args, *user_args)
    if len(process.command) > 1:
        return process.command[0], (*process.command[1:], *(user_args or process.args))
    if not user_args:
        return process.command[0], process.args
    if bp_api < ApiVersion(0, 9):
        return process.command[0], (*process.args, *user_args)   # appended before Buildpack API 0.9
    return process.command[0], tuple(user_args)                  # replaced from 0.9


def _eligible_process(md: BuildMetadata, ptype: str, exec_env: str, platform_api: ApiVersion) -> Process | None:
    """The first process of the type that may run in this exec-env (Platform API >= 0.15, buildpacks/spec platform.md#launcher):
    one without `exec-env`, or whose list holds `*` or CNB_EXEC_ENV (default production)."""
    for p in md.processes:
        if p.type != ptype:
            continue
        if platform_api < ApiVersion(0, 15) or not p.exec_env or "*" in p.exec_env or exec_env in p.exec_env:
            return p
    return None


def plan_launch(layers_dir: Path, app_dir: Path, *, process_type: str | None = None,
                user_args: Sequence[str] = (), environ: Mapping[str, str] | None = None,
                platform_api: ApiVersion = DEFAULT_PLATFORM_API, argv0: str = "launcher",
                metadata: BuildMetadata | None = None, use_default: bool = True) -> LaunchPlan:
    """Work out what the launcher would exec; runs exec.d programs (they may change the env).

    Without `process_type` the build's default process runs (as the image's entrypoint
    /cnb/process/<default> does), unless `use_default` is false: then, as /cnb/lifecycle/launcher,
    the args are a user-provided command (lifecycle launch/process.go ProcessFor)."""
    environ = dict(os.environ if environ is None else environ)
    layers_dir, app_dir = layers_dir.absolute(), app_dir.absolute()
    md = metadata or read_metadata_toml(layers_dir / "config" / "metadata.toml")
    user_args = list(user_args)
    if process_type is None and md.default_process and use_default:
        process_type = md.default_process
    process = None
    if process_type is not None:
        process = _eligible_process(md, process_type, environ.get("CNB_EXEC_ENV") or "production", platform_api)
        if process is None:
            known = ", ".join(p.type for p in md.processes) or "none"
            hint = (f"it is not for exec-env '{environ.get('CNB_EXEC_ENV') or 'production'}': set CNB_EXEC_ENV"
                    if md.process(process_type) else f"known types: {known}")
            raise LaunchError(f"determine start command: process type {process_type} was not found", hint=hint)
    elif not user_args:
        raise LaunchError("determine start command: when there is no default process a command is required",
                          hint="name a process type or give a command")
    if process is None:
        # lifecycle launch/process.go userProvidedProcess: `-- cmd args` is direct, anything else goes through bash
        direct = len(user_args) > 1 and user_args[0] == "--"
        if direct:
            user_args = user_args[1:]
        process = Process(type="", command=(user_args[0],), args=tuple(user_args[1:]), direct=direct)
        command, args = process.command[0], process.args
        process_for_plan = None
    else:
        bp = md.buildpack(process.buildpack_id)
        if bp is None:
            raise LaunchError(f"determine start command: failed to find buildpack for process {process.type} "
                              f"with buildpack ID {process.buildpack_id}")
        command, args = _user_args(process, user_args, bp.api or DEFAULT_BUILDPACK_API, platform_api)
        cwd = app_dir / process.working_dir if process.working_dir else app_dir
        process_for_plan = process
    cwd = app_dir / process.working_dir if process.working_dir else app_dir
    # lifecycle launch/launcher.go LaunchProcess: the process is chosen first, then env, then exec.d
    env = launch_env(layers_dir, md, process_type, environ)
    try:
        run_exec_d(layers_dir, md, process_type, env, app_dir)
    except LaunchError as exc:
        raise LaunchError(f"exec.d: {exc.message}", hint=exc.hint) from None
    if process.direct:
        if not command:
            raise LaunchError(f'no command provided for process type "{process.type}"')
        resolved = shutil.which(command, path=env.get("PATH")) if "/" not in command else command
        if not resolved:
            raise LaunchError(f"path lookup: exec: \"{command}\": executable file not found in $PATH",
                              hint="is the program installed in the bin/ dir of a launch layer?")
        return LaunchPlan((resolved, command, *args), env.vars, cwd, process_for_plan,
                          process.working_dir or str(app_dir))
    script = "".join(f'source "{p}"\n' for p in _profiles(layers_dir, md, process_type, app_dir))
    # lifecycle launch/bash.go: `cd` to the working-dir as the process gives it (bash starts in the app dir)
    script += f'cd "{process.working_dir or app_dir}"\n'
    if args:
        quoted = " ".join('"$(eval echo \\"$0\\")"' if i == 0 else f'"$(eval echo \\"${{{i}}}\\")"'
                          for i in range(len(args) + 1))
        script += f"exec bash -c '{quoted}' \"${{@:1}}\""
    else:
        script += 'exec bash -c "$@"'
    bash = shutil.which("bash", path=env.get("PATH")) or "/bin/bash"
    return LaunchPlan((bash, argv0, "-c", script, argv0, command, *args), env.vars, app_dir, process_for_plan,
                      str(app_dir))


def _go_error(exc: OSError) -> str:
    """An OSError worded as Go's syscall errors are ("no such file or directory")."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def exec_plan(plan: LaunchPlan) -> None:
    """Replace this process with the launched one (as the real launcher does)."""
    try:
        os.chdir(plan.cwd)
    except OSError as exc:
        # lifecycle launch/launcher.go launchDirect: exit 82 "change directory: chdir <dir>: ..."
        raise LaunchError(f"change directory: chdir {plan.working_dir or plan.cwd}: {_go_error(exc)}",
                          hint="the process's working-dir must exist in the app dir") from None
    try:
        os.execve(plan.argv[0], list(plan.argv[1:]), plan.env)
    except OSError as exc:
        raise LaunchError(f"direct exec: {_go_error(exc)}") from None
