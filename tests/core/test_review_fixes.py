"""Faults a review found: special files, plan files that vanish, secrets in failure accounts,
the cache across failed builds, exec-env at launch, and the lifecycle's order of checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cnbsim
from cnbsim.errors import DetectError, LaunchError
from cnbsim.phase.launch import plan_launch

CACHE_LAYER = '''mkdir -p "$CNB_LAYERS_DIR/deps"
printf '[types]\\ncache = true\\nbuild = true\\n' > "$CNB_LAYERS_DIR/deps.toml"
[ -f "$CNB_LAYERS_DIR/deps/data.txt" ] && echo "restored: $(cat "$CNB_LAYERS_DIR/deps/data.txt")" || echo "fresh"
echo v1 > "$CNB_LAYERS_DIR/deps/data.txt"
'''


def empty_app(tmp_path):
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    return app


def test_a_fifo_or_socket_in_a_layer_neither_hangs_nor_breaks_the_build_or_the_cache(bps, tmp_path):
    bp = bps("special", build=CACHE_LAYER + '''mkfifo "$CNB_LAYERS_DIR/deps/pipe"
(cd "$CNB_LAYERS_DIR/deps" && python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('s.sock')")''')
    app, cache = empty_app(tmp_path), tmp_path / "cache"
    first = cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out", cache_dir=cache, build_timeout=30)
    assert first.layer("special", "deps").cache
    second = cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out", cache_dir=cache, build_timeout=30)
    assert "restored: v1" in second.output_of("special")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "buildpacks", "cache", "out"]   # no work dirs left


def test_a_buildpack_that_removes_its_plan_file_is_a_detect_error(bps, tmp_path):
    bp = bps("rm-plan", detect='rm -f "$2"; exit 0')
    with pytest.raises(cnbsim.DetectFailed) as info:
        cnbsim.detect(empty_app(tmp_path), buildpacks=[bp])
    assert info.value.exit_code == 21
    assert "cannot read the build plan of rm-plan@1.0" in info.value.explain()


def test_buildpack_output_quoted_in_a_detect_failure_hides_secrets(bps, tmp_path):
    bp = bps("leaky", detect='echo "using token $API_TOKEN"; exit 100')
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "detect", str(empty_app(tmp_path)), "-b", str(bp),
                          "-e", "API_TOKEN=supersecret123"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 20
    assert "supersecret123" not in res.stdout + res.stderr
    assert "fail: leaky@1.0 - using token <redacted>" in res.stderr


def test_a_short_secret_is_not_searched_and_does_not_corrupt_the_report(bps, tmp_path):
    bp = bps("short", build='printf \'[[processes]]\\ntype = "web"\\ncommand = ["python"]\\n\' > "$CNB_LAYERS_DIR/launch.toml"')
    result = cnbsim.build(empty_app(tmp_path), buildpacks=[bp], output=tmp_path / "out", env={"FEATURE_KEY": "on"})
    assert result.report["processes"][0]["command"] == ["python"]
    assert "shorter than 4 characters and was not searched" in result.log


def test_a_failed_build_does_not_spoil_the_cache(bps, tmp_path):
    app, cache = empty_app(tmp_path), tmp_path / "cache"
    ok = bps("cachy", "1.0", build=CACHE_LAYER)
    cnbsim.build(app, buildpacks=[ok], output=tmp_path / "out", cache_dir=cache)
    bad = bps("cachy", "2.0", build='echo changed >> "$CNB_LAYERS_DIR/deps/data.txt"; exit 1')
    with pytest.raises(cnbsim.BuildError):
        cnbsim.build(app, buildpacks=[bad], output=tmp_path / "out", cache_dir=cache)
    again = cnbsim.build(app, buildpacks=[ok], output=tmp_path / "out", cache_dir=cache)
    assert "restored: v1" in again.output_of("cachy")


def test_launcher_picks_only_processes_for_the_exec_env(bps, tmp_path):
    bp = bps("ee", api="0.12", build='printf \'[[processes]]\\ntype = "web"\\ncommand = ["echo", "hi"]\\n'
                                     'exec-env = ["test"]\\ndefault = true\\n\' > "$CNB_LAYERS_DIR/launch.toml"')
    result = cnbsim.build(empty_app(tmp_path), buildpacks=[bp], output=tmp_path / "out")
    with pytest.raises(LaunchError, match="process type web was not found") as info:
        plan_launch(result.layers_dir, result.workspace, environ={"PATH": "/usr/bin:/bin"})
    assert "CNB_EXEC_ENV" in str(info.value)
    plan = plan_launch(result.layers_dir, result.workspace, environ={"PATH": "/usr/bin:/bin", "CNB_EXEC_ENV": "test"})
    assert plan.argv[1:] == ("echo", "hi")


def test_a_required_buildpack_failing_its_target_errors_before_the_exec_env_filter(bps, tmp_path):
    bps("ok")
    bps("winonly", api="0.12", extra='exec-env = ["test"]\n\n[[targets]]\nos = "windows"')
    with pytest.raises(cnbsim.DetectFailed) as info:
        cnbsim.detect(empty_app(tmp_path), buildpacks=[bps.root / "ok" / "1.0", bps.root / "winonly" / "1.0"])
    assert info.value.exit_code == 21
    assert "unable to satisfy target os/arch constraints" in info.value.explain()


def test_a_missing_buildpack_inside_a_composite_is_exit_22(bps, tmp_path):
    comp = bps("comp", order=[[("missing", "1")]])
    with pytest.raises(DetectError) as info:
        cnbsim.detect(empty_app(tmp_path), buildpacks=[comp])
    assert info.value.exit_code == 22
    assert "failed to detect: buildpack missing@1 not found" in str(info.value)
