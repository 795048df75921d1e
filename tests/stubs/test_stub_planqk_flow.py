"""The Paketo stubs of PlanQK's builder played in sequence, as the lifecycle would for a
PlanQK pip app (PlanQK/planqk-buildpacks planqk-base/builder.toml, samples/): every stub of every order group detects, the
pip group's stubs build, and the result runs `python` at launch; all well under half a
second (the stubs' own share of a cnbsim build)."""

from __future__ import annotations

import subprocess
import sys

from stubrun import BUILDERS, Lifecycle, descriptor, entry, launch_env, tomllib

STUB_DIRS = {descriptor(d)["buildpack"]["id"]: d for d in (
    "ca-certificates", "watchexec", "cpython", "pip", "pipenv", "pipenv-install", "pip-install", "miniconda",
    "conda-env-update", "python-start", "environment-variables", "image-labels")}

PIP_GROUP_BUILD = [
    ("ca-certificates", [entry("ca-certificates-helper")]),
    ("cpython", [entry("cpython", build=True, launch=False, version="", version_source=""),
                 entry("cpython", build=True), entry("cpython", launch=True)]),
    ("pip", [entry("pip", build=True)]),
    ("pip-install", [entry("site-packages", launch=True)]),
    ("python-start", []),
]


def planqk_app(lc: Lifecycle) -> None:
    lc.write("planqk.json", '{"name": "demo"}\n')
    lc.write("requirements.txt", "loguru\n")
    lc.write("src/__init__.py", "")
    lc.write("src/program.py", "def run(data=None, params=None):\n    return {'ok': True}\n")


def detect_all_groups(lc: Lifecycle) -> tuple[dict[str, int], float]:
    """Every Paketo element of every group of PlanQK's builder.toml, each id once (the
    lifecycle memoises detect results across groups): exit codes and seconds spent."""
    builder = tomllib.loads((BUILDERS / "planqk" / "builder.toml").read_text())
    codes: dict[str, int] = {}
    seconds = 0.0
    for group in builder["order"]:
        for element in group["group"]:
            stub = STUB_DIRS.get(element["id"])
            if stub and stub not in codes:
                assert descriptor(stub)["buildpack"]["version"] == element["version"]
                run = lc.detect(stub)
                codes[stub], seconds = run.code, seconds + run.seconds
    return codes, seconds


def test_planqk_pip_app_detects_in_the_right_groups_and_builds_with_the_stubs(lc: Lifecycle) -> None:
    # how long it takes is measured by bench/ (make bench), never asserted by a test
    planqk_app(lc)
    codes, _ = detect_all_groups(lc)
    for stub, entries in PIP_GROUP_BUILD:
        run = lc.build(stub, entries)
        assert run.code == 0, run.stderr
        lc.with_layers_env(run)
    assert codes == {"ca-certificates": 0, "watchexec": 0, "cpython": 0, "pip": 0, "pipenv": 0,
                     "pipenv-install": 100, "python-start": 0, "pip-install": 0,
                     "environment-variables": 100, "image-labels": 100, "miniconda": 0, "conda-env-update": 100}


def test_the_built_pip_app_runs_the_host_python_at_launch(lc: Lifecycle) -> None:
    planqk_app(lc)
    runs = []
    for stub, entries in PIP_GROUP_BUILD:
        run = lc.build(stub, entries)
        lc.with_layers_env(run)
        runs.append(run)
    env = launch_env(runs)
    cpython = runs[1].layers / "cpython"
    site = runs[3].layers / "packages" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    assert env["PYTHONPATH"] == f"{site}:{cpython}"
    out = subprocess.run(["python", "-c", "import sys, src.program; print(sys.version_info[:2], src.program.run())"],
                         cwd=lc.app, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{tuple(sys.version_info[:2])} {{'ok': True}}\n"
    # stub mode: nothing of requirements.txt is importable
    assert subprocess.run(["python", "-c", "import loguru"], cwd=lc.app, env=env,
                          capture_output=True, timeout=60).returncode != 0
