"""A plain `pip install` of the wheel carries the job-template buildpack, the stubs and the default builder."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
                         capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        pytest.skip(f"cannot build the wheel here (the build backend comes from the package registry): "
                    f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
    return next(out.glob("cnbsim-*.whl"))


def test_wheel_holds_the_buildpack_stubs_and_builders_with_their_run_bits(wheel):
    with zipfile.ZipFile(wheel) as z:
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
    for exe in ("cnbsim/_buildpack/bin/detect", "cnbsim/_buildpack/bin/build",
                "cnbsim/stubs/paketo/cpython/bin/detect", "cnbsim/stubs/paketo/pip-install/bin/build"):
        assert modes[exe] & 0o111, exe
    assert "cnbsim/builders/planqk/builder.toml" in modes
    assert "cnbsim/_buildpack/runtime/python/app/__main__.py" in modes


def test_installed_wheel_builds_and_runs_a_planqk_service(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    res = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True,
                         timeout=300)
    if res.returncode != 0:
        pytest.skip(f"cannot install the wheel's dependencies here: {res.stderr.strip()[-200:]}")
    app = REPO / "fixtures" / "apps" / "planqk-pip"
    build = subprocess.run([str(venv / "bin" / "cnbsim"), "build", str(app), "-o", str(tmp_path / "out"),
                            "--cache-dir", str(tmp_path / "cache")], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
    assert build.returncode == 0, build.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", "import cnbsim; print(cnbsim.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path).stdout
    assert where.startswith(str(venv))                    # the installed copy, not this checkout
    run = subprocess.run([str(venv / "bin" / "cnbsim"), "run", str(tmp_path / "out"),   # in the sandbox, if built so
                          "--data", str(app / "input" / "data.json"), "--params", str(app / "input" / "params.json"),
                          "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"metadata": None, "result": {"sum": 42}}
