"""A buildpack author's tests of their runtime buildpack, written with cnbsim's pytest plugin only."""

from __future__ import annotations

import os
import socket
import urllib.request
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


def test_web_process_answers_over_http(app, cnb_build, cnb_start):
    result = cnb_build(app, buildpacks=[BUILDPACK], env={"BP_RUNTIME_VERSION": "2.0"})
    with cnb_start(result, env={"PORT": "8080"}, port=8080) as web:
        with urllib.request.urlopen(web.url, timeout=10) as answer:
            assert answer.read() == b"runtime 2.0\n"
        assert web.address_for_port(8080) == web.url.removeprefix("http://")
        assert web.exit_code is None
    assert "GET / HTTP/1.1" in web.logs()
    assert web.exit_code is not None                                   # stopped with the block
    with pytest.raises(OSError):
        socket.create_connection(web.address_for_port(8080).split(":"), timeout=2).close()


def test_web_process_that_binds_another_port_is_reported(app, cnb_build, cnb_start):
    result = cnb_build(app, buildpacks=[BUILDPACK])
    with pytest.raises(cnbsim.LaunchError, match="did not listen on port 8080 within 2 s"):
        with cnb_start(result, env={"PORT": "8081"}, port=8080, timeout=2):
            pass


def test_process_that_ends_before_listening_shows_its_output(app, cnb_build, cnb_start):
    result = cnb_build(app, buildpacks=[BUILDPACK])
    with pytest.raises(cnbsim.LaunchError, match="exited with code 1 before it listened") as failed:
        with cnb_start(result, env={"PORT": "not-a-port"}, port=8080):
            pass
    assert "invalid literal for int()" in str(failed.value)


def test_shell_command_sees_the_launch_env(app, cnb_build, cnb_shell):
    result = cnb_build(app, buildpacks=[BUILDPACK], env={"BP_RUNTIME_VERSION": "3.1"})
    ran = cnb_shell(result, 'echo "version $RUNTIME_VERSION in $PWD"; runtime; ls /layers/author_runtime')
    assert ran.exit_code == 0, ran.stderr
    assert ran.stdout.splitlines() == ["version 3.1 in /workspace", "runtime 3.1", "config", "runtime"]
    assert cnb_shell(result, "exit 3").exit_code == 3
