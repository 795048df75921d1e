"""`cnbsim build` + `cnbsim run`/`serve` of PlanQK services as their authors write them today:
a typed `run()` (the fixture planqk-typed), both input layouts, results from the v2 output file or
the result block, validation errors, only the inputs given are mounted, and the one-line hint of a
stub build that lacks a recorded package; pydantic itself from the package index (registry)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parents[2] / "fixtures" / "apps"
TYPED_RESULT = {"counts": {"heads": 33, "tails": 67}, "first_tosses": ["tails", "heads", "tails", "heads", "tails"],
                "note": "a biased coin"}
MISSING_PACKAGE = "planqk-demo-backend"      # a package no machine has: the stub build only records it


def cnbsim(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cwd / ".cache")}   # the default cache, kept in the test's dir
    return subprocess.run([sys.executable, "-m", "cnbsim.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def built(app: Path, tmp_path: Path, *options: str) -> Path:
    out = tmp_path / f"out-{app.name}"
    build = cnbsim("build", app, "--output", out, *options, cwd=tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def result_of(run: subprocess.CompletedProcess) -> object:
    """The result `cnbsim run --json` printed (stdout holds only it)."""
    return json.loads(run.stdout) if run.stdout.strip() else None


@pytest.fixture(scope="module")
def typed_out(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("typed")
    return built(APPS / "planqk-typed", tmp)


def test_a_typed_service_runs_with_its_inputs_from_data_and_params(typed_out, tmp_path):
    app = APPS / "planqk-typed"
    run = cnbsim("run", typed_out, "--json", "--data", app / "input" / "data.json",
                 "--params", app / "input" / "params.json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert result_of(run) == TYPED_RESULT
    assert re.search(r"Result written to \S+/output/output\.json", run.stderr)   # and read from there


def test_a_typed_service_runs_with_the_v2_input_layout(typed_out, tmp_path):
    app = APPS / "planqk-typed"
    run = cnbsim("run", typed_out, "--json", "--input", f"data={app / 'input' / 'data.json'}",
                 "--input", f"params={app / 'input' / 'params.json'}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert result_of(run) == TYPED_RESULT
    assert "(one file per parameter)" in run.stderr


def test_an_input_that_does_not_fit_names_the_parameter_and_field_and_exits_1(typed_out, tmp_path):
    (tmp_path / "data.json").write_text('{"n_coin_tosses": "many"}')
    run = cnbsim("run", typed_out, "--data", tmp_path / "data.json", cwd=tmp_path)
    assert run.returncode == 1
    assert re.search(r"Invalid input: parameter 'data' \(InputData\) from file '\S+/data/data\.json': "
                     r"field 'n_coin_tosses': expected an integer, got \"many\"", run.stdout), run.stdout
    assert "===> RESULT" not in run.stdout and "Traceback" not in run.stderr
    assert "cnbsim: the process exited with code 1" in run.stderr


def test_bad_input_names_are_one_line_errors(typed_out, tmp_path):
    run = cnbsim("run", typed_out, "--input", "not a name=x.json", cwd=tmp_path)
    assert run.returncode != 0
    assert "--input 'not a name=x.json' is not NAME=FILE" in run.stderr and "Traceback" not in run.stderr


# ---------------------------------------------------------------------------------- only given inputs

@pytest.fixture(scope="module")
def starter_out(tmp_path_factory) -> Path:
    return built(APPS / "planqk-pip", tmp_path_factory.mktemp("pip"))


def test_run_without_data_and_params_does_not_read_the_projects_input_dir(starter_out, tmp_path):
    run = cnbsim("run", starter_out, "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert result_of(run) == {"metadata": None, "result": {"sum": 0}}     # not input/data.json's 42
    assert ("cnbsim: input/data.json and input/params.json of the project are not mounted (a container sees only "
            "the inputs given), so the job runs without them; pass --data input/data.json --params "
            "input/params.json to use them") in run.stderr


def test_run_with_data_only_gets_no_params(starter_out, tmp_path):
    run = cnbsim("run", starter_out, "--json", "--data", APPS / "planqk-pip" / "input" / "data.json", cwd=tmp_path)
    assert result_of(run) == {"metadata": None, "result": {"sum": 42.6}}  # round_off of input/params.json unused
    assert "cnbsim: input/params.json of the project is not mounted" in run.stderr
    assert "input/data.json of the project" not in run.stderr


# ---------------------------------------------------------------------------------- result sources

def python_process_build(bps, tmp_path: Path, code: str) -> Path:
    """A build whose default process is `python3 -c CODE` (a custom runtime, not the job-template)."""
    bp = bps("test/python-c", build=f'''
mkdir -p "$CNB_LAYERS_DIR/py/bin"   # the interpreter from a launch layer, as on a run image
ln -s "$(cat "$CNB_PLATFORM_DIR/env/CNBSIM_BASE_PYTHON")" "$CNB_LAYERS_DIR/py/bin/python3"
printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/py.toml"
cat > "$CNB_LAYERS_DIR/launch.toml" <<'TOML'
[[processes]]
type = "web"
command = ["python3", "-c", "{code}"]
default = true
TOML
''')
    app = tmp_path / "app"
    app.mkdir()
    out = tmp_path / "out"
    assert cnbsim("build", app, "--buildpack", bp, "--output", out, cwd=tmp_path).returncode == 0
    return out


def test_run_reads_the_v2_output_file_of_a_service_that_prints_no_block(bps, tmp_path):
    out = python_process_build(bps, tmp_path, "import json, os; d = os.environ.get('OUTPUT_DIRECTORY', "
                               "'/var/runtime/output'); json.dump({'written': 'by the service'}, "
                               "open(os.path.join(d, 'output.json'), 'w')); print('no block')")
    run = cnbsim("run", out, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "no block\n===> RESULT\n{\n  \"written\": \"by the service\"\n}\n" in run.stdout


# ---------------------------------------------------------------------------------- stub builds

def missing_dependency_app(root: Path) -> Path:
    """A PlanQK service whose program imports a package its requirements list (a stub build records it)."""
    (root / "src").mkdir(parents=True)
    (root / "planqk.json").write_text('{"name": "needs-backend", "runtime": "PYTHON_TEMPLATE"}\n')
    (root / "requirements.txt").write_text(f"{MISSING_PACKAGE}==1.0\n")
    (root / "src" / "__init__.py").write_text("")
    (root / "src" / "program.py").write_text(
        "import planqk_demo_backend\n\n\ndef run(data=None, params=None):\n    return planqk_demo_backend.run(data)\n")
    return root


def test_a_stub_build_missing_a_recorded_package_says_so_in_one_line(tmp_path):
    out = built(missing_dependency_app(tmp_path / "app"), tmp_path)
    run = cnbsim("run", out, cwd=tmp_path)
    assert run.returncode == 1
    assert "ModuleNotFoundError: No module named 'planqk_demo_backend'" in run.stderr
    hints = [line for line in run.stderr.splitlines() if "--installer real" in line]
    assert hints == [f"cnbsim: No module named 'planqk_demo_backend': this is a stub build, the build recorded "
                     f"'{MISSING_PACKAGE}==1.0' but did not install it; rebuild with `cnbsim build --installer "
                     "real` to install the dependencies"]


def test_no_hint_when_the_missing_module_is_not_the_stub_builds_fault(bps, tmp_path):
    out = python_process_build(bps, tmp_path, "import planqk_demo_backend")
    run = cnbsim("run", out, cwd=tmp_path)
    assert run.returncode == 1 and "No module named 'planqk_demo_backend'" in run.stderr
    assert "--installer real" not in run.stderr          # nothing was recorded: not a stub build's gap


def test_serve_prints_the_stub_hint_when_a_job_fails_for_it(tmp_path):
    out = built(missing_dependency_app(tmp_path / "app"), tmp_path)
    server = subprocess.Popen([sys.executable, "-m", "cnbsim.cli", "serve", str(out), "--port", "0"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / ".cache")})
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)", first).group(1))
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b'{"data": {}, "params": {}}',
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            job = json.loads(answer.read())
        status = "RUNNING"
        for _ in range(200):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{job['id']}", timeout=10) as answer:
                status = json.loads(answer.read())["status"]
            if status not in ("RUNNING", "PENDING"):
                break
            time.sleep(0.05)
        assert status == "FAILED"
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    hints = [line for line in log.splitlines() if "--installer real" in line]
    assert hints == [f"cnbsim: No module named 'planqk_demo_backend': this is a stub build, the build recorded "
                     f"'{MISSING_PACKAGE}==1.0' but did not install it; rebuild with `cnbsim build --installer "
                     "real` to install the dependencies"], log


# ---------------------------------------------------------------------------------- pydantic (registry)

@pytest.mark.registry
def test_the_pydantic_template_builds_in_real_mode_and_runs_like_a_direct_call(tmp_path):
    wheels = tmp_path / "wheels"
    # wheels for the interpreter the build selects (the default CPython, 3.10, where installed) and
    # for this one (what the build falls back to): pydantic-core's are per Python version
    for version in sorted({"3.10", f"{sys.version_info[0]}.{sys.version_info[1]}"}):
        download = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheels),
                                   "--only-binary", ":all:", "--python-version", version, "pydantic"],
                                  capture_output=True, text=True, timeout=300)
        if download.returncode != 0:
            pytest.skip(f"cannot download pydantic from the package index: {download.stderr.strip()[-200:]}")
    app = APPS / "planqk-pydantic"
    out = built(app, tmp_path, "--installer", "real", "--wheelhouse", str(wheels))
    run = cnbsim("run", out, "--json", "--data", app / "input" / "data.json", "--params", app / "input" / "params.json",
                 cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert result_of(run) == TYPED_RESULT        # the dataclass twin's result: same program, same seed
    (tmp_path / "bad.json").write_text('{"n_coin_tosses": "many"}')
    bad = cnbsim("run", out, "--input", f"data={tmp_path / 'bad.json'}", cwd=tmp_path)
    assert bad.returncode == 1
    assert re.search(r"Invalid input: parameter 'data' \(InputData\) from file '\S+/data\.json': "
                     r"field 'n_coin_tosses': ", bad.stdout), bad.stdout
