"""The `cnbsim` command in a subprocess: each verb and each error a user can hit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNTIME = r'''import json, os, sys
root = os.environ.get("PLANQK_INPUT_ROOT", "/var/input")
def load(name):
    try:
        with open(os.path.join(root, name, name + ".json")) as fh:
            return json.load(fh)
    except OSError:
        return {}
data, params = load("data"), load("params")
print("user output")
value = {"sum": sum(data.get("values", [])), "args": sys.argv[1:]}
print()
print("PlanQK:Job:MultilineResult")
print(json.dumps(value, indent=2))
print("PlanQK:Job:MultilineResult")
sys.exit(int(params.get("exit", 0)))
'''


def cnbsim(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cwd / ".cache")}   # the default cache, kept in the test's dir
    return subprocess.run([sys.executable, "-m", "cnbsim.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def service(bps, tmp_path):
    """A buildpack that makes a python process imitating the PlanQK runtime, and an app for it."""
    bp = bps("test/runtime", build=f'''
mkdir -p "$CNB_LAYERS_DIR/rt/bin"
# the runtime's interpreter comes from a launch layer, as on a run image (a link to the host's, as the cpython stub does)
ln -s "$(cat "$CNB_PLATFORM_DIR/env/CNBSIM_BASE_PYTHON")" "$CNB_LAYERS_DIR/rt/bin/python3"
cat > "$CNB_LAYERS_DIR/rt/runtime.py" <<'PY'
{RUNTIME}
PY
printf '[types]\\nlaunch = true\\n[metadata]\\nversion = "1"\\n' > "$CNB_LAYERS_DIR/rt.toml"
cat > "$CNB_LAYERS_DIR/launch.toml" <<TOML
[[processes]]
type = "web"
command = ["python3", "$CNB_LAYERS_DIR/rt/runtime.py"]
default = true
TOML
echo "runtime installed"
''')
    app = tmp_path / "svc"
    app.mkdir()
    (app / "data.json").write_text('{"values": [1, 5.2, 20, 7, 9.8]}')
    (app / "params.json").write_text('{}')
    return app, bp


def test_build_prints_pack_shaped_output_and_writes_the_output_dir(service, tmp_path):
    app, bp = service
    res = cnbsim("build", str(app), "-b", str(bp), "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"),
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "===> DETECTING"
    assert "test/runtime 1.0" in lines
    assert "===> BUILDING" in lines and "runtime installed" in lines
    from cnbsim import sandbox
    layers = "/layers" if not sandbox.available() else str(tmp_path / "out" / "layers")   # the namespace's, else host's
    assert f"  web (default): python3 {layers}/test_runtime/rt/runtime.py" in lines
    assert "  test/runtime:rt [launch] (new)" in lines
    assert any(line.startswith("Built in ") for line in lines)
    for name in ("workspace", "layers", "report.json"):
        assert (tmp_path / "out" / name).exists()
    assert (tmp_path / "out" / "layers" / "config" / "metadata.toml").is_file()
    assert "\x1b[" not in res.stdout   # no colour when not on a terminal


def test_build_sbom_output_dir_gets_the_sbom_tree_as_pack_gives_it(bps, app, tmp_path):
    bp = bps("t/sbom", extra='sbom-formats = ["application/vnd.cyclonedx+json"]', build="""
