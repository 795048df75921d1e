"""bin/detect of the job-template buildpack, run as the lifecycle runs it: verdicts and messages per
fixture app, with and without python3 on PATH, the build plan it writes, and that plan resolving
in each group of PlanQK's builder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnbsim.tomlio import tomllib
from tests.buildpack.conftest import run_detect

BUILDPACK = Path(__file__).resolve().parents[2] / "buildpack"
PLAN = {"requires": [{"name": "cpython", "metadata": {"launch": True}}],
        "or": [{"requires": [{"name": "conda-environment", "metadata": {"launch": True}}]}]}
NOT_FOUND = "Could not find 'planqk.json' file"
PASSING = ["planqk-pip", "planqk-pipenv", "planqk-conda", "planqk-poetry", "planqk-stdlib", "planqk-base64",
           "planqk-error-response", "planqk-exception", "planqk-missing-program", "planqk-no-run", "planqk-procfile",
           "planqk-pip-and-conda", "planqk-shadow-app"]
FAILING = {
    "no-planqk-json": NOT_FOUND,
    "plain-python": NOT_FOUND,
    "planqk-invalid-json": "planqk.json: is not valid JSON",
    "planqk-docker-runtime": "planqk.json: field 'runtime' is 'DOCKER': a DOCKER service is built from its own "
                             "Dockerfile",
}


@pytest.fixture(params=["jq", "python3", "no-python"])
def path_mode(request, tools) -> str | None:
    """Detect with jq (and bash), with python3 (no jq), or with bash alone (a build image before cpython)."""
    if request.param == "jq" and not shutil.which("jq"):
        pytest.skip("jq is not installed here")
    return tools(*{"jq": ("bash", "jq"), "python3": ("bash", "python3"), "no-python": ("bash",)}[request.param])


@pytest.mark.parametrize("name", PASSING)
def test_a_planqk_service_passes_and_requires_python_at_launch(fixture_app, detect, path_mode, name):
    result = detect(fixture_app(name), path=path_mode)
    assert result.returncode == 0, result.output
    assert "Found 'planqk.json' file (runtime PYTHON_TEMPLATE" in result.stdout
    assert result.plan == PLAN


@pytest.mark.parametrize("name", sorted(FAILING))
def test_anything_else_fails_detection_with_the_reason(fixture_app, detect, path_mode, name):
    result = detect(fixture_app(name), path=path_mode)
    assert result.returncode == 100, result.output
    assert FAILING[name] in result.output
    assert result.plan_path.read_text() == ""


def padded(app: Path) -> Path:
    """The app with its planqk.json over 16 KiB (trailing whitespace), which bin/detect reads with
    jq or python3 (or, without either, by pattern) instead of its JSON reader in bash."""
    path = app / "planqk.json"
    path.write_bytes(path.read_bytes() + b" " * 17_000)
    return app


def test_invalid_json_is_located_by_the_bash_reader(fixture_app, detect, tools):
    result = detect(fixture_app("planqk-invalid-json"), path=tools("bash"))
    assert result.returncode == 100
    assert "planqk.json: is not valid JSON: expected a key in double quotes at line 7, column 3 " \
           "(fix the JSON; `planqk init` writes a valid file)" in result.stderr


def test_invalid_json_is_located_when_python_is_there(fixture_app, detect, tools):
    result = detect(padded(fixture_app("planqk-invalid-json")), path=tools("bash", "python3"))
    # CPython's own words and position differ between versions; the file and a location are the buildpack's
    assert re.search(r"planqk\.json: is not valid JSON: [^\n]+ at line \d+ column \d+", result.stderr), result.stderr


def test_invalid_json_is_located_when_jq_is_there(fixture_app, detect, tools):
    if not shutil.which("jq"):
        pytest.skip("jq is not installed here")
    result = detect(padded(fixture_app("planqk-invalid-json")), path=tools("bash", "jq"))
    assert "planqk.json: is not valid JSON: Expected another key-value pair at line 7, column 3" in result.stderr


def test_a_small_planqk_json_is_read_by_bash_alone(fixture_app, detect, tools):
    result = detect(fixture_app("planqk-pip"), path=tools("bash", "jq", "python3"))
    assert "(runtime PYTHON_TEMPLATE; checked with bash)" in result.stdout


@pytest.mark.parametrize("tool", ["jq", "python3"])
def test_a_large_planqk_json_is_read_with_jq_or_python(fixture_app, detect, tools, tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed here")
    result = detect(padded(fixture_app("planqk-pip")), path=tools("bash", tool))
    assert result.returncode == 0, result.output
    assert re.search(rf"\(runtime PYTHON_TEMPLATE; checked with /\S*{tool}\)", result.stdout), result.stdout


def test_without_python_the_shell_check_says_so(fixture_app, detect, tools):
    result = detect(padded(fixture_app("planqk-pip")), path=tools("bash"))
    assert "checked with a shell check (no jq or python3 on PATH)" in result.stdout


def test_a_python3_that_cannot_run_the_check_falls_back_to_the_shell_check(fixture_app, detect, fake_python3, tools):
    path = fake_python3('echo "SyntaxError: future feature annotations is not defined" >&2\nexit 1\n')
    result = detect(padded(fixture_app("planqk-docker-runtime")), path=f"{path}:{tools('bash')}")
    assert result.returncode == 100
    assert "field 'runtime' is 'DOCKER'" in result.stderr


@pytest.mark.parametrize("text, message", [
    ('{"name": "svc"}', None),
    ('{"name": "svc", "runtime": "PYTHON"}', "planqk.json: field 'runtime' is 'PYTHON', which PlanQK does not know"),
    ('{"runtime": 1}', "planqk.json: field 'runtime' must be a string"),
    ('[{"runtime": "PYTHON_TEMPLATE"}]', "planqk.json: "),
    ("", "planqk.json: "),
    ('\ufeff{"runtime": "PYTHON_TEMPLATE"}', "planqk.json: "),
    ('{\n  "name": "svc",\n  "runtime":\n    "PYTHON_TEMPLATE"\n}\n', None),
])
@pytest.mark.parametrize("large", [False, True], ids=["small", "over-16KiB"])
def test_planqk_json_contents(tmp_path, detect, path_mode, text, message, large):
    app = tmp_path / "app"
    app.mkdir()
    (app / "planqk.json").write_text(text + " " * 17_000 * large, encoding="utf-8")
    result = detect(app, path=path_mode)
    if message is None:
        assert result.returncode == 0, result.output
        assert result.plan == PLAN
    else:
        assert result.returncode == 100, result.output
        assert message in result.stderr


# -------------------------------------------------- the JSON reader in bash against Python's json

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


@st.composite
def planqk_texts(draw: st.DrawFn) -> str:
    """planqk.json texts: JSON objects in various layouts, with or without a runtime field, some of
    them broken by one deleted or inserted character."""
    obj = draw(st.dictionaries(st.text(max_size=6), VALUES, max_size=4))
    runtime = draw(st.sampled_from([None, "PYTHON_TEMPLATE", "DOCKER", 1, [], {"a": 1}]))
    if runtime is not None:
        obj["runtime"] = runtime
    text = json.dumps(obj, indent=draw(st.sampled_from([None, 0, 2, "\t"])),
                      ensure_ascii=draw(st.booleans()))
    cut = draw(st.sampled_from(["none", "delete", "insert"]))
    at = draw(st.integers(0, len(text)))
    if cut == "delete" and at < len(text):
        text = text[:at] + text[at + 1:]
    elif cut == "insert":
        text = text[:at] + draw(st.sampled_from(list(',{}[]":\\ \x01'))) + text[at:]
    return text


def python_verdict(text: str) -> str:
    """What planqk.json means to Python's json (RFC 8259: NaN/Infinity are not JSON)."""
    def no_constant(name: str) -> None:
        raise ValueError(name)
    try:
        config = json.loads(text, parse_constant=no_constant)
    except ValueError:
        return "invalid"
    if not isinstance(config, dict):
        return "not an object"
    runtime = config.get("runtime", "")
    return f"runtime {runtime}" if isinstance(runtime, str) else "runtime not a string"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=planqk_texts())
