"""The buildpack author's kit, tested as an author uses it: `author/author_suite.py` (their tests of
`author/runtime-buildpack`) run by pytest's own pytester, outside this repository's config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

AUTHOR = Path(__file__).parent / "author"


@pytest.fixture
def author(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(AUTHOR / "runtime-buildpack", pytester.path / "runtime-buildpack", symlinks=True)
    shutil.copy(AUTHOR / "server.py", pytester.path / "server.py")
    shutil.copy(AUTHOR / "author_suite.py", pytester.path / "test_runtime.py")
    pytester.makeini("[pytest]\ncnb_golden_dir = golden\n")
    return pytester


def run(author: pytest.Pytester, tests: str, *args: str) -> pytest.RunResult:
    return author.runpytest_inprocess("-p", "no:cacheprovider", "-k", tests, *args)


def test_failed_build_and_detect_failure_say_why(author):
    run(author, "failed_build_shows or detect_failure").assert_outcomes(passed=2)


def test_golden_of_a_failed_build_holds_the_buildpack_and_its_output(author):
    run(author, "failed_build_golden", "--cnb-update-golden").assert_outcomes(passed=1)
    failure = json.loads((author.path / "golden" / "failed-build.json").read_text())["failure"]
    assert failure["buildpack"] == "author/runtime"
    assert failure["exit_code"] == 51
    assert failure["output_tail"][-1] == "error: download of runtime 1.0 failed (token none)"
    run(author, "failed_build_golden").assert_outcomes(passed=1)


def test_rebuild_repeats_the_build_with_its_cache_and_output(author):
    run(author, "rebuild").assert_outcomes(passed=3)


def test_golden_ignore_patterns_leave_out_host_dependent_fields(author, monkeypatch):
    run(author, "golden_ignoring", "--cnb-update-golden").assert_outcomes(passed=1)
    golden = json.loads((author.path / "golden" / "runtime.json").read_text())
    runtime = golden["buildpacks"][0]["layers"]
    assert {layer["digest"] for layer in runtime} == {"<ignored>"}
    assert golden["launch_env"]["web"]["RUNTIME_VERSION"] == "<ignored>"
    assert {p["type"]: p["command"] for p in golden["processes"]}["web"] == ["python3", "server.py"]  # kept
    monkeypatch.setenv("RUNTIME_VERSION", "2.5")
    run(author, "golden_ignoring").assert_outcomes(passed=1)                 # another version still matches
    (author.path / "runtime-buildpack" / "bin" / "build").write_text(
        (author.path / "runtime-buildpack" / "bin" / "build").read_text().replace("server.py", "serve.py"))
    failed = run(author, "golden_ignoring")                                  # what is not ignored is checked
    failed.assert_outcomes(failed=1)
    assert '.command[1]: "server.py" -> "serve.py"' in failed.stdout.str()


def test_a_mistyped_ignore_pattern_is_an_error_naming_it(author):
    run(author, "golden_ignoring", "--cnb-update-golden").assert_outcomes(passed=1)
    failed = run(author, "mistyped")
    failed.assert_outcomes(failed=1)
    assert "ignore pattern(s) 'buildpack[*].layers' name no field of the build 'runtime'" in failed.stdout.str()


def test_web_process_started_called_and_stopped(author):
    run(author, "web_process or ends_before").assert_outcomes(passed=3)


def test_shell_command_with_the_launch_env(author):
    run(author, "shell_command").assert_outcomes(passed=1)
