"""Run the stub buildpacks' bin/detect and bin/build the way the lifecycle does.

cnbsim's own lifecycle is not used: each run gets the positional args, the CNB_* env vars
of the buildpack's declared API (buildpacks/spec buildpack.md#detection, #build; lifecycle buildpack/detect.go,
build.go), the platform env (as files in
<platform>/env/ and as env vars), cwd = the app dir, a fresh plan file, and for build the
buildpack's layers dir <layers>/<id with / as _>.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from cnbsim.tomlio import tomllib

REPO = Path(__file__).resolve().parents[2]
STUBS = REPO / "cnbsim" / "stubs" / "paketo"
BUILDERS = REPO / "cnbsim" / "builders"
BASE_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def descriptor(stub: str) -> dict[str, Any]:
    return tomllib.loads((STUBS / stub / "buildpack.toml").read_text())


def api_at_least(api: str, minimum: tuple[int, int]) -> bool:
    major, _, minor = api.partition(".")
    return (int(major), int(minor or 0)) >= minimum


@dataclass
class DetectRun:
    code: int
    stdout: str
    stderr: str
    seconds: float
    plan: dict[str, Any]


@dataclass
class BuildRun:
    code: int
    stdout: str
    stderr: str
    seconds: float
    layers: Path

    def layer_toml(self, name: str) -> dict[str, Any]:
        return tomllib.loads((self.layers / f"{name}.toml").read_text())

    def types(self, name: str) -> dict[str, bool]:
        return self.layer_toml(name)["types"]

    def metadata(self, name: str) -> dict[str, Any]:
        return self.layer_toml(name).get("metadata", {})

    def env_files(self, name: str) -> dict[str, str]:
        """`<scope>/<file>` -> content for every env file of the layer."""
        layer = self.layers / name
        return {str(p.relative_to(layer)): p.read_text()
                for scope in ("env", "env.build", "env.launch") if (layer / scope).is_dir()
                for p in sorted((layer / scope).rglob("*")) if p.is_file()}

    def launch(self) -> dict[str, Any]:
        path = self.layers / "launch.toml"
        return tomllib.loads(path.read_text()) if path.exists() else {}

    def layer_names(self) -> set[str]:
        return {p.stem for p in self.layers.glob("*.toml") if p.name not in ("launch.toml", "build.toml")}


class Lifecycle:
    """The app, platform and layers dirs of one test and the runs of stubs in them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.app = root / "app"
        self.platform = root / "platform"
        self.layers_root = root / "layers"
        for d in (self.app, self.platform / "env", self.layers_root):
            d.mkdir(parents=True, exist_ok=True)
        self.platform_env: dict[str, str] = {
            "CNBSIM_INSTALLER": "stub",
            "CNBSIM_PYTHON": sys.executable,
            "CNBSIM_BASE_PYTHON": BASE_PYTHON,
        }
        # what earlier buildpacks' build layers added (PATH and friends); see with_layers_env
        self.build_env: dict[str, str] = {}

    def write(self, name: str, text: str) -> Path:
        path = self.app / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def layers(self, stub: str) -> Path:
        return self.layers_root / descriptor(stub)["buildpack"]["id"].replace("/", "_")

    def _env(self, stub: str, env: Mapping[str, str] | None, cnb: dict[str, str]) -> dict[str, str]:
        for f in (self.platform / "env").iterdir():
            f.unlink()
        platform_env = {**self.platform_env, **(env or {})}
        platform_env = {k: v for k, v in platform_env.items() if v is not None}
        for key, value in platform_env.items():
            (self.platform / "env" / key).write_text(value)
        # lifecycle env/build.go: only a few of the lifecycle's own variables pass
        out = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
        out.update(self.build_env)
        out.update(platform_env)
        bp_dir = STUBS / stub
        out["CNB_BUILDPACK_DIR"] = str(bp_dir)
        if api_at_least(descriptor(stub)["api"], (0, 8)):
            out["CNB_PLATFORM_DIR"] = str(self.platform)
            out.update(cnb)
        return out

    def detect(self, stub: str, env: Mapping[str, str] | None = None) -> DetectRun:
        with tempfile.TemporaryDirectory() as tmp:
            plan = Path(tmp) / "plan.toml"
            plan.touch()
            run_env = self._env(stub, env, {"CNB_BUILD_PLAN_PATH": str(plan)})
            start = time.perf_counter()
            proc = subprocess.run([str(STUBS / stub / "bin" / "detect"), str(self.platform), str(plan)],
                                  cwd=self.app, env=run_env, capture_output=True, text=True, timeout=60)
            seconds = time.perf_counter() - start
            parsed = tomllib.loads(plan.read_text()) if proc.returncode == 0 else {}
        return DetectRun(proc.returncode, proc.stdout, proc.stderr, seconds, parsed)

    def build(self, stub: str, entries: list[dict[str, Any]] | str = (), env: Mapping[str, str] | None = None,
              timeout: float = 120) -> BuildRun:
        """entries: the buildpack plan ([[entries]] name, metadata), or its TOML text."""
        layers = self.layers(stub)
        layers.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            plan = Path(tmp) / "plan.toml"
            plan.write_text(entries if isinstance(entries, str)
                            else tomli_w.dumps({"entries": list(entries)}) if entries else "")
            run_env = self._env(stub, env, {"CNB_BP_PLAN_PATH": str(plan), "CNB_LAYERS_DIR": str(layers)})
            start = time.perf_counter()
            proc = subprocess.run([str(STUBS / stub / "bin" / "build"), str(layers), str(self.platform), str(plan)],
                                  cwd=self.app, env=run_env, capture_output=True, text=True, timeout=timeout)
            seconds = time.perf_counter() - start
        return BuildRun(proc.returncode, proc.stdout, proc.stderr, seconds, layers)

    def with_layers_env(self, run: BuildRun) -> None:
        """Apply a finished build's build layers to the env of later runs, as the lifecycle does
        (bin/ on PATH, env/ and env.build/ files; enough of buildpacks/spec buildpack.md#environment
        for these tests)."""
        for toml in sorted(run.layers.glob("*.toml")):
            data = tomllib.loads(toml.read_text())
            if not data.get("types", {}).get("build"):
                continue
            layer = run.layers / toml.stem
            if (layer / "bin").is_dir():
                self.build_env["PATH"] = f"{layer / 'bin'}:{self.build_env.get('PATH', os.environ['PATH'])}"
            for scope in ("env", "env.build"):
                _apply_env_dir(self.build_env, layer / scope)


