"""Running a built PlanQK service like `docker run` would: inputs, env, launcher, sandbox, result.

The equivalent of PlanQK's recipe
`docker run -e BASE64_ENCODED=false -v data.json:/var/input/data/data.json
 -v params.json:/var/input/params/params.json IMAGE`: the process is started through the
launcher (`cnbsim lifecycle launcher`), inside bubblewrap when available, and the result is
read from the `PlanQK:Job:MultilineResult` block on stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from cnbsim import sandbox
from cnbsim.errors import ConfigError, LaunchError
from cnbsim.fs import special_files
from cnbsim.model.buildpack import escape_id
from cnbsim.output import BuiltOutput
from cnbsim.phase.launch import launch_layers
from cnbsim.platform import IMAGE_APP_DIR, IMAGE_LAYERS_DIR

RESULT_MARKER = "PlanQK:Job:MultilineResult"
INPUT_ROOT_VAR = "PLANQK_INPUT_ROOT"      # the runtime's configurable input root (default /var/input)
IMAGE_INPUT_ROOT = "/var/input"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def read_json_input(path: Path | str, what: str) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found", file=path, hint=f"check the --{what} path")
    except IsADirectoryError:
        raise ConfigError(f"{what} must be a file, not a directory", file=path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file: {getattr(exc, 'strerror', None) or exc}", file=path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                          file=path, hint="fix the JSON (e.g. check quotes and commas)")


@dataclass
class Job:
    """A started process and what it needs cleaned up."""

    process: subprocess.Popen
    tmp: tempfile.TemporaryDirectory
    sandboxed: bool
    notice: str = ""        # one line the caller shows (e.g. that the run shares the host's network)

    def close(self) -> None:
        """Kill what is left of the process tree and remove the run's temp dirs."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        sandbox.release(self.process)
        self.tmp.cleanup()


@dataclass(frozen=True)
class RunRequest:
    output: BuiltOutput
    process_type: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    data: Any = None            # JSON values (already parsed); None = no input
    params: Any = None
    sandbox: str = "auto"
    writable_workspace: bool = False   # unsandboxed runs only: the sandbox's /workspace is always a writable copy
    network: str = "bridge"     # as docker run: bridge (own network, outbound only) | none | host


def start(req: RunRequest, *, stdout: Any = None, stderr: Any = None) -> Job:
    """Start the process (not waiting); stdout/stderr as for subprocess.Popen."""
    if req.process_type is not None and req.output.metadata.process(req.process_type) is None:
        known = ", ".join(p.type for p in req.output.metadata.processes) or "none"
        raise LaunchError(f"process type {req.process_type} was not found", field="--process",
                          hint=f"this build has: {known}")
    network = sandbox.parse_network(req.network, tuple(sandbox.Network))
    sandboxed = sandbox.use_sandbox(req.sandbox)
    if not sandboxed and req.output.image_paths:
        raise ConfigError("this output was built in the image layout (/workspace, /layers): it runs only in the "
                          "sandbox, " + (sandbox.available() or "but --sandbox never was given"), file=req.output.path,
                          hint="run with --sandbox auto, or rebuild with cnbsim build --sandbox never")
    if not sandboxed and network is sandbox.Network.NONE:
        raise ConfigError("--network none needs the sandbox", field="--network",
                          hint="install bubblewrap, or run with --network host")
    tmp = tempfile.TemporaryDirectory(prefix="cnbsim-run-")
    try:
        return _start(req, tmp, sandboxed, network, stdout, stderr)
    except BaseException:
        tmp.cleanup()
        raise


