"""The job-template runtime with a typed `run()`: each input bound to its parameter's annotation as
PlanQK's v2 runtime binds it, the v2 input layout (one file per parameter), the v2 output file,
and validation errors that name the parameter and the field. Untyped functions keep the
job-template's call (test_job_template_runtime.py)."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

MARKER = "PlanQK:Job:MultilineResult"

PLAIN = {"BASE64_ENCODED": "false", "ENTRY_POINT": "src.program:run"}
DATACLASSES = '''
from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class InputData:
    n_coin_tosses: int
    labels: List[str] = field(default_factory=lambda: ["heads", "tails"])


@dataclass
class InputParams:
    seed: int = 0
    note: Optional[str] = None
'''


def mount(project: Path, **inputs: object) -> None:
    """The job-template layout: <input root>/<name>.json, as `-v input:/var/input` mounts it."""
    root = project.parent / "var-input"
    root.mkdir(exist_ok=True)
    for name, value in inputs.items():
        (root / f"{name}.json").write_text(json.dumps(value))


def v2_inputs(project: Path, **files: str) -> dict[str, str]:
    """PlanQK's v2 layout: one file per parameter in INPUT_DIRECTORY (file names as keys, texts as values)."""
    directory = project.parent / "var-runtime" / "input"
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return {"INPUT_DIRECTORY": str(directory)}


def v2_output(project: Path) -> Path:
    directory = project.parent / "var-runtime" / "output"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# ---------------------------------------------------------------------------------- binding

def test_dataclass_parameters_are_built_from_the_job_template_inputs(project, run_job):
    app = project(DATACLASSES + "\n\ndef run(data: InputData, params: InputParams):\n"
                                "    return {'data': repr(data), 'params': repr(params)}\n")
    mount(app, data={"n_coin_tosses": 3}, params={"seed": 7, "unknown": "ignored"})
    run = run_job(app, env=PLAIN)
    assert run.returncode == 0, run.output
    assert run.block == (True, {"data": "InputData(n_coin_tosses=3, labels=['heads', 'tails'])",
                                "params": "InputParams(seed=7, note=None)"})


def test_only_the_functions_own_parameters_are_passed(project, run_job):
    app = project("def run(data: dict):\n    return sorted(data)\n")
    mount(app, data={"b": 1, "a": 2}, params={"ignored": True})
    run = run_job(app, env=PLAIN)
    assert run.returncode == 0, run.output            # the job-template's run(data=, params=) would fail here
    assert run.block == (True, ["a", "b"])


def test_an_untyped_function_still_gets_data_and_params_and_kwargs_gets_both(project, run_job):
    app = project("def run(**kwargs):\n    return kwargs\n")
    mount(app, data={"x": 1})
    run = run_job(app, env=PLAIN)
    assert run.block == (True, {"data": {"x": 1}, "params": {}})
    assert "Result type is not one of ResultResponse or ErrorResponse: dict" in run.stdout


def test_a_typed_function_that_declares_its_result_gets_no_result_type_warning(project, run_job):
    app = project("def run(data: dict, params: dict) -> dict:\n    return {'n': len(data)}\n")
    run = run_job(app, env=PLAIN)
    assert run.block == (True, {"n": 0})
    assert "Result type is not one of" not in run.stdout


def test_v2_files_are_bound_by_name_with_defaults_optional_and_scalar_conversion(project, run_job):
    app = project('''
from typing import Dict, List, Optional
def run(values: List[int], shots: int, ratio: float, exact: bool, name: str,
        weights: Optional[Dict[str, float]] = None, label: Optional[str] = None, rounds: int = 3):
    return {"values": values, "shots": shots, "ratio": ratio, "exact": exact, "name": name,
            "weights": weights, "label": label, "rounds": rounds}
''')
    env = v2_inputs(app, **{"values.json": "[1, 2, 3]", "shots.json": "25\n", "ratio.json": "0.5",
                            "exact.json": "true", "name.txt": "Alice\n", "weights.json": '{"a": 1}',
                            "unrelated.json": '{"not": "a parameter"}'})
    run = run_job(app, env={**PLAIN, **env})
    assert run.returncode == 0, run.output
    assert run.block == (True, {"values": [1, 2, 3], "shots": 25, "ratio": 0.5, "exact": True,
                                "name": "Alice\n",            # a str parameter takes the file's text as it is
                                "weights": {"a": 1.0}, "label": None, "rounds": 3})
    assert f"Using the inputs in {env['INPUT_DIRECTORY']} (one file per parameter)" in run.stdout


