"""A buildpack author's tests of their runtime buildpack, written with cnbsim's pytest plugin only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import cnbsim

BUILDPACK = Path(__file__).parent / "runtime-buildpack"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    (path / "app.txt").write_text("my app\n")
    (path / "server.py").write_text((Path(__file__).parent / "server.py").read_text())
    return path


def test_failed_build_shows_the_buildpack_and_its_output(app, cnb_build):
    with pytest.raises(cnbsim.BuildError) as failed:
        cnb_build(app, buildpacks=[BUILDPACK], env={"FAIL_BUILD": "1", "API_TOKEN": "t0ken-s3cret"})
    assert failed.value.buildpack == "author/runtime"
    assert failed.value.exit_code == 51
    assert "installing runtime 1.0" in failed.value.output
    assert "download of runtime 1.0 failed (token <redacted>)" in failed.value.output
    assert "t0ken-s3cret" not in failed.value.output + str(failed.value)
    assert "download of runtime 1.0 failed" in str(failed.value)


def test_detect_failure_says_why(tmp_path, cnb_build):
    (tmp_path / "empty").mkdir()
    with pytest.raises(cnbsim.DetectFailed) as failed:
        cnb_build(tmp_path / "empty", buildpacks=[BUILDPACK])
    assert "fail: author/runtime@0.1.0 - no app.txt in the app" in str(failed.value)


def test_failed_build_golden(app, cnb_build, assert_matches_golden):
    with pytest.raises(cnbsim.BuildError) as failed:
        cnb_build(app, buildpacks=[BUILDPACK], env={"FAIL_BUILD": "1"})
    assert_matches_golden(failed.value, "failed-build")


def test_golden_ignoring_the_version(app, cnb_build, assert_matches_golden):
    version = os.environ.get("RUNTIME_VERSION", "1.0")
    result = cnb_build(app, buildpacks=[BUILDPACK], env={"BP_RUNTIME_VERSION": version})
    assert_matches_golden(result, "runtime", ignore=[
        "buildpacks[*].layers[*].digest",
        "buildpacks[0].layers[*].metadata.version",
        "launch_env.*.RUNTIME_VERSION",
    ])


def test_golden_with_a_mistyped_ignore(app, cnb_build, assert_matches_golden):
    assert_matches_golden(cnb_build(app, buildpacks=[BUILDPACK]), "runtime", ignore=["buildpack[*].layers"])


def test_rebuild_keeps_options_cache_and_output(app, cnb_build):
    first = cnb_build(app, buildpacks=[BUILDPACK], env={"BP_RUNTIME_VERSION": "2.0"})
    again = first.rebuild()
    assert again.output == first.output
    assert "Reusing cached layer runtime 2.0" in again.output_of("author/runtime")
    assert again.layer("author/runtime", "runtime").metadata.metadata == {"version": "2.0"}
    changed = again.rebuild(env={"BP_RUNTIME_VERSION": "3.0"})
    assert "installing runtime 3.0" in changed.output_of("author/runtime")
    cleared = changed.rebuild(clear_cache=True)
    assert "installing runtime 3.0" in cleared.output_of("author/runtime")
    with pytest.raises(TypeError, match="unknown argument"):
        first.rebuild(colour="blue")


def test_rebuild_says_truthfully_what_became_of_each_layer(app, cnb_build):
    first = cnb_build(app, buildpacks=[BUILDPACK])
    assert first.layer_status == {("author/runtime", "runtime"): "new", ("author/runtime", "config"): "new"}
    kept = first.rebuild()
    assert kept.layer_status[("author/runtime", "runtime")] == "restored"     # from the cache, unchanged
    assert kept.layer_status[("author/runtime", "config")] == "reused"        # launch-only, from the output
    recreated = kept.rebuild(env={"RECREATE": "1"})                          # same files, made again
    assert recreated.layer_status[("author/runtime", "runtime")] == "rebuilt"
    noted = recreated.rebuild(env={"NOTE": "x"})                             # same files, new metadata
    assert noted.layer_status[("author/runtime", "runtime")] == "rebuilt"
    assert noted.rebuild(env={"NOTE": "x"}).layer_status[("author/runtime", "runtime")] == "restored"


def test_rebuild_outside_pytest(app, tmp_path):
    first = cnbsim.build(app, buildpacks=[BUILDPACK], output=tmp_path / "out", cache_dir=tmp_path / "cache")
    assert "Reusing cached layer" in first.rebuild().output_of("author/runtime")