def _start(req: RunRequest, tmp: tempfile.TemporaryDirectory, sandboxed: bool, network: sandbox.Network,
           stdout: Any, stderr: Any) -> Job:
    inputs: dict[str, Path] = {}
    for name, value in (("data", req.data), ("params", req.params)):
        if value is not None:
            host = Path(tmp.name) / "input" / name / f"{name}.json"
            host.parent.mkdir(parents=True)
            host.write_text(json.dumps(value), encoding="utf-8")
            inputs[f"{IMAGE_INPUT_ROOT}/{name}/{name}.json"] = host
    env = {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "HOME": sandbox.HOME if sandboxed else os.environ.get("HOME", "/tmp"),
           "CNB_PLATFORM_API": "0.15"}
    if req.data is not None or req.params is not None:
        env["BASE64_ENCODED"] = "false"   # plain JSON files, as the PlanQK docker recipes say
    env.update(req.env)
    # -I: the launcher's own imports ignore the app dir and PYTHON* variables of the launch env
    launcher = [sys.executable, "-I", "-m", "cnbsim.cli", "lifecycle", "launcher"]
    if req.process_type:
        launcher += ["--process", req.process_type]
    launcher += list(req.args)
    notice = ""
    try:
        if sandboxed:
            if network is sandbox.Network.BRIDGE and sandbox.pasta_available():
                notice = f"note: {sandbox.pasta_available()}: the run shares the host's network"
                network = sandbox.Network.HOST
            env.update({"CNB_LAYERS_DIR": IMAGE_LAYERS_DIR, "CNB_APP_DIR": IMAGE_APP_DIR})
            view = run_view(req.output, Path(tmp.name), inputs, network)
            proc = sandbox.spawn(view, launcher, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        else:
            env.update({"CNB_LAYERS_DIR": str(req.output.layers_dir), "CNB_APP_DIR": str(req.output.workspace),
                        INPUT_ROOT_VAR: str(Path(tmp.name) / "input")})
            proc = subprocess.Popen(launcher, env=env, cwd=req.output.workspace, stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=stderr, start_new_session=True)
    except OSError as exc:
        raise ConfigError(f"cannot start the process: {exc.strerror}")
    return Job(proc, tmp, sandboxed, notice)


def run_view(output: BuiltOutput, tmp: Path, inputs: Mapping[str, Path], network: sandbox.Network) -> sandbox.View:
    """A container of the image: a throwaway copy of the workspace at /workspace (writable), the
    launch layers only at /layers (read-only), the inputs at /var/input, a run image's root."""
    workspace = tmp / "workspace"
    shutil.copytree(output.workspace, workspace, symlinks=True, ignore=special_files)
    binds = [sandbox.Bind(str(workspace), IMAGE_APP_DIR, writable=True),
             sandbox.Bind(str(output.layers_dir / "config"), f"{IMAGE_LAYERS_DIR}/config")]
    pointed_at: list[str] = []
    for bp_id, layers in launch_layers(output.layers_dir, output.metadata):
        for layer in layers:
            binds.append(sandbox.Bind(str(layer), f"{IMAGE_LAYERS_DIR}/{escape_id(bp_id)}/{layer.name}"))
            pointed_at += _outside_links(layer)
    if not output.image_paths:
        # built on the host: its layers hold host paths to the output (read-only, as /layers)
        binds.append(sandbox.Bind(str(output.path), str(output.path)))
    binds += [sandbox.Bind(p, p) for p in sandbox.interpreter_paths(pointed_at) + sandbox.launcher_paths()]
    binds += [sandbox.Bind(str(host), image_path) for image_path, host in sorted(inputs.items())]
    uid, gid = sandbox.user_ids()
    return sandbox.View(binds=tuple(binds), cwd=IMAGE_APP_DIR, root=sandbox.Root.RUN, network=network,
                        uid=uid, gid=gid, max_processes=sandbox.RUN_MAX_PROCESSES,
                        tmpfs=(IMAGE_LAYERS_DIR,), read_only=(IMAGE_LAYERS_DIR,))


def _outside_links(layer: Path) -> list[str]:
    """Absolute symlink targets in a layer that point out of the image (e.g. the cpython stub's
    link to a host interpreter): the run shows them, as the image would hold them."""
    out = []
    for dirpath, dirnames, filenames in os.walk(layer):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                target = os.readlink(path)
                if target.startswith("/") and not target.startswith((IMAGE_LAYERS_DIR + "/", IMAGE_APP_DIR + "/")):
                    out.append(target)
    return out


def parse_result(stdout: str) -> tuple[bool, Any]:
    """The value of the last `PlanQK:Job:MultilineResult` block (the runtime prints it last, so a
    marker the user's code printed earlier cannot take its place); (False, None) when there is none."""
    lines = stdout.splitlines()
    marks = [i for i, line in enumerate(lines) if line.strip() == RESULT_MARKER]
    if len(marks) < 2:
        for line in reversed(lines):  # the single-line form of custom runtimes
            if line.startswith("PlanQK:Job:Result:"):
                try:
                    return True, json.loads(line.split(":", 3)[3])
                except json.JSONDecodeError:
                    return False, None
        return False, None
    start_, end = marks[-2], marks[-1]
    try:
        return True, json.loads("\n".join(lines[start_ + 1:end]))
    except json.JSONDecodeError:
        return False, None