mkdir -p "$CNB_LAYERS_DIR/rt"
printf '[types]\\nlaunch = true\\ncache = true\\n' > "$CNB_LAYERS_DIR/rt.toml"
echo '{"bomFormat": "CycloneDX"}' > "$CNB_LAYERS_DIR/rt.sbom.cdx.json"
echo '{"bomFormat": "CycloneDX", "of": "build"}' > "$CNB_LAYERS_DIR/build.sbom.cdx.json"
""")
    res = cnbsim("build", str(app), "-b", str(bp), "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"),
                 "--sbom-output-dir", str(tmp_path / "sbom"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    files = sorted(str(p.relative_to(tmp_path / "sbom")) for p in (tmp_path / "sbom").rglob("*") if p.is_file())
    # pack copies <layers>/sbom out of the build: launch/, build/ and cache/ with <bp>/[<layer>/]sbom.<ext>
    assert files == ["build/sbom.legacy.json", "build/t_sbom/sbom.cdx.json", "cache/t_sbom/rt/sbom.cdx.json",
                     "launch/sbom.legacy.json", "launch/t_sbom/rt/sbom.cdx.json"]
    assert json.loads((tmp_path / "sbom" / "build" / "t_sbom" / "sbom.cdx.json").read_text())["of"] == "build"


def test_build_json_prints_only_the_report(service, tmp_path):
    app, bp = service
    res = cnbsim("build", str(app), "-b", str(bp), "-o", str(tmp_path / "out"), "--json", cwd=tmp_path)
    assert res.returncode == 0
    report = json.loads(res.stdout)
    assert report["group"] == [{"id": "test/runtime", "version": "1.0", "api": "0.10"}]
    assert "===> BUILDING" in res.stderr


def test_source_app_is_never_modified(service, tmp_path):
    app, bp = service
    before = sorted(p.name for p in app.rglob("*"))
    assert cnbsim("build", str(app), "-b", str(bp), "-o", str(tmp_path / "out"), cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in app.rglob("*")) == before


def test_default_output_is_cnbsim_out_app_name(service, tmp_path):
    app, bp = service
    assert cnbsim("build", str(app), "-b", str(bp), cwd=tmp_path).returncode == 0
    assert (tmp_path / "cnbsim-out" / "svc" / "report.json").is_file()


def test_failed_build_leaves_the_previous_output_untouched(service, bps, tmp_path):
    app, bp = service
    out = tmp_path / "out"
    assert cnbsim("build", str(app), "-b", str(bp), "-o", str(out), cwd=tmp_path).returncode == 0
    before = (out / "report.json").read_text()
    bad = bps("test/bad", build="echo 'half a layer' > \"$CNB_LAYERS_DIR/x\"; exit 2")
    res = cnbsim("build", str(app), "-b", str(bad), "-o", str(out), cwd=tmp_path)
    assert res.returncode == 51
    assert "ERROR: " in res.stderr and "exit status 2" in res.stderr
    assert (out / "report.json").read_text() == before
    assert not list(tmp_path.glob(".out.cnbsim-*"))


def test_refuses_to_replace_a_directory_that_is_not_a_cnbsim_output(service, tmp_path):
    app, bp = service
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    res = cnbsim("build", str(app), "-b", str(bp), "-o", str(precious), cwd=tmp_path)
    assert res.returncode == 1
    assert "refusing to replace it" in res.stderr
    assert (precious / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("detect, code, text", [
    ("echo 'no planqk.json'; exit 100", 20, "no buildpacks participating"),
    ("exit 5", 21, "buildpack(s) failed with err"),
])
def test_build_detect_failures_use_the_lifecycle_exit_codes(bps, app, tmp_path, detect, code, text):
    bp = bps("x", detect=detect)
    res = cnbsim("build", str(app), "-b", str(bp), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == code
    assert text in res.stderr
    assert "Traceback" not in res.stderr


def test_unsupported_buildpack_api_is_exit_12(bps, app, tmp_path):
    bp = bps("x", api="0.2")
    res = cnbsim("build", str(app), "-b", str(bp), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert res.returncode == 12


@pytest.mark.parametrize("args, message", [
    (["build", "does-not-exist"], "app directory does not exist"),
    (["build", ".", "-b", "no/such-buildpack"], "unknown buildpack 'no/such-buildpack'"),
    (["build", ".", "--env", "=x"], "is not KEY=VALUE"),
    (["build", ".", "--env-file", "missing.env"], "env file not found"),
    (["run", "not-an-output"], "is not a cnbsim build output"),
    (["inspect", "not-an-output"], "is not a cnbsim build output"),
])
def test_bad_input_is_one_line_error(tmp_path, args, message):
    res = cnbsim(*args, cwd=tmp_path)
    assert res.returncode != 0
    assert res.stderr.count("ERROR:") == 1 and message in res.stderr
    assert "Traceback" not in res.stderr


def test_detect_verb_explains_why_each_group_failed(bps, app, tmp_path):
    bp = bps("x", detect="echo 'Could not find planqk.json'; exit 100")
    res = cnbsim("detect", str(app), "-b", str(bp), cwd=tmp_path)
    assert res.returncode == 20
    assert "fail: x@1.0 - Could not find planqk.json" in res.stderr


def test_run_with_data_and_params_prints_output_then_result(service, tmp_path):
    app, bp = service
    out = tmp_path / "out"
    assert cnbsim("build", str(app), "-b", str(bp), "-o", str(out), cwd=tmp_path).returncode == 0
    res = cnbsim("run", str(out), "--data", str(app / "data.json"), "--params", str(app / "params.json"),
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.index("user output") < res.stdout.index("===> RESULT")
    result_text = res.stdout.split("===> RESULT\n", 1)[1]
    assert json.loads(result_text) == {"sum": 43, "args": []}


def test_run_copies_a_workspace_whose_file_names_are_not_utf8(service, tmp_path):
    # a container's copy of the image has any name the build left; the run's copy has them too
    app, bp = service
    with open(os.fsencode(app) + b"/caf\xe9.txt", "w") as fh:      # Latin-1, as an old zip gives
        fh.write("x")
    out = tmp_path / "out"
    assert cnbsim("build", str(app), "-b", str(bp), "-o", str(out), cwd=tmp_path).returncode == 0
    res = cnbsim("run", str(out), "--data", str(app / "data.json"), "--params", str(app / "params.json"),
                 cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.split("===> RESULT\n", 1)[1]) == {"sum": 43, "args": []}


def test_run_json_prints_only_the_result_and_passes_args_and_exit_code(service, tmp_path):
    app, bp = service
    out = tmp_path / "out"
    assert cnbsim("build", str(app), "-b", str(bp), "-o", str(out), cwd=tmp_path).returncode == 0
    (tmp_path / "p.json").write_text('{"exit": 3}')
    res = cnbsim("run", str(out), "--params", str(tmp_path / "p.json"), "--json", "--", "a", "b", cwd=tmp_path)
    assert res.returncode == 3
    assert json.loads(res.stdout) == {"sum": 0, "args": ["a", "b"]}
    assert "user output" in res.stderr


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "data file not found"),
    (lambda d: (d / "in.json").write_text("{not json"), "--data file is not valid JSON"),
    (lambda d: (d / "in.json").mkdir(), "--data file is a directory, expected a file"),
])
def test_run_rejects_bad_data_files(service, tmp_path, make, message):
    app, bp = service
    out = tmp_path / "out"
    assert cnbsim("build", str(app), "-b", str(bp), "-o", str(out), cwd=tmp_path).returncode == 0
    make(tmp_path)
    res = cnbsim("run", str(out), "--data", str(tmp_path / "in.json"), cwd=tmp_path)
    assert res.returncode == 1
    assert message in res.stderr and "Traceback" not in res.stderr


def test_run_unknown_process_type_is_a_launch_error(service, tmp_path):
    app, bp = service
    out = tmp_path / "out"
    assert cnbsim("build", str(app), "-b", str(bp), "-o", str(out), cwd=tmp_path).returncode == 0
    res = cnbsim("run", str(out), "--process", "nope", cwd=tmp_path)
    assert res.returncode == 82
    assert "process type nope was not found (this build has: web)" in res.stderr


def test_inspect_shows_buildpacks_processes_layers_and_env(service, tmp_path):
    app, bp = service
    out = tmp_path / "out"
    assert cnbsim("build", str(app), "-b", str(bp), "-o", str(out), cwd=tmp_path).returncode == 0
    res = cnbsim("inspect", str(out), cwd=tmp_path)
    assert res.returncode == 0
    assert "  test/runtime  1.0  (API 0.10)" in res.stdout
    assert "  web (default): python3 /layers/test_runtime/rt/runtime.py  [test/runtime]" in res.stdout
    assert "  test/runtime:rt  [launch]" in res.stdout
    as_json = json.loads(cnbsim("inspect", str(out), "--json", cwd=tmp_path).stdout)
    assert as_json["default_process"] == "web"


@pytest.mark.parametrize("verb", ["build", "detect", "run", "inspect", "serve", "export"])
def test_every_verb_has_help(tmp_path, verb):
    res = cnbsim(verb, "--help", cwd=tmp_path)
    assert res.returncode == 0 and "usage: cnbsim" in res.stdout


def test_lifecycle_help_lists_the_phases(tmp_path):
    res = cnbsim("lifecycle", "--help", cwd=tmp_path)
    assert res.returncode == 0 and "detector" in res.stderr + res.stdout


def test_ctrl_c_during_a_build_stops_it_and_keeps_the_previous_output(service, bps, tmp_path):
    import signal
    app, bp = service
    out = tmp_path / "out"
    assert cnbsim("build", str(app), "-b", str(bp), "-o", str(out), cwd=tmp_path).returncode == 0
    before = (out / "report.json").read_text()
    slow = bps("test/slow", build="echo slow build started; sleep 30")
    proc = subprocess.Popen([sys.executable, "-m", "cnbsim.cli", "build", str(app), "-b", str(slow), "-o", str(out)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:      # the build log streams: bin/build is running once its line shows
        if "slow build started" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("ERROR: interrupted by SIGINT; the previous output is kept")
    assert "Traceback" not in err
    assert (out / "report.json").read_text() == before
    assert not list(tmp_path.glob(".out.cnbsim-*"))


def _running(marker: str) -> list[int]:
    """The pids of live (not zombie) processes whose command line is `sleep MARKER`."""
    found = []
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            if (proc_dir / "cmdline").read_bytes() != f"sleep\0{marker}\0".encode():
                continue
            if (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(proc_dir.name))
        except (OSError, IndexError):
            continue
    return found


@pytest.mark.parametrize("sandbox", ["never", pytest.param("always", marks=pytest.mark.bwrap)])
def test_ctrl_c_while_a_group_s_detects_run_side_by_side_stops_every_one(bps, tmp_path, sandbox):
    import signal
    import time
    app = tmp_path / "app"
    app.mkdir()
    marks = tmp_path / "marks"
    marks.mkdir()
    seen = "/mnt/marks" if sandbox == "always" else str(marks)
    tag = f"{os.getpid()}{len(sandbox)}"
    names = ["test/a", "test/b", "test/c"]
    args = []
    for i, name in enumerate(names):
        bp = bps(name, detect=f"touch {seen}/{i}; exec sleep 30.{tag}{i}")
        args += ["-b", str(bp)]
    if sandbox == "always":
        args += ["--volume", f"{marks}:/mnt/marks:rw"]
    proc = subprocess.Popen([sys.executable, "-m", "cnbsim.cli", "build", str(app), *args, "--sandbox", sandbox,
                             "-o", str(tmp_path / "out")], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(list(marks.iterdir())) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(p.name for p in marks.iterdir()) == ["0", "1", "2"]    # all three at once
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("ERROR: interrupted by SIGINT")
    deadline = time.monotonic() + 10
    while any(_running(f"30.{tag}{i}") for i in range(3)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [i for i in range(3) if _running(f"30.{tag}{i}")]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["CNBSIM_DEPS_DIR", "CNBSIM_WHEELHOUSE"])
@pytest.mark.parametrize("how", ["--env", "project.toml"])
def test_a_build_env_may_not_name_the_host_dirs_cnbsim_binds_into_the_build(tmp_path, name, how):
    # these two are bound into the build namespace where they point: from a user's env they would
    # show (or, the dependency cache, make writable) any host dir
    import shutil
    app = tmp_path / "app"
    shutil.copytree(Path(__file__).resolve().parents[2] / "fixtures" / "apps" / "planqk-pip", app)
    args = ["build", str(app), "-o", str(tmp_path / "out")]
    if how == "--env":
        args += ["--env", f"{name}=/etc"]
    else:
        (app / "project.toml").write_text(f'[_]\nschema-version = "0.2"\n[[io.buildpacks.build.env]]\nname = "{name}"\nvalue = "/etc"\n')
    res = cnbsim(*args, cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert f"{name} is cnbsim's own setting and cannot be given as a build env var" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()


def test_a_build_env_value_from_the_shell_that_is_not_utf8_reaches_the_buildpacks_as_given(tmp_path, bps):
    bp = bps("test/env", build='od -An -tx1 "$CNB_PLATFORM_DIR/env/FOO" | tr -d " \\n" > "$CNB_LAYERS_DIR/seen"\n'
                               'printf "%s" "$FOO" | od -An -tx1 | tr -d " \\n" >> "$CNB_LAYERS_DIR/seen"')
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("")
    env = {**os.environb, b"FOO": b"caf\xe9"}       # Latin-1, as a shell on another locale sets it
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "build", str(app), "-b", str(bp), "-o",
                          str(tmp_path / "out"), "-e", "FOO"], env=env, capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    # the platform's env file holds the user's bytes, and so does the env of bin/build (the buildpack
    # does not clear its env, so the lifecycle sets the platform's env vars in it)
    seen = (tmp_path / "out" / "layers" / "test_env" / "seen").read_text()
    assert seen == "636166e9" * 2