def test_the_v2_layout_wins_when_its_directory_exists_also_for_an_untyped_function(project, run_job):
    app = project("def run(data=None, params=None):\n    return {'data': data, 'params': params}\n")
    mount(app, data={"from": "/var/input"}, params={"from": "/var/input"})
    env = v2_inputs(app, **{"data.json": '{"from": "v2"}'})
    run = run_job(app, env={**PLAIN, **env})
    assert run.block == (True, {"data": {"from": "v2"}, "params": {}})


@pytest.mark.parametrize("text, expected", [
    ("2024-05-01", "date 2024-05-01"), ('"2024-05-01"', "date 2024-05-01")])
def test_a_v2_file_need_not_be_json_for_a_type_read_from_a_string(project, run_job, text, expected):
    app = project("import datetime\ndef run(day: datetime.date):\n    return f'date {day.isoformat()}'\n")
    run = run_job(app, env={**PLAIN, **v2_inputs(app, **{"day.json": text})})
    assert run.block == (True, expected), run.output


# ---------------------------------------------------------------------------------- validation errors

@pytest.mark.parametrize("data, message", [
    ({"n_coin_tosses": "many"}, "field 'n_coin_tosses': expected an integer, got \"many\""),
    ({"n_coin_tosses": 2, "labels": ["up", 3]}, "field 'labels.1': expected a string, got 3"),
    ({}, "field 'n_coin_tosses': field required"),
    ([1, 2], "expected a JSON object for InputData, got [1, 2]"),
])
def test_an_input_that_does_not_fit_names_the_parameter_and_the_field_and_exits_1(project, run_job, data, message):
    app = project(DATACLASSES + "\n\ndef run(data: InputData, params: InputParams):\n    return 'ran'\n")
    mount(app, data=data)
    run = run_job(app, env=PLAIN)
    assert run.returncode == 1
    root = app.parent / "var-input"
    assert (f" - Invalid input: parameter 'data' (InputData) from file '{root}/data.json': {message}\n"
            in run.stdout), run.stdout
    assert MARKER not in run.stdout and run.stderr == ""      # no result, no traceback


def test_every_problem_of_an_input_is_reported_in_one_line(project, run_job):
    app = project(DATACLASSES + "\n\ndef run(data: InputData):\n    return 'ran'\n")
    env = v2_inputs(app, **{"data.json": '{"n_coin_tosses": 1.5, "labels": [null, "x"]}'})
    run = run_job(app, env={**PLAIN, **env})
    assert run.returncode == 1
    errors = [line for line in run.stdout.splitlines() if "| ERROR" in line]
    assert len(errors) == 1
    assert errors[0].endswith("field 'n_coin_tosses': expected an integer, got 1.5; "
                              "field 'labels.0': expected a string, got null")


def test_a_missing_required_input_names_the_parameter(project, run_job):
    app = project("def run(data: dict, shots: int):\n    return shots\n")
    run = run_job(app, env={**PLAIN, **v2_inputs(app, **{"data.json": "{}"})})
    assert run.returncode == 1
    assert ("Invalid input: no input for parameter 'shots' (int): it has no default (give an input named "
            "'shots', or give the parameter a default)") in run.stdout


def test_a_v2_file_that_is_not_json_is_named(project, run_job):
    app = project("def run(data: dict):\n    return data\n")
    env = v2_inputs(app, **{"data.json": "{oops"})
    run = run_job(app, env={**PLAIN, **env})
    assert run.returncode == 1
    assert (f"Invalid input: input from file '{env['INPUT_DIRECTORY']}/data.json' is not valid JSON: "
            "Expecting property name enclosed in double quotes at line 1 column 2") in run.stdout


# ---------------------------------------------------------------------------------- the v2 output file

@pytest.mark.parametrize("expression, name, text", [
    ("{'b': 1, 'a': [1, 2]}", "output.json", '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}'),
    ("'hello'", "output.txt", '"hello"'),
    ("42", "output.txt", "42"),
    ("Point(1, 2)", "output.json", '{\n  "x": 1,\n  "y": 2\n}'),
])
def test_the_result_is_also_written_to_the_output_directory_when_it_exists(project, run_job, expression, name, text):
    app = project("from dataclasses import dataclass\n@dataclass\nclass Point:\n    x: int\n    y: int\n"
                  f"def run(data: dict):\n    return {expression}\n")
    out = v2_output(app)
    run = run_job(app, env=PLAIN)
    assert run.returncode == 0, run.output
    assert [p.name for p in out.iterdir()] == [name]
    assert (out / name).read_text() == text                     # keys in their order, as the v2 runtime writes
    assert run.block[0] and f"Result written to {out / name}" in run.stdout   # and the block, as always