def launch_env(runs: list[BuildRun], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The launch env of built layers (buildpacks/spec buildpack.md#launch): per buildpack in group order, first
    bin/ of every launch layer on PATH, then each layer's env/ and env.launch/ files."""
    env = dict(base if base is not None else {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")})
    for run in runs:
        layers = [run.layers / p.stem for p in sorted(run.layers.glob("*.toml"))
                  if tomllib.loads(p.read_text()).get("types", {}).get("launch")]
        for layer in sorted(layers):
            if (layer / "bin").is_dir():
                env["PATH"] = f"{layer / 'bin'}:{env['PATH']}"
        for layer in sorted(layers):
            for scope in ("env", "env.launch"):
                _apply_env_dir(env, layer / scope)
    return env


def _apply_env_dir(env: dict[str, str], directory: Path) -> None:
    """buildpacks/spec buildpack.md#environment-variable-modification-rules (API >= 0.5: no suffix = override)."""
    if not directory.is_dir():
        return
    for f in sorted(p for p in directory.iterdir() if p.is_file()):
        name, _, action = f.name.partition(".")
        value, cur = f.read_text(), env.get(name, "")
        delim_file = directory / f"{name}.delim"
        delim = delim_file.read_text() if delim_file.exists() else ""
        if action == "prepend":
            env[name] = value + (delim + cur if cur else "")
        elif action == "append":
            env[name] = (cur + delim if cur else "") + value
        elif action in ("", "override") or (action == "default" and not cur):
            env[name] = value


def entry(name: str, **metadata: Any) -> dict[str, Any]:
    """A buildpack plan entry; metadata keys with "_" are written with "-" (version_source)."""
    return {"name": name, "metadata": {k.replace("_", "-"): v for k, v in metadata.items()}}


def write_wheel(directory: Path, name: str = "demo_pkg", version: str = "1.0",
                module_text: str = "GREETING = 'hello from demo_pkg'\n\n\ndef main():\n    print(GREETING)\n") -> Path:
    """A pure-Python wheel written by hand (no build backend, no network), with a console script."""
    dist = f"{name}-{version}.dist-info"

    def digest(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    files = {
        f"{name}/__init__.py": module_text.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: cnbsim-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": f"[console_scripts]\n{name.replace('_', '-')} = {name}:main\n".encode(),
    }
    record = "".join(f"{n},{digest(d)},{len(d)}\n" for n, d in files.items()) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
    return wheel


@dataclass
class Wheelhouse:
    path: Path
    wheels: list[Path] = field(default_factory=list)
