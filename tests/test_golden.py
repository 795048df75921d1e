"""A golden test per fixture app: its build report (or expected failure) and its run.

Regenerate every golden file after an intended change with `make golden`
(`pytest tests/test_golden.py --cnb-update-golden`), then review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnbsim.builder import BUILDERS_DIR
from cnbsim.errors import CnbsimError

APPS = Path(__file__).resolve().parent.parent / "fixtures" / "apps"

# golden name -> (app, how it is built); by default the embedded PlanQK builder.
CASES: dict[str, tuple[str, dict]] = {app.name: (app.name, {}) for app in sorted(APPS.iterdir()) if app.is_dir()}
CASES.update({
    # the Paketo groups alone (paketo-buildpacks/python), as `pack build --buildpack paketo-buildpacks/python`
    "plain-python@paketo-python": ("plain-python", {"buildpacks": ["paketo-buildpacks/python"]}),
    # the job-template README's builder: paketo-buildpacks/python + job-template (it has a poetry group)
    "planqk-poetry@python-job-template": (
        "planqk-poetry", {"builder": BUILDERS_DIR / "paketo-python-job-template" / "builder.toml"}),
    "planqk-stdlib@python-job-template": (
        "planqk-stdlib", {"builder": BUILDERS_DIR / "paketo-python-job-template" / "builder.toml"}),
})


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_build_matches_golden(name, cnb_build, cnb_run, assert_matches_golden):
    app_name, how = CASES[name]
    app = APPS / app_name
    try:
        result = cnb_build(app, **how)
    except CnbsimError as failure:
        assert_matches_golden(failure, name)
        return
    assert_matches_golden(result, name)
    expected_file = app / "expected-output.json"
    if not expected_file.exists():
        return
    expected = json.loads(expected_file.read_text())
    given = {name: json.loads((app / "input" / f"{name}.json").read_text())  # as --data/--params mount them
             for name in ("data", "params") if (app / "input" / f"{name}.json").is_file()}
    run = cnb_run(result, env=expected.get("env", {}), **given)
    assert (run.exit_code, run.found, run.result) == (expected["exit_code"], expected["found"], expected["result"]), \
        f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    for text in expected.get("stdout_contains", []):
        assert text in run.stdout
    for text in expected.get("stderr_contains", []):
        assert text in run.stderr