def test_no_output_file_for_none_or_without_the_directory(project, run_job):
    app = project("def run(data: dict):\n    return None\n")
    out = v2_output(app)
    assert run_job(app, env=PLAIN).returncode == 0
    assert list(out.iterdir()) == []
    app2 = project("def run(data: dict):\n    return 1\n")
    out.rmdir()
    assert run_job(app2, env=PLAIN).returncode == 0
    assert not out.exists()


def test_typed_binding_runs_on_python_3_8(project, run_job, python38):
    app = project(DATACLASSES + "\n\ndef run(data: InputData, params: Optional[InputParams] = None):\n"
                                "    return [data.n_coin_tosses, params]\n")
    run = run_job(app, env={**PLAIN, **v2_inputs(app, **{"data.json": '{"n_coin_tosses": 4}'})}, python=python38)
    assert "Python 3.8" in run.stdout
    assert run.block == (True, [4, None]), run.output


# ---------------------------------------------------------------------------------- pydantic, v1 and v2

PYDANTIC = '''
from typing import Dict, List, Optional
from pydantic import BaseModel


class InputData(BaseModel):
    n_coin_tosses: int
    labels: List[str] = ["heads", "tails"]


class InputParams(BaseModel):
    seed: int = 0
    note: Optional[str] = None


class Result(BaseModel):
    counts: Dict[str, int]
    note: Optional[str] = None


def run(data: InputData, params: InputParams) -> Result:
    return Result(counts={data.labels[0]: data.n_coin_tosses}, note=params.note)
'''


@pytest.fixture(scope="session", params=["pydantic<2", "pydantic>=2"])
def pydantic_python(request, tmp_path_factory) -> str:
    """A Python with pydantic 1 or 2 installed from the package index into a new venv."""
    if not request.config.getoption("--cnb-registry", default=False):
        pytest.skip("needs the package index to install pydantic (run with --cnb-registry)")
    root = tmp_path_factory.mktemp("pydantic-venv")
    venv.create(root, with_pip=True)
    python = str(root / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", request.param], capture_output=True,
                             text=True, timeout=300)
    if install.returncode != 0:
        pytest.skip(f"cannot install {request.param}: {install.stderr.strip().splitlines()[-1:]}")
    return python


@pytest.mark.registry
def test_pydantic_models_are_validated_and_the_result_dumped(project, run_job, pydantic_python):
    app = project(PYDANTIC)
    out = v2_output(app)
    mount(app, data={"n_coin_tosses": "5"}, params={"note": "lax ints"})
    run = run_job(app, env=PLAIN, python=pydantic_python)
    assert run.returncode == 0, run.output
    assert run.block == (True, {"counts": {"heads": 5}, "note": "lax ints"})
    assert json.loads((out / "output.json").read_text()) == {"counts": {"heads": 5}, "note": "lax ints"}


@pytest.mark.registry
def test_pydantic_validation_errors_name_the_parameter_and_the_field(project, run_job, pydantic_python):
    app = project(PYDANTIC)
    env = v2_inputs(app, **{"data.json": '{"labels": ["a", {"x": 1}]}'})
    run = run_job(app, env={**PLAIN, **env}, python=pydantic_python)
    assert run.returncode == 1
    line = next(line for line in run.stdout.splitlines() if "Invalid input" in line)
    assert f"parameter 'data' (InputData) from file '{env['INPUT_DIRECTORY']}/data.json': field 'n_coin_tosses': " \
           in line
    assert "field 'labels.1': " in line
    assert run.stderr == ""


@pytest.mark.registry
def test_a_missing_pydantic_input_is_an_empty_model(project, run_job, pydantic_python):
    app = project(PYDANTIC)
    env = v2_inputs(app, **{"data.json": '{"n_coin_tosses": 2}'})     # no params.json: InputParams()
    run = run_job(app, env={**PLAIN, **env}, python=pydantic_python)
    assert run.block == (True, {"counts": {"heads": 2}, "note": None}), run.output
