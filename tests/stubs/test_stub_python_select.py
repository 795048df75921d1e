"""The cpython stub exposes an installed interpreter of the selected CPython version (from the
interpreters cnbsim found on the host, CNBSIM_PYTHONS), and real-mode environments hold what
Paketo's CPython and pip buildpacks give an app: setuptools (pkg_resources) on 3.8-3.11, and the
pip the log names."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest
from stubrun import BASE_PYTHON, Lifecycle, Wheelhouse, entry

from cnbsim.api import installed_pythons

CPYTHON = [entry("cpython", build=True), entry("cpython", launch=True)]


def asking(version: str) -> list:
    """The plan when BP_CPYTHON_VERSION asks for VERSION (cpython's detect requires it)."""
    return [entry("cpython", version=version, version_source="BP_CPYTHON_VERSION"), *CPYTHON]
needs_virtualenv = pytest.mark.skipif(importlib.util.find_spec("virtualenv") is None,
                                      reason="real mode needs virtualenv importable by CNBSIM_PYTHON")


def xy_of(python: str) -> str:
    return re.fullmatch(r"python(3\.[0-9]+)", Path(python).name).group(1)  # type: ignore[union-attr]


def other_python(*, below: int = 13) -> str:
    """An installed interpreter of another minor version than the host's that cpython 1.11.0's
    dependency table has (3.8-3.12); skip when there is none."""
    host = xy_of(BASE_PYTHON) if re.fullmatch(r"python3\.[0-9]+", Path(BASE_PYTHON).name) else ""
    for python in installed_pythons():
        xy = xy_of(python)
        if xy != host and 8 <= int(xy.split(".")[1]) < below:
            return python
    pytest.skip("no second Python (3.8+) is installed on this machine")


def test_installed_pythons_are_base_interpreters_named_by_their_version() -> None:
    for python in installed_pythons():
        assert re.fullmatch(r"python3\.[0-9]+", Path(python).name) and os.access(python, os.X_OK)
        assert not (Path(python).parent.parent / "pyvenv.cfg").exists()


def test_cpython_exposes_the_installed_interpreter_of_the_requested_version(lc: Lifecycle) -> None:
    python = other_python()
    xy = xy_of(python)
    run = lc.build("cpython", asking(f"{xy}.*"), {"CNBSIM_PYTHONS": python})
    assert run.code == 0, run.stderr
    bin_dir = run.layers / "cpython" / "bin"
    assert os.readlink(bin_dir / f"python{xy}") == python
    assert os.readlink(bin_dir / "python3") == f"python{xy}"
    out = subprocess.run([str(bin_dir / "python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == xy
    assert "Warning" not in run.stdout
    assert run.metadata("cpython")["cnbsim"]["host-python"] == python


def test_cpython_warns_and_uses_the_hosts_python_when_the_version_is_not_installed(lc: Lifecycle) -> None:
    run = lc.build("cpython", asking("3.8.*"), {"CNBSIM_PYTHONS": ""})
    host_xy = xy_of(BASE_PYTHON)
    if host_xy == "3.8":
        pytest.skip("the host's Python is 3.8")
    assert run.code == 0, run.stderr
    assert ("Warning: CPython 3.8.18 was selected; no Python 3.8 is installed on this machine (pyenv, uv, "
            "/usr/bin): the build and the app run on Python") in run.stdout
    assert os.readlink(run.layers / "cpython" / "bin" / f"python{host_xy}") == BASE_PYTHON


def test_a_changed_interpreter_rebuilds_the_cpython_layer(lc: Lifecycle) -> None:
    python = other_python()
    first = lc.build("cpython", asking(f"{xy_of(python)}.*"), {"CNBSIM_PYTHONS": python})
    assert first.code == 0
    again = lc.build("cpython", asking(f"{xy_of(python)}.*"), {"CNBSIM_PYTHONS": python})
    assert "Reusing cached layer" in again.stdout
    other = lc.build("cpython", CPYTHON, {"CNBSIM_PYTHONS": ""})
    assert "Reusing cached layer" not in other.stdout and "Installing CPython 3.10.13" in other.stdout


def _real_pip_group(lc: Lifecycle, python: str, wheelhouse: Wheelhouse) -> list:
    env = {"CNBSIM_PYTHONS": python, "CNBSIM_INSTALLER": "real", "CNBSIM_WHEELHOUSE": str(wheelhouse.path)}
    runs = []
    for stub, entries in [("cpython", asking(f"{xy_of(python)}.*")), ("pip", [entry("pip", build=True)]),
                          ("pip-install", [entry("site-packages", launch=True)])]:
        run = lc.build(stub, entries, env)
        assert run.code == 0, run.stdout + run.stderr
        lc.with_layers_env(run)
        runs.append(run)
    return runs


@needs_virtualenv
def test_real_environments_have_setuptools_and_the_pip_the_log_names(lc: Lifecycle, wheelhouse: Wheelhouse) -> None:
    python = other_python(below=12)  # Paketo's CPython 3.8-3.11 ships setuptools
    lc.write("requirements.txt", "demo-pkg==1.0\n")
    _, pip, install = _real_pip_group(lc, python, wheelhouse)
    # the wheelhouse has no pip 23.3.1 wheel: the log says which pip the environment gets instead
    assert "Warning: no pip-23.3.1 wheel in" in pip.stdout
    venv = install.layers / "packages"
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import sys, setuptools, pkg_resources, pip, demo_pkg; "
                          "print('%d.%d' % sys.version_info[:2], pip.__version__, setuptools.__version__)"],
                         capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0, out.stderr
    xy, pip_version, setuptools_version = out.stdout.split()
    assert xy == xy_of(python)
    assert (f"environment on Python {xy} ({python}): pip {pip_version}, setuptools {setuptools_version}"
            in install.stdout)
    assert f"lib/python{xy}/site-packages" in install.env_files("packages")["env/PYTHONPATH.prepend"]


@needs_virtualenv
def test_real_environments_get_the_pip_buildpacks_version_from_the_wheelhouse(
        lc: Lifecycle, wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    """A wheel named pip-23.3.1 in the wheelhouse is the pip the environment gets (built here from
    the interpreter's bundled pip, renamed, so that the test stays offline)."""
    python = other_python(below=12)
    bundled = sorted((Path(python).parent.parent / "lib" / f"python{xy_of(python)}" / "ensurepip" / "_bundled")
                     .glob("pip-*.whl"))
    if not bundled:
        pytest.skip(f"{python} has no bundled pip wheel")
    # rebuild the bundled wheel under the version the pip buildpack selects
    import zipfile
    original = bundled[-1]
    old = original.name.split("-")[1]
    target = wheelhouse.path / "pip-23.3.1-py3-none-any.whl"
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            name = item.filename.replace(f"pip-{old}.dist-info", "pip-23.3.1.dist-info")
            if name.endswith(".dist-info/METADATA"):
                data = data.replace(f"Version: {old}".encode(), b"Version: 23.3.1")
            if name.endswith(".dist-info/RECORD"):
                data = data.replace(f"pip-{old}.dist-info".encode(), b"pip-23.3.1.dist-info")
            dst.writestr(name, data)
    lc.write("requirements.txt", "demo-pkg==1.0\n")
    _, pip, install = _real_pip_group(lc, python, wheelhouse)
    assert "the install buildpacks' environments get pip 23.3.1 (pip-23.3.1-py3-none-any.whl)" in pip.stdout
    assert ": pip 23.3.1, setuptools" in install.stdout
    assert list((install.layers / "packages" / "lib" / f"python{xy_of(python)}" / "site-packages")
                .glob("pip-23.3.1.dist-info"))


@pytest.mark.registry  # skipped unless --cnb-registry (cnbsim's pytest plugin)
def test_real_pip_group_gets_the_pip_buildpacks_version_from_the_index(lc: Lifecycle) -> None:
    python = other_python(below=12)
    env = {"CNBSIM_PYTHONS": python, "CNBSIM_INSTALLER": "real"}
    lc.write("requirements.txt", "six==1.16.0\n")
    for stub, entries in [("cpython", asking(f"{xy_of(python)}.*")), ("pip", [entry("pip", build=True)]),
                          ("pip-install", [entry("site-packages", launch=True)])]:
        run = lc.build(stub, entries, env, timeout=600)
        assert run.code == 0, run.stdout + run.stderr
        lc.with_layers_env(run)
    assert ": pip 23.3.1, setuptools" in run.stdout
