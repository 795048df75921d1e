"""Real install mode (CNBSIM_INSTALLER=real): the package-manager stubs create a virtualenv
in their layer and pip-install into it, offline from a local wheelhouse (CNBSIM_WHEELHOUSE,
pip --no-index --find-links) or, for the `registry` test, from the package index."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stubrun import Lifecycle, Wheelhouse, entry, launch_env

pytestmark = pytest.mark.skipif(importlib.util.find_spec("virtualenv") is None,
                                reason="real mode needs virtualenv importable by CNBSIM_PYTHON")

XY = f"{sys.version_info[0]}.{sys.version_info[1]}"
SITE_PACKAGES = [entry("site-packages", launch=True)]


def real(wheelhouse: Wheelhouse | None) -> dict[str, str]:
    env = {"CNBSIM_INSTALLER": "real"}
    if wheelhouse is not None:
        env["CNBSIM_WHEELHOUSE"] = str(wheelhouse.path)
    return env


def python_in(layer: Path, *code: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(layer / "bin" / "python"), "-c", ";".join(code)], capture_output=True,
                          text=True, timeout=60, env={"PATH": os.environ["PATH"]})


def test_pip_install_installs_from_the_wheelhouse_into_a_virtualenv(lc: Lifecycle, wheelhouse: Wheelhouse) -> None:
    lc.write("requirements.txt", "demo-pkg==1.0\n")
    run = lc.build("pip-install", SITE_PACKAGES, real(wheelhouse))
    packages = run.layers / "packages"
    assert run.code == 0, run.stdout + run.stderr
    assert f"--no-index --find-links {wheelhouse.path}" in run.stdout
    assert "      Successfully installed demo-pkg-1.0\n" in run.stdout
    assert (packages / "pyvenv.cfg").exists()
    assert python_in(packages, "import demo_pkg", "print(demo_pkg.GREETING)").stdout == "hello from demo_pkg\n"
    assert subprocess.run([str(packages / "bin" / "demo-pkg")], capture_output=True, text=True).stdout \
        == "hello from demo_pkg\n"
    assert run.metadata("packages")["cnbsim"]["installer"] == "real"
    assert run.env_files("packages")["env/PYTHONPATH.prepend"] == f"{packages}/lib/python{XY}/site-packages"


def test_pip_install_real_reuses_the_environment_until_the_requirements_change(
        lc: Lifecycle, wheelhouse: Wheelhouse) -> None:
    lc.write("requirements.txt", "demo-pkg==1.0\n")
    lc.build("pip-install", SITE_PACKAGES, real(wheelhouse))
    again = lc.build("pip-install", SITE_PACKAGES, real(wheelhouse))
    assert "the requirements are unchanged" in again.stdout and "Successfully installed" not in again.stdout
    lc.write("requirements.txt", "demo-pkg==1.0\nother-pkg==2.0\n")
    changed = lc.build("pip-install", SITE_PACKAGES, real(wheelhouse))
    assert "Successfully installed" in changed.stdout
    assert python_in(changed.layers / "packages", "import other_pkg", "print(other_pkg.VALUE)").stdout == "2\n"
    # a stub build after a real one is a different input: it does not keep the real packages
    stub = lc.build("pip-install", SITE_PACKAGES)
    assert not (stub.layers / "packages" / "pyvenv.cfg").exists()


def test_pip_install_real_fails_with_pips_message_when_a_package_is_missing(
        lc: Lifecycle, wheelhouse: Wheelhouse) -> None:
    lc.write("requirements.txt", "not-in-the-wheelhouse==9\n")
    run = lc.build("pip-install", SITE_PACKAGES, real(wheelhouse))
    assert run.code == 1 and "pip install failed" in run.stderr
    assert "No matching distribution found for not-in-the-wheelhouse==9" in run.stdout


def test_the_real_pip_app_imports_its_packages_at_launch(lc: Lifecycle, wheelhouse: Wheelhouse) -> None:
    lc.write("requirements.txt", "demo-pkg==1.0\n")
    runs = []
    for stub, entries in [("cpython", [entry("cpython", build=True), entry("cpython", launch=True)]),
                          ("pip", [entry("pip", build=True)]), ("pip-install", SITE_PACKAGES), ("python-start", [])]:
        run = lc.build(stub, entries, real(wheelhouse))
        assert run.code == 0, run.stdout + run.stderr
        lc.with_layers_env(run)
        runs.append(run)
    env = launch_env(runs)
    out = subprocess.run(["python", "-c", "import demo_pkg; print(demo_pkg.GREETING)"], cwd=lc.app, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout == "hello from demo_pkg\n", out.stderr


def test_poetry_install_real_installs_pyprojects_dependencies(lc: Lifecycle, wheelhouse: Wheelhouse) -> None:
    lc.write("pyproject.toml", '[tool.poetry]\nname = "app"\n\n[tool.poetry.dependencies]\npython = "^3.8"\n'
                               'demo-pkg = "^1.0"\n')
    run = lc.build("poetry-install", [entry("poetry-venv", launch=True)], real(wheelhouse))
    assert run.code == 0, run.stdout + run.stderr
    venv = Path(run.env_files("poetry-venv")["env/PATH.prepend"]).parent
    assert python_in(venv, "import demo_pkg").returncode == 0


def test_pipenv_install_real_installs_the_lock(lc: Lifecycle, wheelhouse: Wheelhouse) -> None:
    lc.write("Pipfile", '[packages]\ndemo-pkg = "*"\n')
    lc.write("Pipfile.lock", '{"_meta": {"requires": {}}, "default": {"other-pkg": {"version": "==2.0"}}}')
    run = lc.build("pipenv-install", [entry("site-packages", launch=True)], real(wheelhouse))
    assert run.code == 0, run.stdout + run.stderr
    venv = Path(run.env_files("packages")["env/PATH.prepend"]).parent
    assert python_in(venv, "import other_pkg").returncode == 0
    assert python_in(venv, "import demo_pkg").returncode != 0


def test_conda_env_update_real_installs_pip_entries_and_python_conda_packages(
        lc: Lifecycle, wheelhouse: Wheelhouse) -> None:
    lc.write("environment.yml", "dependencies:\n  - python=3.11\n  - other-pkg=2.0\n  - libgcc-ng\n"
                                "  - pip:\n    - demo-pkg==1.0\n")
    run = lc.build("conda-env-update", [entry("conda-environment", launch=True)], real(wheelhouse))
    env = run.layers / "conda-env"
    assert run.code == 0, run.stdout + run.stderr
    assert "Warning: libgcc-ng is not installable with pip; skipped" in run.stdout
    assert python_in(env, "import demo_pkg, other_pkg").returncode == 0


@pytest.mark.registry  # skipped unless --cnb-registry (cnbsim's pytest plugin)
def test_pip_install_real_installs_from_the_registry(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "six==1.16.0\n")
    run = lc.build("pip-install", SITE_PACKAGES, real(None), timeout=600)
    assert run.code == 0, run.stdout + run.stderr
    assert python_in(run.layers / "packages", "import six").returncode == 0
