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
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from cnbsim import sandbox
from cnbsim.errors import ConfigError, LaunchError
from cnbsim.output import BuiltOutput

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

    def close(self) -> None:
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
    writable_workspace: bool = False


def start(req: RunRequest, *, stdout: Any = None, stderr: Any = None) -> Job:
    """Start the process (not waiting); stdout/stderr as for subprocess.Popen."""
    if req.process_type is not None and req.output.metadata.process(req.process_type) is None:
        known = ", ".join(p.type for p in req.output.metadata.processes) or "none"
        raise LaunchError(f"process type {req.process_type} was not found", field="--process",
                          hint=f"this build has: {known}")
    sandboxed = sandbox.use_sandbox(req.sandbox)
    tmp = tempfile.TemporaryDirectory(prefix="cnbsim-run-")
    inputs: dict[str, Path] = {}
    for name, value in (("data", req.data), ("params", req.params)):
        if value is not None:
            host = Path(tmp.name) / "input" / name / f"{name}.json"
            host.parent.mkdir(parents=True)
            host.write_text(json.dumps(value), encoding="utf-8")
            inputs[f"{IMAGE_INPUT_ROOT}/{name}/{name}.json"] = host
    env = {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "HOME": "/tmp" if sandboxed else os.environ.get("HOME", "/tmp"),
           "CNB_PLATFORM_API": "0.15"}
    if req.data is not None or req.params is not None:
        env["BASE64_ENCODED"] = "false"   # plain JSON files, as the PlanQK docker recipes say
    env.update(req.env)
    # -I: the launcher's own imports ignore the app dir and PYTHON* variables of the launch env
    launcher = [sys.executable, "-I", "-m", "cnbsim.cli", "lifecycle", "launcher"]
    # as `docker run IMAGE`: the entrypoint is /cnb/process/<default> when the build has a default
    # process, else /cnb/lifecycle/launcher (lifecycle phase/exporter.go entrypoint)
    process_type = req.process_type or req.output.metadata.default_process
    if process_type:
        launcher += ["--process", process_type]
    launcher += list(req.args)
    if sandboxed:
        env.update({"CNB_LAYERS_DIR": "/layers", "CNB_APP_DIR": "/workspace"})
        argv = sandbox.wrap(launcher, output=req.output.path, workspace=req.output.workspace,
                            layers=req.output.layers_dir, inputs=inputs, writable_workspace=req.writable_workspace)
        cwd = None
    else:
        env.update({"CNB_LAYERS_DIR": str(req.output.layers_dir), "CNB_APP_DIR": str(req.output.workspace),
                    INPUT_ROOT_VAR: str(Path(tmp.name) / "input")})
        argv, cwd = launcher, req.output.workspace
    try:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                start_new_session=True)
    except OSError as exc:
        tmp.cleanup()
        raise ConfigError(f"cannot start the process: {exc.strerror}")
    return Job(proc, tmp, sandboxed)


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