def test_the_bash_json_reader_agrees_with_python(text):
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "app"
        app.mkdir()
        (app / "planqk.json").write_text(text, encoding="utf-8")
        result = run_detect(app, Path(tmp), path="/usr/bin:/bin")
    verdict = python_verdict(text)
    if verdict == "invalid":
        assert result.returncode == 100 and "planqk.json: is not valid JSON: " in result.stderr, result.output
    elif verdict == "not an object":
        assert "planqk.json: must be a JSON object" in result.stderr, result.output
    elif verdict == "runtime not a string":
        assert "field 'runtime' must be a string" in result.stderr, result.output
    elif verdict in ("runtime PYTHON_TEMPLATE", "runtime "):
        assert result.returncode == 0, result.output
        assert "checked with bash)" in result.stdout
    else:
        assert result.returncode == 100 and f"field 'runtime' is '{verdict[len('runtime '):]}'" in result.stderr, \
            result.output


def test_a_missing_runtime_field_is_taken_as_python_template(tmp_path, detect):
    app = tmp_path / "app"
    app.mkdir()
    (app / "planqk.json").write_text('{"name": "svc"}')
    assert "planqk.json has no 'runtime' field: building it as a PYTHON_TEMPLATE service" in detect(app).stdout


def test_the_plan_path_may_come_as_the_second_argument_only(fixture_app, tmp_path):
    app, plan = fixture_app("planqk-pip"), tmp_path / "plan.toml"
    proc = subprocess.run([str(BUILDPACK / "bin" / "detect"), str(tmp_path), str(plan)], cwd=app,
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert tomllib.loads(plan.read_text()) == PLAN


def test_without_any_plan_path_detect_errors(fixture_app):
    proc = subprocess.run([str(BUILDPACK / "bin" / "detect")], cwd=fixture_app("planqk-pip"),
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "No build plan path" in proc.stderr


# ------------------------------------------------------------------ in PlanQK's builder groups

def paketo_plan(*, provides: tuple[str, ...] = (), requires: tuple[str, ...] = (), needs: str = "") -> str:
    """A bin/detect body (Buildpack API 0.7: the plan path is $2) writing the plan of a Paketo buildpack
    (the plan names of paketo-buildpacks/python's buildpacks)."""
    body = f'[[ -e {needs} ]] || exit 100\n' if needs else ""
    toml = "".join(f'[[provides]]\nname = "{p}"\n' for p in provides)
    toml += "".join(f'[[requires]]\nname = "{r}"\n[requires.metadata]\nbuild = true\n' for r in requires)
    return body + f"cat >> \"$2\" <<'TOML'\n{toml}TOML\n"


PYTHON_START = '''
for trigger in environment.yml requirements.txt package-list.txt pyproject.toml *.py; do
  [[ -e $trigger ]] && found=1
done
[[ -n ${found:-} ]] || exit 100
cat >> "$2" <<'TOML'
[[requires]]
name = "cpython"
[requires.metadata]
launch = true
[[requires]]
name = "site-packages"
[requires.metadata]
launch = true
[[or]]
[[or.requires]]
name = "conda-environment"
[or.requires.metadata]
launch = true
[[or]]
[[or.requires]]
name = "cpython"
[or.requires.metadata]
launch = true
TOML
'''
PAKETO = {  # id: (version, detect body)
    "paketo-buildpacks/cpython": ("1.11.0", paketo_plan(provides=("cpython",))),
    "paketo-buildpacks/pip": ("0.20.0", paketo_plan(provides=("pip",), requires=("cpython",))),
    "paketo-buildpacks/pip-install": ("0.6.1", paketo_plan(provides=("site-packages",), requires=("cpython", "pip"),
                                                           needs="requirements.txt")),
    "paketo-buildpacks/pipenv": ("1.20.0", paketo_plan(provides=("pipenv",), requires=("pip", "cpython"))),
    "paketo-buildpacks/pipenv-install": ("0.6.19", paketo_plan(provides=("site-packages",),
                                                               requires=("cpython", "pipenv"), needs="Pipfile")),
    "paketo-buildpacks/miniconda": ("0.9.0", paketo_plan(provides=("conda",))),
    "paketo-buildpacks/conda-env-update": ("0.7.13", paketo_plan(provides=("conda-environment",), requires=("conda",),
                                                                 needs="environment.yml")),
    "paketo-buildpacks/python-start": ("0.14.15", PYTHON_START),
}
JOB_TEMPLATE = "planqk-buildpacks/job-template"
GROUPS = {  # PlanQK's planqk-base/builder.toml without its optional buildpacks (PlanQK/planqk-buildpacks)
    "pipenv": ["cpython", "pip", "pipenv", "pipenv-install", "python-start"],
    "pip": ["cpython", "pip", "pip-install", "python-start"],
    "conda": ["miniconda", "conda-env-update", "python-start"],
}


@pytest.fixture
def planqk_builder(bps):
    """The buildpacks dir and the order of PlanQK's builder: Paketo doubles plus the real job-template."""
    for bp_id, (version, body) in PAKETO.items():
        bps(bp_id, version, api="0.7", detect=body)
    version = tomllib.loads((BUILDPACK / "buildpack.toml").read_text())["buildpack"]["version"]
    home = bps.root / JOB_TEMPLATE.replace("/", "_")
    home.mkdir()
    (home / version).symlink_to(BUILDPACK)

    def order(groups: list[list[str]]) -> Path:
        return bps.order([[(f"paketo-buildpacks/{n}", PAKETO[f"paketo-buildpacks/{n}"][0]) for n in group]
                          + [(JOB_TEMPLATE, version)] for group in groups])
    return bps.root, order


def lifecycle_detect(app: Path, buildpacks: Path, order: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess,
                                                                                      Path]:
    layers = tmp_path / "layers"
    layers.mkdir(exist_ok=True)
    (tmp_path / "platform").mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "cnbsim.cli", "lifecycle", "detector", "-app", str(app),
                           "-buildpacks", str(buildpacks), "-order", str(order), "-layers", str(layers),
                           "-platform", str(tmp_path / "platform"), "-log-level", "debug"],
                          env={"PATH": "/usr/bin:/bin", "CNB_PLATFORM_API": "0.15"}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    return proc, layers


@pytest.mark.parametrize("name, group", [("planqk-pipenv", "pipenv"), ("planqk-pip", "pip"), ("planqk-conda", "conda"),
                                         ("planqk-pip-and-conda", "pip"), ("planqk-shadow-app", "pip")])
def test_the_plan_resolves_in_the_planqk_builder_group_of_the_app(planqk_builder, fixture_app, tmp_path, name, group):
    buildpacks, order = planqk_builder
    proc, layers = lifecycle_detect(fixture_app(name), buildpacks, order(list(GROUPS.values())), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = [bp["id"] for bp in tomllib.loads((layers / "group.toml").read_text())["group"]]
    assert ids == [f"paketo-buildpacks/{n}" for n in GROUPS[group]] + [JOB_TEMPLATE]
    python = "conda-environment" if group == "conda" else "cpython"
    entries = tomllib.loads((layers / "plan.toml").read_text())["entries"]
    requirers = next(e["requires"] for e in entries if e["requires"][0]["name"] == python)
    assert {"name": python, "metadata": {"launch": True}} in requirers


@pytest.mark.parametrize("name", ["planqk-stdlib", "planqk-poetry", "plain-python"])
def test_apps_no_planqk_group_takes_fail_detection(planqk_builder, fixture_app, tmp_path, name):
    buildpacks, order = planqk_builder
    proc, _ = lifecycle_detect(fixture_app(name), buildpacks, order(list(GROUPS.values())), tmp_path)
    assert proc.returncode == 20, proc.stdout + proc.stderr


def test_the_job_template_alone_does_not_pass_because_it_needs_a_python(planqk_builder, fixture_app, tmp_path):
    buildpacks, order = planqk_builder
    proc, _ = lifecycle_detect(fixture_app("planqk-pip"), buildpacks, order([[]]), tmp_path)
    assert proc.returncode == 20, proc.stdout + proc.stderr
    assert re.search(rf"fail: {JOB_TEMPLATE}@\S+ requires cpython\n.*\nfail: {JOB_TEMPLATE}@\S+ requires conda-environment",
                     proc.stdout)
