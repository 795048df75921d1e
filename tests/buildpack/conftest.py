"""Helpers for the job-template buildpack's tests: its executables run as a CNB lifecycle runs them,
and its runtime runs as the image's `web` process does, each in a real subprocess in tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cnbsim.env import LAUNCH_ROOT_DIRS, Env
from cnbsim.tomlio import tomllib

REPO = Path(__file__).resolve().parents[2]
BUILDPACK = REPO / "buildpack"
RUNTIME = BUILDPACK / "runtime"
RUNTIME_PYTHON = RUNTIME / "python"
APPS = REPO / "fixtures" / "apps"
MARKER = "PlanQK:Job:MultilineResult"
TIMEOUT = 60


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def block(self) -> tuple[bool, Any]:
        """(True, value) for the JSON between the last two result markers on stdout, else (False, None)."""
        lines = self.stdout.splitlines()
        marks = [i for i, line in enumerate(lines) if line == MARKER]
        if len(marks) < 2:
            return False, None
        return True, json.loads("\n".join(lines[marks[-2] + 1:marks[-1]]))


def execute(argv: Sequence[str | Path], *, cwd: Path, env: Mapping[str, str]) -> Run:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=dict(env), capture_output=True, text=True,
                          timeout=TIMEOUT)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def base_env(**extra: str) -> dict[str, str]:
    """What a lifecycle keeps of its own environment (buildpacks/spec buildpack.md#provided-by-the-lifecycle), plus `extra`."""
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    env.update(LANG="C.UTF-8", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def copy_app(name: str, dest: Path) -> Path:
    """A copy of a fixture app (bin/detect and bin/build may write into the app dir)."""
    target = dest / name
    shutil.copytree(APPS / name, target)
    return target


def write_platform(root: Path, env: Mapping[str, str]) -> Path:
    """A platform dir whose env/ holds `env` as files, as `pack build --env` leaves it."""
    (root / "env").mkdir(parents=True, exist_ok=True)
    for name, value in env.items():
        (root / "env" / name).write_text(value)
    return root


@dataclass(frozen=True)
class Detected(Run):
    plan_path: Path

    @property
    def plan(self) -> dict[str, Any]:
        return tomllib.loads(self.plan_path.read_text())


def run_detect(app: Path, tmp: Path, *, env: Mapping[str, str] | None = None,
               platform_env: Mapping[str, str] | None = None, path: str | None = None) -> Detected:
    """bin/detect as the lifecycle runs it for Buildpack API 0.10: cwd = app, args and CNB_* vars,
    platform env files also exported as variables."""
    platform = write_platform(tmp / "platform", platform_env or {})
    plan = tmp / "detect-plan.toml"
    plan.write_text("")
    full = base_env(CNB_BUILDPACK_DIR=str(BUILDPACK), CNB_PLATFORM_DIR=str(platform), CNB_BUILD_PLAN_PATH=str(plan),
                    CNB_TARGET_OS="linux", CNB_TARGET_ARCH="amd64", **{**(platform_env or {}), **(env or {})})
    if path is not None:
        full["PATH"] = path
    run = execute([BUILDPACK / "bin" / "detect", platform, plan], cwd=app, env=full)
    return Detected(run.returncode, run.stdout, run.stderr, plan)


def run_build(app: Path, layers: Path, *, env: Mapping[str, str] | None = None,
              platform_env: Mapping[str, str] | None = None, path: str | None = None) -> Run:
    """bin/build as the lifecycle runs it for Buildpack API 0.10 (an empty buildpack plan: it provides nothing)."""
    platform = write_platform(layers.parent / "platform", platform_env or {})
    plan = layers.parent / "bp-plan.toml"
    plan.write_text("")
    layers.mkdir(parents=True, exist_ok=True)
    full = base_env(CNB_BUILDPACK_DIR=str(BUILDPACK), CNB_PLATFORM_DIR=str(platform), CNB_BP_PLAN_PATH=str(plan),
                    CNB_LAYERS_DIR=str(layers), CNB_TARGET_OS="linux", CNB_TARGET_ARCH="amd64",
                    **{**(platform_env or {}), **(env or {})})
    if path is not None:
        full["PATH"] = path
    return execute([BUILDPACK / "bin" / "build", layers, platform, plan], cwd=app, env=full)


def tools_dir(root: Path, names: Sequence[str]) -> str:
    """A PATH of one dir with links to the given host tools only (e.g. to hide python3)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        # python3: the real interpreter, not a version manager's shim that needs more of PATH
        found = os.path.realpath(getattr(sys, "_base_executable", sys.executable)) if name == "python3" \
            else shutil.which(name)
        assert found, f"{name} is needed on the test machine"
        if not (root / name).exists():
            (root / name).symlink_to(found)
    return str(root)


def launch_env(layer: Path, container: Mapping[str, str]) -> dict[str, str]:
    """The env a process starts with: the container env, the layer's bin/ and env.launch/ (cnbsim's launcher rules)."""
    env = Env(dict(container))
    env.add_root_dir(layer, LAUNCH_ROOT_DIRS)
    env.add_env_dir(layer / "env")
    env.add_env_dir(layer / "env.launch")
    return env.vars


def python_dir(root: Path) -> Path:
    """A dir with `python` -> this interpreter: what the cpython layer's bin/ puts on PATH."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "python").exists():
        (root / "python").symlink_to(sys.executable)
    return root


def run_runtime(project: Path, *, env: Mapping[str, str] | None = None, args: Sequence[str] = (),
                python: str = sys.executable, input_root: Path | None = None) -> Run:
    """The vendored runtime as the `web` process starts it: `python -m app` in the runtime's dir,
    with PLANQK_APP_DIR = `project` (what the layer's env.launch sets).
    The input root and the v2 input/output dirs are dirs in tmp (never the host's /var/input or
    /var/runtime) unless `input_root` or `env` names others; the v2 ones exist only if a test makes them."""
    root = input_root or project.parent / "var-input"
    full = base_env(**{"PLANQK_INPUT_ROOT": str(root), "PLANQK_APP_DIR": str(project),
                       "INPUT_DIRECTORY": str(project.parent / "var-runtime" / "input"),
                       "OUTPUT_DIRECTORY": str(project.parent / "var-runtime" / "output"), **(env or {})})
    return execute([python, "-m", "app", *args], cwd=RUNTIME_PYTHON, env=full)


def make_project(root: Path, program: str, files: Mapping[str, str] | None = None) -> Path:
    """A PlanQK project: planqk.json, src/__init__.py, src/program.py = `program`, plus `files`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "planqk.json").write_text('{"name": "test", "runtime": "PYTHON_TEMPLATE"}\n')
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "__init__.py").write_text("")
    (root / "src" / "program.py").write_text(program)
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def project(tmp_path: Path):
    """A PlanQK project in tmp_path/project from a src/program.py text and other files."""
    def make(program: str, files: Mapping[str, str] | None = None) -> Path:
        return make_project(tmp_path / "project", program, files)
    return make


@pytest.fixture
def fixture_app(tmp_path: Path):
    """A copy of fixtures/apps/<name> in tmp_path."""
    def copy(name: str) -> Path:
        return copy_app(name, tmp_path)
    return copy


@pytest.fixture
def detect(tmp_path: Path):
    """bin/detect on an app dir, as the lifecycle runs it."""
    def run(app: Path, **kwargs: Any) -> Detected:
        return run_detect(app, tmp_path, **kwargs)
    return run


@pytest.fixture
def layers(tmp_path: Path) -> Path:
    """The buildpack's layers dir (<layers>/planqk-buildpacks_job-template)."""
    return tmp_path / "layers" / "planqk-buildpacks_job-template"


@pytest.fixture
def build(layers: Path):
    """bin/build on an app dir into `layers`, as the lifecycle runs it."""
    def run(app: Path, **kwargs: Any) -> Run:
        return run_build(app, layers, **kwargs)
    return run


@pytest.fixture
def run_job():
    """The vendored runtime through its launcher in a project dir (see run_runtime)."""
    return run_runtime


@pytest.fixture
def launch_web(tmp_path: Path, layers: Path):
    """The `web` process of a build in `layers`, started like the launcher does: the container env
    plus the layer's env.launch/ and a cpython-like `python` on PATH, in the process's working-dir."""
    def run(app: Path, env: Mapping[str, str] | None = None) -> Run:
        container = base_env(**{"PATH": f"{python_dir(tmp_path / 'cpython-bin')}:/usr/bin:/bin",
                                "PLANQK_INPUT_ROOT": str(tmp_path / "var-input"),
                                "INPUT_DIRECTORY": str(tmp_path / "var-runtime" / "input"),
                                "OUTPUT_DIRECTORY": str(tmp_path / "var-runtime" / "output"), **(env or {})})
        launch = tomllib.loads((layers / "launch.toml").read_text())
        web = next(p for p in launch["processes"] if p["type"] == "web")
        return execute(web["command"], cwd=Path(web.get("working-dir", app)),
                       env=launch_env(layers / "job-template", container))
    return run


@pytest.fixture
def tools(tmp_path: Path):
    """A PATH with only the named host tools (to run the buildpack without python3)."""
    def make(*names: str) -> str:
        return tools_dir(tmp_path / "tools", names)
    return make


@pytest.fixture(scope="session")
def python38() -> str:
    """A Python 3.8 interpreter (the oldest the runtime supports), or the test is skipped."""
    for candidate in [shutil.which("python3.8"), *sorted(Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"))]:
        if candidate and subprocess.run([str(candidate), "-c", "pass"], capture_output=True).returncode == 0:
            return str(candidate)
    pytest.skip("no Python 3.8 interpreter on this machine")


@pytest.fixture
def fake_python3(tmp_path: Path):
    """A dir holding an executable `python3` with the given sh body, to put first on PATH."""
    def make(script: str) -> str:
        root = tmp_path / "fake-python3"
        root.mkdir(parents=True, exist_ok=True)
        (root / "python3").write_text("#!/bin/sh\n" + script)
        (root / "python3").chmod(0o755)
        return str(root)
    return make
