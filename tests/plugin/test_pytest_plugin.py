"""The pytest plugin, tested as a buildpack author uses it: with pytest's own pytester."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

BUILDPACK = '''
import textwrap
from pathlib import Path

def make_buildpack(root: Path, layer_type: str = "launch", value: str = "1") -> Path:
    bp = root / "bp"
    (bp / "bin").mkdir(parents=True, exist_ok=True)
    (bp / "buildpack.toml").write_text('api = "0.10"\\n[buildpack]\\nid = "author/demo"\\nversion = "0.1.0"\\n')
    (bp / "bin" / "detect").write_text("#!/bin/sh\\n[ -f requirements.txt ] || exit 100\\n")
    (bp / "bin" / "build").write_text(textwrap.dedent(f"""\\
        #!/bin/sh
        set -e
        mkdir -p "$CNB_LAYERS_DIR/deps/env"
        printf '[types]\\\\n{layer_type} = true\\\\n' > "$CNB_LAYERS_DIR/deps.toml"
        printf '{value}' > "$CNB_LAYERS_DIR/deps/env/DEMO_VALUE"
        cat > "$CNB_LAYERS_DIR/launch.toml" <<'EOF'
        [[processes]]
        type = "web"
        command = ["sh", "-c", "echo hello"]
        default = true
        EOF
        echo built
        """))
    for f in ("detect", "build"):
        (bp / "bin" / f).chmod(0o755)
    return bp
'''

TESTS = '''
import json, os
from pathlib import Path
from helpers import make_buildpack

def app(tmp_path):
    path = tmp_path / "app"
    path.mkdir()
    (path / "requirements.txt").write_text("")
    return path

def test_layer_and_env(tmp_path, cnb_build):
    bp = make_buildpack(tmp_path, os.environ.get("LAYER_TYPE", "launch"), os.environ.get("VALUE", "1"))
    result = cnb_build(app(tmp_path), buildpacks=[bp])
    assert result.layer("author/demo", "deps").launch
    assert result.launch_env("web")["DEMO_VALUE"] == "1"
    assert result.process("web").command == ("sh", "-c", "echo hello")
    assert "built" in result.output_of("author/demo")

def test_run(tmp_path, cnb_build, cnb_run):
    run = cnb_run(cnb_build(app(tmp_path), buildpacks=[make_buildpack(tmp_path)]))
    assert run.exit_code == 0 and run.stdout == "hello\\n"

def test_detect(tmp_path, cnb_detect):
    result = cnb_detect(app(tmp_path), buildpacks=[make_buildpack(tmp_path)])
    assert [e.id for e in result.group] == ["author/demo"]

def test_golden(tmp_path, cnb_build, assert_matches_golden):
    bp = make_buildpack(tmp_path, os.environ.get("LAYER_TYPE", "launch"), os.environ.get("VALUE", "1"))
    assert_matches_golden(cnb_build(app(tmp_path), buildpacks=[bp]), "demo")
'''


@pytest.fixture
def author(pytester: pytest.Pytester):
    pytester.makepyfile(helpers=BUILDPACK, test_author=TESTS)
    pytester.makeini("[pytest]\ncnb_golden_dir = golden\n")
    return pytester


def test_a_buildpack_authors_tests_pass_with_the_fixtures(author):
    result = author.runpytest_subprocess("-p", "no:cacheprovider", "-k", "not golden")
    result.assert_outcomes(passed=3)


def test_missing_golden_says_how_to_create_it(author):
    result = author.runpytest_subprocess("-k", "golden")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no golden file*demo.json*--cnb-update-golden*"])


def test_golden_is_written_only_with_the_flag_and_then_matches(author):
    golden = author.path / "golden" / "demo.json"
    author.runpytest_subprocess("-k", "golden")
    assert not golden.exists()
    author.runpytest_subprocess("-k", "golden", "--cnb-update-golden").assert_outcomes(passed=1)
    report = json.loads(golden.read_text())
    assert report["group"] == [{"id": "author/demo", "version": "0.1.0", "api": "0.10"}]
    assert "timings" not in report and "host" not in report    # the host-dependent keys (cnbsim.report)
    author.runpytest_subprocess("-k", "golden").assert_outcomes(passed=1)


def test_a_changed_layer_type_fails_with_a_readable_diff(author, monkeypatch):
    author.runpytest_subprocess("-k", "golden", "--cnb-update-golden")
    before = (author.path / "golden" / "demo.json").read_text()
    monkeypatch.setenv("LAYER_TYPE", "build")
    result = author.runpytest_subprocess("-k", "golden")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*buildpacks[[]0[]].layers[[]0[]].types.build: false -> true*",
                                 "*buildpacks[[]0[]].layers[[]0[]].types.launch: true -> false*",
                                 "*--- golden/demo.json*", "*+++ actual*"])
    assert (author.path / "golden" / "demo.json").read_text() == before   # never rewritten without the flag


def test_a_changed_env_value_fails_naming_the_variable(author, monkeypatch):
    author.runpytest_subprocess("-k", "golden", "--cnb-update-golden")
    monkeypatch.setenv("VALUE", "2")
    result = author.runpytest_subprocess("-k", "golden")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(['*launch_env.web.DEMO_VALUE: "1" -> "2"*'])


def test_registry_marker_is_skipped_without_the_option(pytester: pytest.Pytester):
    pytester.makepyfile("import pytest\n@pytest.mark.registry\ndef test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*--cnb-registry*"])


def test_builds_are_safe_under_xdist(author):
    result = author.runpytest_subprocess("-n", "2", "-k", "not golden")
    result.assert_outcomes(passed=3)
