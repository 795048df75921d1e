"""`cnbsim lifecycle detector|builder`, driven like /cnb/lifecycle/* (platform.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cnbsim.tomlio import read_toml

PROVIDE = 'printf "[[provides]]\\nname = \\"%s\\"\\n" "{0}" >> "$CNB_BUILD_PLAN_PATH"'
REQUIRE = ('printf "[[requires]]\\nname = \\"%s\\"\\n[requires.metadata]\\nlaunch = true\\n" "{0}" '
           '>> "$CNB_BUILD_PLAN_PATH"')


def lifecycle(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnbsim.cli", "lifecycle", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def three(bps):
    bps("example/python", "3.11", detect=PROVIDE.format("python"), build='''
mkdir -p "$CNB_LAYERS_DIR/python/bin" "$CNB_LAYERS_DIR/python/env"
printf '[types]\\nbuild = true\\nlaunch = true\\ncache = true\\n[metadata]\\nversion = "3.11"\\n' \\
  > "$CNB_LAYERS_DIR/python.toml"
printf ':' > "$CNB_LAYERS_DIR/python/env/PYTHONPATH.delim"
printf '/opt/py' > "$CNB_LAYERS_DIR/python/env/PYTHONPATH.prepend"
''')
    bps("example/deps", "1.0", api="0.8", detect=REQUIRE.format("python") + "\n" + PROVIDE.format("deps"),
        build='echo "deps sees PYTHONPATH=$PYTHONPATH"')
    bps("example/start", "0.1", api="0.9", detect=REQUIRE.format("deps"), build='''
printf '[[processes]]\\ntype = "web"\\ncommand = ["python", "-m", "http.server"]\\ndefault = true\\n' \\
  > "$CNB_LAYERS_DIR/launch.toml"
''')
    return bps.order([[("example/python", "3.11"), ("example/deps", "1.0"), ("example/start", "0.1")]])


def test_detector_then_builder_write_the_lifecycle_files(tmp_path, bps, app, three, lifecycle_env):
    layers = tmp_path / "layers"
    layers.mkdir()
    (tmp_path / "platform").mkdir()
    env = lifecycle_env()
    det = lifecycle("detector", "-app", str(app), "-buildpacks", str(bps.root), "-order", str(three),
                    "-layers", str(layers), "-platform", str(tmp_path / "platform"), env=env, cwd=tmp_path)
    assert det.returncode == 0, det.stdout + det.stderr
    assert "example/python 3.11" in det.stdout
    assert read_toml(layers / "group.toml") == {"group": [
        {"id": "example/python", "version": "3.11", "api": "0.10"},
        {"id": "example/deps", "version": "1.0", "api": "0.8"},
        {"id": "example/start", "version": "0.1", "api": "0.9"}]}
    assert read_toml(layers / "plan.toml") == {"entries": [
        {"providers": [{"id": "example/python", "version": "3.11"}],
         "requires": [{"name": "python", "metadata": {"launch": True}}]},
        {"providers": [{"id": "example/deps", "version": "1.0"}],
         "requires": [{"name": "deps", "metadata": {"launch": True}}]}]}

    bld = lifecycle("builder", "--app", str(app), "-buildpacks", str(bps.root), "-layers", str(layers),
                    "-platform", str(tmp_path / "platform"), env=env, cwd=tmp_path)
    assert bld.returncode == 0, bld.stdout + bld.stderr
    assert "deps sees PYTHONPATH=/opt/py" in bld.stdout
    assert read_toml(layers / "example_python" / "python.toml")["types"] == {
        "build": True, "launch": True, "cache": True}
    assert read_toml(layers / "config" / "metadata.toml") == {
        "buildpack-default-process-type": "web",
        "buildpacks": [{"id": "example/python", "version": "3.11", "api": "0.10"},
                       {"id": "example/deps", "version": "1.0", "api": "0.8"},
                       {"id": "example/start", "version": "0.1", "api": "0.9"}],
        "processes": [{"type": "web", "command": ["python", "-m", "http.server"], "direct": True,
                       "buildpack-id": "example/start"}]}


def test_flags_fall_back_to_cnb_environment_variables(tmp_path, bps, app, three, lifecycle_env):
    layers = tmp_path / "layers"
    layers.mkdir()
    (tmp_path / "platform").mkdir()
    env = lifecycle_env(CNB_APP_DIR=str(app), CNB_BUILDPACKS_DIR=str(bps.root), CNB_ORDER_PATH=str(three),
                        CNB_LAYERS_DIR=str(layers), CNB_PLATFORM_DIR=str(tmp_path / "platform"))
    assert lifecycle("detector", env=env, cwd=tmp_path).returncode == 0
    assert lifecycle("builder", env=env, cwd=tmp_path).returncode == 0
    assert (layers / "config" / "metadata.toml").is_file()


def test_order_toml_in_layers_dir_is_the_default_order(tmp_path, bps, app, three, lifecycle_env):
    layers = tmp_path / "layers"
    layers.mkdir()
    (layers / "order.toml").write_text(three.read_text())
    env = lifecycle_env()
    res = lifecycle("detector", "-app", str(app), "-buildpacks", str(bps.root), "-layers", str(layers),
                    "-platform", str(tmp_path), env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr


def test_detector_exit_20_when_no_group_passes(tmp_path, bps, app, lifecycle_env):
    bps("a", detect="echo 'nothing for me'; exit 100")
    order = bps.order([[("a", "1.0")]])
    res = lifecycle("detector", "-app", str(app), "-buildpacks", str(bps.root), "-order", str(order),
                    "-layers", str(tmp_path), "-platform", str(tmp_path), env=lifecycle_env(), cwd=tmp_path)
    assert res.returncode == 20
    assert "ERROR: No buildpack groups passed detection." in res.stdout
    assert "ERROR: failed to detect: no buildpacks participating" in res.stdout
    assert "nothing for me" in res.stdout  # buffered output is shown on failure
    assert not (tmp_path / "group.toml").exists()
    assert "Traceback" not in res.stdout + res.stderr


def test_detector_exit_21_when_a_buildpack_errors(tmp_path, bps, app, lifecycle_env):
    bps("a", detect="exit 1")
    order = bps.order([[("a", "1.0")]])
    res = lifecycle("detector", "-app", str(app), "-buildpacks", str(bps.root), "-order", str(order),
                    "-layers", str(tmp_path), "-platform", str(tmp_path), env=lifecycle_env(), cwd=tmp_path)
    assert res.returncode == 21
    assert "failed to detect: buildpack(s) failed with err" in res.stdout


def test_detector_exit_12_for_an_unsupported_buildpack_api(tmp_path, bps, app, lifecycle_env):
    bps("a", api="0.5")
    order = bps.order([[("a", "1.0")]])
    res = lifecycle("detector", "-app", str(app), "-buildpacks", str(bps.root), "-order", str(order),
                    "-layers", str(tmp_path), "-platform", str(tmp_path), env=lifecycle_env(), cwd=tmp_path)
    assert res.returncode == 12
    assert "buildpack API version '0.5' is incompatible with the lifecycle" in res.stdout


def test_missing_platform_api_is_exit_11(tmp_path, lifecycle_env):
    env = lifecycle_env()
    env.pop("CNB_PLATFORM_API")
    res = lifecycle("detector", env=env, cwd=tmp_path)
    assert res.returncode == 11
    assert "CNB_PLATFORM_API" in res.stdout


def test_malformed_order_toml_is_one_clear_error(tmp_path, bps, app, lifecycle_env):
    order = tmp_path / "order.toml"
    order.write_text("[[order]\n")
    res = lifecycle("detector", "-app", str(app), "-buildpacks", str(bps.root), "-order", str(order),
                    "-layers", str(tmp_path), "-platform", str(tmp_path), env=lifecycle_env(), cwd=tmp_path)
    assert res.returncode == 1
    assert f"{order}: invalid TOML in order.toml" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr


def test_builder_exit_51_when_bin_build_fails(tmp_path, bps, app, lifecycle_env):
    bps("a", build="exit 4")
    (tmp_path / "group.toml").write_text('[[group]]\nid = "a"\nversion = "1.0"\napi = "0.10"\n')
    (tmp_path / "plan.toml").write_text("")
    res = lifecycle("builder", "-app", str(app), "-buildpacks", str(bps.root), "-layers", str(tmp_path),
                    "-platform", str(tmp_path), env=lifecycle_env(), cwd=tmp_path)
    assert res.returncode == 51
    assert "failed to build: exit status 4" in res.stdout
