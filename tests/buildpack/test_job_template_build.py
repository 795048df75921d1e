"""bin/build of the job-template buildpack, run as the lifecycle runs it: the project checks, the
launch layer and its metadata, env.launch/, launch.toml, reuse, the GitLab token, and the `web`
process of the result running each fixture app."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import stat
import sys
from pathlib import Path

import pytest

from cnbsim.tomlio import tomllib
from tests.buildpack.conftest import run_build

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "buildpack" / "runtime"
APPS = REPO / "fixtures" / "apps"
RUNTIME_VERSION = re.search(r'__version__ = "(.+)"', (RUNTIME / "python/planqk_job_template/__init__.py").read_text())[1]
# what bin/build needs besides bash when there is no python3 (a build image before cpython)
SHELL_TOOLS = ("bash", "sed", "head", "find", "sort", "xargs", "sha256sum", "cut", "cp", "rm", "mkdir", "chmod", "grep",
               "cat")


def layer_toml(layers: Path) -> dict:
    return tomllib.loads((layers / "job-template.toml").read_text())


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def built(fixture_app, build, layers):
    """planqk-pip built once."""
    app = fixture_app("planqk-pip")
    result = build(app)
    assert result.returncode == 0, result.output
    return app, result


# ---------------------------------------------------------------------------------- the layer

def test_the_layer_is_a_launch_layer_with_the_runtimes_version_and_checksum(built, layers):
    toml = layer_toml(layers)
    assert toml["types"] == {"launch": True}
    metadata = toml["metadata"]
    assert metadata["runtime-version"] == RUNTIME_VERSION
    assert re.fullmatch(r"[0-9a-f]{64}", metadata["runtime-sha256"])
    assert re.fullmatch(r"[0-9a-f]{64}", metadata["build-sha256"])
    assert metadata["entry-point"] == "src.program:run"


def test_the_layer_holds_the_vendored_runtime_and_nothing_else(built, layers):
    layer = layers / "job-template"
    runtime = {k: v for k, v in files_under(RUNTIME).items() if "__pycache__" not in k}
    in_layer = {k: v for k, v in files_under(layer).items() if not k.startswith("env.launch/")}
    assert in_layer == runtime
    assert not list(layer.rglob(".git")) and not list(layer.rglob("__pycache__"))


def test_the_launch_env_sets_a_default_entry_point_and_appends_the_runtime_to_pythonpath(built, layers):
    layer = layers / "job-template"
    app, _ = built
    assert files_under(layer / "env.launch") == {
        "ENTRY_POINT.default": b"src.program:run",
        "PYTHONPATH.append": f"{layer}/python".encode(),
        "PYTHONPATH.delim": b":",
        "PLANQK_APP_DIR.default": str(app).encode(),
    }


def test_launch_toml_makes_web_the_default_process_with_an_array_command(built, layers):
    launch = tomllib.loads((layers / "launch.toml").read_text())
    layer = layers / "job-template"
    # `python -m app` as before, started in the runtime's dir so that a user's app.py cannot shadow it
    assert launch["processes"] == [{"type": "web", "command": ["python", "-m", "app"],
                                    "working-dir": f"{layer}/python", "default": True}]
    assert launch["labels"] == [{"key": "de.planqk.job-template.version", "value": RUNTIME_VERSION}]


def test_an_sbom_of_the_layer_is_written_in_the_declared_format(built, layers):
    declared = tomllib.loads((REPO / "buildpack/buildpack.toml").read_text())["buildpack"]["sbom-formats"]
    assert declared == ["application/vnd.cyclonedx+json"]
    sbom = json.loads((layers / "job-template.sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["components"][0]["version"] == RUNTIME_VERSION


def test_the_build_log_says_what_it_did(built, layers):
    _, result = built
    assert result.stdout.startswith("PlanQK Job Template Buildpack ")
    for line in ("    planqk.json: runtime PYTHON_TEMPLATE", "    src/program.py defines run",
                 f"    Creating layer {layers}/job-template", '    ENTRY_POINT -> "src.program:run"',
                 f"    web (default): python -m app (in {layers}/job-template/python)"):
        assert line in result.stdout
    assert result.stderr == ""


# ---------------------------------------------------------------------------------- entry point

def test_bp_planqk_entry_point_changes_the_default_and_is_checked(project, build, layers):
    app = project("", {"user_code/src/program.py": "def run(data=None, params=None):\n    return 1\n"})
    result = build(app, env={"BP_PLANQK_ENTRY_POINT": "user_code/src/program.py:run"})
    assert result.returncode == 0, result.output
    assert "user_code/src/program.py defines run" in result.stdout
    assert (layers / "job-template/env.launch/ENTRY_POINT.default").read_text() == "user_code/src/program.py:run"
    assert layer_toml(layers)["metadata"]["entry-point"] == "user_code/src/program.py:run"


@pytest.mark.parametrize("value, message", [
    ("src.program:run; rm -rf /", "BP_PLANQK_ENTRY_POINT: 'src.program:run; rm -rf /' is not an entry point"),
    ("src.program:run:x", "BP_PLANQK_ENTRY_POINT: cannot parse entry point 'src.program:run:x'"),
    ("src.other:run", "src/other.py: not found, but the entry point 'src.other:run' needs it"),
])
def test_a_bad_bp_planqk_entry_point_fails_the_build(fixture_app, build, layers, value, message):
    result = build(fixture_app("planqk-pip"), env={"BP_PLANQK_ENTRY_POINT": value})
    assert result.returncode == 1
    assert message in result.stderr


# ---------------------------------------------------------------------------------- project checks

# The decoder's own words (and where it stops) differ between CPython versions: the file, a location
# and the fix are the buildpack's.
@pytest.mark.parametrize("name, message", [
    ("planqk-missing-program", re.escape(
        "ERROR: src/program.py: not found, but the entry point 'src.program:run' needs it "
        "(create src/program.py with `def run(data=None, params=None): ...`")),
    ("planqk-no-run", re.escape(
        "ERROR: src/program.py: does not define a top-level function 'run' (functions found: execute, "
        "helper); PlanQK calls run(data=..., params=...): add `def run(data=None, params=None): ...`")),
    ("planqk-docker-runtime", re.escape(
        "ERROR: planqk.json: field 'runtime' is 'DOCKER', but this buildpack builds PYTHON_TEMPLATE services")),
    ("planqk-invalid-json", r"ERROR: planqk\.json: is not valid JSON: [^\n]+ at line \d+ column \d+ \(fix the JSON"),
])
def test_a_project_that_cannot_run_fails_the_build_with_what_to_fix(fixture_app, build, layers, name, message):
    result = build(fixture_app(name))
    assert result.returncode == 1
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.output
    assert not (layers / "job-template").exists() and not (layers / "launch.toml").exists()


@pytest.mark.parametrize("program", [
    "from .impl import run\n",
    "import sys\nif sys.version_info >= (3,):\n    def run(data=None, params=None):\n        return 1\n",
    "try:\n    from fast import run\nexcept ImportError:\n    def run(data, params):\n        return 1\n",
    "run = lambda data=None, params=None: 1\n",
    "async def helper():\n    pass\n\ndef run(data: dict = None, *, params: dict = None) -> dict:\n    return {}\n",
])
def test_run_defined_in_other_ways_passes_the_check(project, build, program):
    result = build(project(program))
    assert result.returncode == 0, result.output


def test_a_syntax_error_in_program_py_is_located(project, build):
    result = build(project("def run(data, params)\n    return 1\n"))
    assert result.returncode == 1
    assert re.search(r"ERROR: src/program.py: line 1: .*\(fix the syntax; checked with Python 3\.\d+", result.stderr)


def test_a_run_without_params_builds_with_a_warning(project, build):
    result = build(project("def run(data):\n    return data\n"))
    assert result.returncode == 0
    assert ("warning: src/program.py: run() does not accept the keyword argument(s) params, but PlanQK calls "
            "run(data=..., params=...)") in result.stdout


def test_a_typed_run_without_params_builds_without_a_warning(project, build):
    result = build(project("def run(data: dict) -> dict:\n    return data\n"))   # it gets only its own parameters
    assert result.returncode == 0
    assert "src/program.py defines run" in result.stdout and "warning" not in result.stdout


@pytest.mark.parametrize("name, message", [
    ("planqk-pip", "    src/program.py defines run (shell check: no Python on PATH)"),
    ("planqk-missing-program", "ERROR: src/program.py: not found, but the entry point 'src.program:run' needs it"),
    ("planqk-no-run", "ERROR: src/program.py: does not define a top-level function 'run'"),
])
def test_without_python_a_shell_check_does_the_same(fixture_app, build, tools, name, message):
    result = build(fixture_app(name), path=tools(*SHELL_TOOLS))
    assert message in result.output
    assert result.returncode == (0 if name == "planqk-pip" else 1), result.output


def test_the_layer_digests_are_the_same_with_and_without_python(fixture_app, build, layers, tools, tmp_path):
    """Python's check computes the runtime's and bin/build's digests; without Python the shell does:
    a build image with or without python3 must reuse the same layer."""
    app = fixture_app("planqk-pip")
    assert build(app).returncode == 0
    with_python = layer_toml(layers)["metadata"]
    other = tmp_path / "without-python" / "layers" / layers.name
    assert run_build(app, other, path=tools(*SHELL_TOOLS)).returncode == 0
    without = layer_toml(other)["metadata"]
    assert (with_python["runtime-sha256"], with_python["build-sha256"]) == \
        (without["runtime-sha256"], without["build-sha256"])
    bin_build = (REPO / "buildpack" / "bin" / "build").read_bytes()
    assert with_python["build-sha256"] == hashlib.sha256(bin_build).hexdigest()


def test_a_python3_that_cannot_run_the_check_falls_back_to_the_shell_check(fixture_app, build, fake_python3):
    path = fake_python3('echo "SyntaxError: future feature annotations is not defined" >&2\nexit 1\n')
    result = build(fixture_app("planqk-no-run"), path=f"{path}:/usr/bin:/bin")
    assert result.returncode == 1
    assert "python3 could not run the check: SyntaxError: future feature annotations is not defined" in result.stdout
    assert "ERROR: src/program.py: does not define a top-level function 'run'" in result.stderr


def test_the_checks_run_on_python_3_8(fixture_app, build, python38, tmp_path):
    (tmp_path / "py38").mkdir()
    (tmp_path / "py38" / "python3").symlink_to(python38)
    ok = build(fixture_app("planqk-pip"), path=f"{tmp_path / 'py38'}:{os.environ['PATH']}")
    assert ok.returncode == 0 and "src/program.py defines run" in ok.stdout, ok.output
    bad = build(fixture_app("planqk-no-run"), path=f"{tmp_path / 'py38'}:{os.environ['PATH']}")
    assert "(functions found: execute, helper)" in bad.stderr


def test_a_procfile_web_process_is_pointed_out(fixture_app, build):
    result = build(fixture_app("planqk-procfile"))
    assert result.returncode == 0
    assert "Note: the Procfile defines 'web'; this buildpack's 'web' process runs the job instead" in result.stdout


# ---------------------------------------------------------------------------------- reuse

def test_a_rebuild_reuses_the_layer(built, build, layers):
    app, _ = built
    marker = layers / "job-template" / "python" / "planqk_job_template" / "main.py"
    before = marker.stat().st_mtime_ns
    again = build(app)
    assert again.returncode == 0
    assert f"Reusing layer {layers}/job-template" in again.stdout
    assert marker.stat().st_mtime_ns == before
    assert layer_toml(layers)["types"] == {"launch": True}


def test_metadata_restored_from_the_previous_image_is_enough_to_reuse(built, build, layers):
    app, _ = built
    metadata = layer_toml(layers)["metadata"]
    for path in sorted((layers / "job-template").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (layers / "job-template").rmdir()
    (layers / "job-template.toml").write_text("[metadata]\n" + "".join(f'  {k} = "{v}"\n' for k, v in metadata.items()))
    again = build(app)
    assert "Reusing layer" in again.stdout
    assert layer_toml(layers) == {"types": {"launch": True}, "metadata": metadata}
    assert not (layers / "job-template").exists()          # the exporter reuses the image's layer


@pytest.mark.parametrize("change", ["runtime-sha256", "build-sha256", "entry-point"])
def test_a_changed_runtime_build_script_or_entry_point_recreates_the_layer(built, build, layers, change):
    app, _ = built
    toml = (layers / "job-template.toml").read_text()
    (layers / "job-template.toml").write_text(re.sub(rf'{change} = ".*"', f'{change} = "other"', toml))
    (layers / "job-template" / "stale").write_text("from the old layer")
    again = build(app)
    assert "Creating layer" in again.stdout
    assert not (layers / "job-template" / "stale").exists()
    assert layer_toml(layers)["metadata"][change] != "other"


# ---------------------------------------------------------------------------------- the token

def recording_python(root: Path, record: Path) -> Path:
    """A python3 that writes its argv and environment to `record`, then runs the real one."""
    root.mkdir(parents=True)
    script = root / "python3"
    script.write_text(f'#!/bin/sh\n{{ printf "%s\\n" "$0" "$@"; env; }} >> "{record}"\nexec "{sys.executable}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return root


def test_the_gitlab_token_reaches_no_file_no_log_and_no_child_process(fixture_app, build, detect, layers, tmp_path):
    token = "glpat-" + secrets.token_urlsafe(24)
    record = tmp_path / "python3-calls.txt"
    path = f"{recording_python(tmp_path / 'spy', record)}:{os.environ['PATH']}"
    app = fixture_app("planqk-pip")
    token_env = {"BP_GITLAB_TOKEN": token}
    detected = detect(app, env=token_env, platform_env=token_env, path=path)
    result = build(app, env=token_env, platform_env=token_env, path=path)
    assert detected.returncode == 0 and result.returncode == 0, result.output
    assert "BP_GITLAB_TOKEN is set (in the build environment and $CNB_PLATFORM_DIR/env) but not needed" in result.stdout
    assert token not in detected.output + result.output
    leaked = [name for name, content in files_under(layers.parent).items()
              if token.encode() in content and not name.startswith("platform/")]
    assert leaked == []
    calls = record.read_text()
    # detect reads a small planqk.json in bash: only bin/build's check runs Python ...
    assert calls.count("project_check.py") == 1 and "\nbuild\n" in calls
    assert token not in calls                                                     # ... got no token


def test_a_token_only_in_the_platform_dir_is_mentioned_but_not_shown(fixture_app, build):
    token = secrets.token_hex(16)
    result = build(fixture_app("planqk-pip"), platform_env={"BP_GITLAB_TOKEN": token}, env={"BP_GITLAB_TOKEN": ""})
    assert result.returncode == 0
    assert "BP_GITLAB_TOKEN is set (in $CNB_PLATFORM_DIR/env)" in result.stdout and token not in result.output


# ---------------------------------------------------------------------------------- the web process

EXPECTED = sorted(p.parent.name for p in APPS.glob("*/expected-output.json"))


@pytest.mark.parametrize("name", EXPECTED)
def test_the_web_process_runs_each_fixture_app_as_expected(fixture_app, build, launch_web, tmp_path, name):
    expected = json.loads((APPS / name / "expected-output.json").read_text())
    app = fixture_app(name)
    assert build(app).returncode == 0
    mount = tmp_path / "var-input"          # the app's input/*.json mounted where the runtime looks
    mount.mkdir()
    for file in sorted((app / "input").glob("*.json")):
        (mount / file.name).write_bytes(file.read_bytes())
    run = launch_web(app, env=expected.get("env", {}))
    assert run.returncode == expected["exit_code"], run.output
    assert run.block == (expected["found"], expected["result"])
    for text in expected.get("stdout_contains", []):
        assert text in run.stdout
    for text in expected.get("stderr_contains", []):
        assert text in run.stderr


def test_the_shadow_app_fixture_has_an_app_py_that_python_dash_m_app_would_run(fixture_app, build, launch_web):
    app = fixture_app("planqk-shadow-app")
    assert (app / "app.py").is_file()
    assert build(app).returncode == 0
    run = launch_web(app, env={"BASE64_ENCODED": "false", "DATA_FILE": "input/data.json",
                               "PARAMS_FILE": "input/params.json"})
    assert "local run of the user's app.py" not in run.stdout
    assert run.block == (True, {"parity": 1, "reversed": [1, 1, 0, 1]})


def test_entry_point_given_at_run_time_wins_over_the_build_default(fixture_app, build, launch_web):
    app = fixture_app("planqk-pip")
    assert build(app).returncode == 0
    (app / "src" / "other.py").write_text("def go(data, params):\n    return 'other entry point'\n")
    run = launch_web(app, env={"ENTRY_POINT": "src.other:go"})
    assert run.block == (True, "other entry point")


@pytest.mark.parametrize("container, expected", [({"PYTHONPATH": "/deps"}, "/deps:{layer}/python"),
                                                 ({}, "{layer}/python")])
def test_the_runtime_comes_after_the_users_pythonpath(fixture_app, build, launch_web, layers, container, expected):
    app = fixture_app("planqk-pip")
    assert build(app).returncode == 0
    (app / "src" / "show.py").write_text("import os\n\ndef run(data, params):\n    return os.environ['PYTHONPATH']\n")
    run = launch_web(app, env={**container, "ENTRY_POINT": "src.show:run"})
    assert run.block == (True, expected.format(layer=layers / "job-template"))
