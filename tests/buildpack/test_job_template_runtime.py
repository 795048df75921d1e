"""The job-template runtime (buildpack/runtime), run as a real process through its launcher:
the contract of planqk-commons planqk/commons/runtime — entry point, inputs, base64, call, result block,
exit codes and logging."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

MARKER = "PlanQK:Job:MultilineResult"
RUNTIME_PYTHON = Path(__file__).resolve().parents[2] / "buildpack" / "runtime" / "python"
PLAIN = {"BASE64_ENCODED": "false"}
ECHO = "def run(data=None, params=None):\n    return {'data': data, 'params': params}\n"
STARTER = '''
class ResultResponse:
    def __init__(self, result=None, metadata=None):
        self.result = result
        self.metadata = metadata


def run(data=None, params=None):
    values = data.get("values", [])
    if params.get("round_off", False):
        values = [round(v) for v in values]
    return ResultResponse(result={"sum": sum(values)})
'''
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\| "
                      r"[\w.]+:\w+:\d+ - ")


def b64(value: object, *, urlsafe: bool = False) -> str:
    raw = json.dumps(value).encode()
    return (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()


def write_inputs(project: Path, data: object, params: object) -> None:
    """The inputs mounted where the runtime looks (run_job's input root, as `-v input:/var/input` does)."""
    root = project.parent / "var-input"
    root.mkdir(exist_ok=True)
    (root / "data.json").write_text(json.dumps(data))
    (root / "params.json").write_text(json.dumps(params))


# ---------------------------------------------------------------------------------- golden case

def test_golden_case_python_starter_sum_is_42(project, run_job):
    app = project(STARTER)
    write_inputs(app, {"values": [1, 5.2, 20, 7, 9.4]}, {"round_off": True})
    run = run_job(app, env={**PLAIN, "ENTRY_POINT": "src.program:run"})
    assert run.returncode == 0, run.output
    assert run.stdout.endswith(f'\n\n{MARKER}\n{{\n  "metadata": null,\n  "result": {{\n    "sum": 42\n  }}\n}}\n{MARKER}\n')
    assert run.stderr == ""


def test_golden_case_without_round_off_sums_to_42_6(project, run_job):
    app = project(STARTER)
    write_inputs(app, {"values": [1, 5.2, 20, 7, 9.4]}, {})
    run = run_job(app, env={**PLAIN, "ENTRY_POINT": "src.program:run"})
    assert run.block == (True, {"metadata": None, "result": {"sum": 42.6}})


# ---------------------------------------------------------------------------------- entry point

def test_default_entry_point_is_user_code_src_program_run(tmp_path, run_job):
    app = tmp_path / "root"
    (app / "user_code" / "src").mkdir(parents=True)
    (app / "user_code" / "src" / "program.py").write_text("def run(data, params):\n    return 'default'\n")
    run = run_job(app)
    assert run.block == (True, "default"), run.output


@pytest.mark.parametrize("entry_point", ["src.program:run", "src/program.py:run", "src/program:run",
                                         "./src/program.py:run", "src\\program.py:run", " src.program:run "])
def test_entry_point_forms_all_reach_the_function(project, run_job, entry_point):
    app = project("def run(data=None, params=None):\n    return 'reached'\n")
    run = run_job(app, env={"ENTRY_POINT": entry_point})
    assert run.returncode == 0, run.output
    assert run.block == (True, "reached")


def test_entry_point_directory_goes_first_on_sys_path(project, run_job):
    app = project(ECHO, {"jobs/helpers.py": "NAME = 'from jobs/'\n",
                         "jobs/job.py": "import helpers\ndef run(data, params):\n    return helpers.NAME\n",
                         "helpers.py": "NAME = 'from the root'\n"})
    run = run_job(app, env={"ENTRY_POINT": "jobs/job.py:run"})
    assert run.block == (True, "from jobs/")


def test_entrypoint_alias_is_used_when_entry_point_is_unset(project, run_job):
    app = project(ECHO, {"src/other.py": "def go(data, params):\n    return 'alias'\n"})
    run = run_job(app, env={"ENTRYPOINT": "src.other:go"})
    assert run.block == (True, "alias")
    assert "Entry point: src.other:go (ENTRYPOINT)" in run.stdout


def test_entry_point_wins_over_its_alias_with_a_warning(project, run_job):
    app = project("def run(data, params):\n    return 'primary'\n")
    run = run_job(app, env={"ENTRY_POINT": "src.program:run", "ENTRYPOINT": "src.other:go"})
    assert run.block == (True, "primary")
    assert "ENTRYPOINT='src.other:go' is ignored because ENTRY_POINT='src.program:run' is set" in run.stdout


def test_entry_point_without_function_runs_the_module_as_main(project, run_job):
    app = project(ECHO, {"src/job.py": "if __name__ == '__main__':\n    print('ran as __main__')\n"})
    run = run_job(app, env={"ENTRY_POINT": "src.job"})
    assert run.returncode == 0, run.output
    assert "ran as __main__" in run.stdout
    assert MARKER not in run.stdout
    assert run.stdout.endswith("Result type is not one of ResultResponse or ErrorResponse: NoneType\n\n")


@pytest.mark.parametrize("entry_point, message", [
    ("src.program:run:x", "cannot parse entry point 'src.program:run:x': expected [directory/]module[.py][:function]"),
    ("src.program:", "cannot parse entry point 'src.program:': '' is not a Python function name"),
    ("src-x.program:run", "cannot parse entry point 'src-x.program:run': 'src-x.program' is not a Python module name"),
    ("missing/program.py:run", "directory 'missing' of entry point 'missing/program.py:run' not found"),
    ("src.nothere:run", "module 'src.nothere' of entry point 'src.nothere:run' not found: expected "
                        "src/nothere.py or src/nothere/__init__.py"),
    ("src.program:go", "module 'src.program' ("),
])
def test_unusable_entry_point_fails_with_a_clear_message_and_no_traceback(project, run_job, entry_point, message):
    app = project(ECHO)
    run = run_job(app, env={"ENTRY_POINT": entry_point})
    assert run.returncode == 1
    assert f"Error executing user code: {message}" in run.stdout
    assert "Traceback" not in run.output
    assert MARKER not in run.stdout


def test_missing_function_says_how_to_define_it(project, run_job):
    run = run_job(project(ECHO), env={"ENTRY_POINT": "src.program:go"})
    assert "has no attribute 'go': define `def go(data=None, params=None)` there" in run.stdout


def test_a_missing_dependency_of_the_user_code_is_a_user_error_with_traceback(project, run_job):
    app = project("import not_installed_package\n\ndef run(data, params):\n    return 1\n")
    run = run_job(app, env={"ENTRY_POINT": "src.program:run"})
    assert run.returncode == 1
    assert "Error executing user code: No module named 'not_installed_package'" in run.stdout
    assert "Traceback" in run.stderr and "src/program.py" in run.stderr


def test_run_gets_data_and_params_as_keyword_arguments(project, run_job):
    app = project("def run(**kwargs):\n    return sorted(kwargs)\n")
    run = run_job(app, env={"ENTRY_POINT": "src.program:run"})
    assert run.block == (True, ["data", "params"])


def test_run_without_a_params_parameter_fails_as_on_planqk(project, run_job):
    app = project("def run(data):\n    return data\n")
    run = run_job(app, env={"ENTRY_POINT": "src.program:run"})
    assert run.returncode == 1
    assert "Error executing user code: run() got an unexpected keyword argument 'params'" in run.stdout


# ---------------------------------------------------------------------------------- shadowing

def test_a_user_app_module_neither_shadows_the_runtime_nor_is_hidden_from_the_user_code(project, run_job):
    app = project("import app\n\ndef run(data, params):\n    return app.WHO\n",
                  {"app.py": "print('user app.py imported')\nWHO = 'the user app module'\n"
                             "if __name__ == '__main__':\n    raise SystemExit('user app.py ran as main')\n"})
    run = run_job(app, env={"ENTRY_POINT": "src.program:run"})
    assert run.returncode == 0, run.output
    assert run.block == (True, "the user app module")


def test_a_user_app_package_does_not_shadow_the_runtime(project, run_job):
    app = project(ECHO, {"app/__init__.py": "", "app/__main__.py": "raise SystemExit('user app/ ran')\n"})
    run = run_job(app, env={"ENTRY_POINT": "src.program:run", **PLAIN})
    assert run.returncode == 0, run.output
    assert run.block == (True, {"data": {}, "params": {}})


def test_python_dash_m_app_runs_the_runtime_where_nothing_else_is_called_app(project):
    app = project(ECHO)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(RUNTIME_PYTHON),
           "PYTHONDONTWRITEBYTECODE": "1", "ENTRY_POINT": "src.program:run", "PLANQK_INPUT_ROOT": str(app / "none")}
    proc = subprocess.run([sys.executable, "-m", "app"], cwd=app, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert MARKER in proc.stdout


def test_python_dash_m_app_in_the_app_dir_is_shadowed_which_is_why_web_starts_in_the_runtime_dir(project):
    app = project(ECHO, {"app.py": "print('the user app.py ran')\n"})
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(RUNTIME_PYTHON),
           "PYTHONDONTWRITEBYTECODE": "1", "ENTRY_POINT": "src.program:run"}
    proc = subprocess.run([sys.executable, "-m", "app"], cwd=app, env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout == "the user app.py ran\n"


# ---------------------------------------------------------------------------------- input sources

SOURCES = ["X_FILE", "root/x.json", "root/x/x.json", "X_VALUE", "INPUT_X"]


def place(source: str, name: str, value: object, app: Path, root: Path, env: dict[str, str]) -> None:
    text = json.dumps(value)
    if source == "X_FILE":
        (app / "custom").mkdir(exist_ok=True)
        (app / "custom" / f"{name}.json").write_text(text)
        env[f"{name.upper()}_FILE"] = f"custom/{name}.json"          # relative to the working dir
    elif source in ("X_VALUE", "INPUT_X"):
        env[source.replace("X", name.upper())] = text
    else:
        path = root / source.replace("root/", "").replace("x", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("first", range(len(SOURCES)), ids=SOURCES)
def test_each_input_comes_from_the_first_source_that_exists(project, run_job, tmp_path, first):
    app, root, env = project(ECHO), tmp_path / "var-input", {**PLAIN, "ENTRY_POINT": "src.program:run"}
    for source in SOURCES[first:]:
        place(source, "data", {"data from": source}, app, root, env)
        place(source, "params", {"params from": source}, app, root, env)
    run = run_job(app, env=env)
    assert run.block == (True, {"data": {"data from": SOURCES[first]}, "params": {"params from": SOURCES[first]}})
    assert ("DEPRECATED: INPUT_DATA is deprecated, use DATA_VALUE instead" in run.stdout) == (SOURCES[first] == "INPUT_X")


def test_the_projects_own_input_dir_is_not_read_and_the_warning_says_how_to_give_it(project, run_job):
    app = project(ECHO, {"input/data.json": '{"local": true}', "input/params.json": '{"local": true}'})
    run = run_job(app, env={**PLAIN, "ENTRY_POINT": "src.program:run"})
    assert run.block == (True, {"data": {}, "params": {}})
    assert ("working with empty dict; the project's input/params.json is not read (only given inputs are: "
            f"mount it at {app.parent / 'var-input'}/params.json or set PARAMS_FILE=input/params.json)") in run.stdout
    run = run_job(app, env={**PLAIN, "ENTRY_POINT": "src.program:run", "DATA_FILE": "input/data.json"})
    assert run.block == (True, {"data": {"local": True}, "params": {}})


def test_no_input_at_all_gives_empty_dicts_with_a_warning(project, run_job):
    run = run_job(project(ECHO), env={"ENTRY_POINT": "src.program:run"})
    assert run.returncode == 0
    assert run.block == (True, {"data": {}, "params": {}})
    assert "No input data found (looked at" in run.stdout and "working with empty dict" in run.stdout


def test_the_input_root_defaults_to_var_input(project, run_job):
    run = run_job(project(ECHO), env={"ENTRY_POINT": "src.program:run", "PLANQK_INPUT_ROOT": ""})
    assert "/var/input/data.json, /var/input/data/data.json" in run.stdout


def test_a_data_file_that_is_not_a_file_is_skipped_with_a_warning(project, run_job):
    app = project(ECHO)
    write_inputs(app, {"from": "input/"}, {})
    run = run_job(app, env={**PLAIN, "ENTRY_POINT": "src.program:run", "DATA_FILE": "does-not-exist.json"})
    assert run.block[1]["data"] == {"from": "input/"}
    assert "DATA_FILE='does-not-exist.json' is not a file; looking for data elsewhere" in run.stdout


def test_an_absolute_data_file_is_used_as_is(project, run_job, tmp_path):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"absolute": true}')
    run = run_job(project(ECHO), env={**PLAIN, "ENTRY_POINT": "src.program:run", "DATA_FILE": str(elsewhere)})
    assert run.block[1]["data"] == {"absolute": True}
    assert f"Using input data from file '{elsewhere}'" in run.stdout


def test_a_source_that_cannot_be_decoded_does_not_fall_through_to_the_next(project, run_job):
    run = run_job(project(ECHO), env={"ENTRY_POINT": "src.program:run", "DATA_VALUE": "%%%not base64",
                                      "INPUT_DATA": b64({"later": True})})
    assert run.returncode == 0
    assert run.block == (True, {"data": {}, "params": {}})
    assert "ERROR" in run.stdout and "Input data from environment variable 'DATA_VALUE' is not" in run.stdout


@pytest.mark.parametrize("value, expected", [("null", {}), ("[1, 2]", [1, 2]), ('"text"', "text"), ("7", 7)])
def test_json_values_are_passed_unchanged_except_null(project, run_job, value, expected):
    run = run_job(project(ECHO), env={**PLAIN, "ENTRY_POINT": "src.program:run", "DATA_VALUE": value})
    assert run.block[1]["data"] == expected


# ---------------------------------------------------------------------------------- base64

def test_inputs_are_base64_by_default_in_files_and_values(project, run_job, tmp_path):
    app = project(ECHO)
    (tmp_path / "var-input").mkdir()
    (tmp_path / "var-input" / "data.json").write_text(b64({"from": "file"}))
    run = run_job(app, env={"ENTRY_POINT": "src.program:run", "PARAMS_VALUE": b64({"from": "value"})})
    assert run.block == (True, {"data": {"from": "file"}, "params": {"from": "value"}})
    assert "Input data: base64 encoded = True" in run.stdout


def test_both_base64_alphabets_are_accepted(project, run_job):
    value = {"s": "~~~???>>>"}
    standard, urlsafe = b64(value), b64(value, urlsafe=True)
    assert set("+/") & set(standard) and set("-_") & set(urlsafe)
    run = run_job(project(ECHO), env={"ENTRY_POINT": "src.program:run", "DATA_VALUE": standard,
                                      "PARAMS_VALUE": urlsafe})
    assert run.block == (True, {"data": value, "params": value})


def test_utf8_text_survives_base64(project, run_job):
    value = {"text": "Grüße, Quanten-Welt"}
    encoded = base64.b64encode(json.dumps(value, ensure_ascii=False).encode()).decode()
    run = run_job(project(ECHO), env={"ENTRY_POINT": "src.program:run", "DATA_VALUE": encoded})
    assert run.block[1]["data"] == value


@pytest.mark.parametrize("env, data_b64, params_b64", [
    ({}, True, True),
    ({"BASE64_ENCODED": "false"}, False, False),
    ({"BASE64_ENCODED": "0"}, False, False),
    ({"BASE64_ENCODED": ""}, False, False),
    ({"BASE64_ENCODED": "TRUE"}, True, True),
    ({"BASE64_ENCODED": "1", "DATA_BASE64_ENCODED": "Yes"}, True, True),
    ({"DATA_BASE64_ENCODED": "false"}, False, True),
    ({"PARAMS_BASE64_ENCODED": "no"}, True, False),
    ({"BASE64_ENCODED": "false", "DATA_BASE64_ENCODED": "true"}, False, False),
])
def test_base64_flags_combine_per_input(project, run_job, env, data_b64, params_b64):
    data, params = {"d": 1}, {"p": 2}
    full = {**env, "ENTRY_POINT": "src.program:run",
            "DATA_VALUE": b64(data) if data_b64 else json.dumps(data),
            "PARAMS_VALUE": b64(params) if params_b64 else json.dumps(params)}
    run = run_job(project(ECHO), env=full)
    assert run.block == (True, {"data": data, "params": params}), run.stdout


def test_plain_json_with_base64_on_is_logged_with_a_hint_and_gives_empty_dict(project, run_job):
    app = project(ECHO)
    write_inputs(app, {"values": [1]}, {})
    run = run_job(app, env={"ENTRY_POINT": "src.program:run"})
    assert run.returncode == 0
    assert run.block == (True, {"data": {}, "params": {}})
    assert "(it looks like plain JSON: set BASE64_ENCODED=false); working with empty dict" in run.stdout


def test_base64_without_padding_is_an_error(project, run_job):
    unpadded = b64({"a": 1}).rstrip("=")
    assert unpadded != b64({"a": 1})
    run = run_job(project(ECHO), env={"ENTRY_POINT": "src.program:run", "DATA_VALUE": unpadded})
    assert run.block[1]["data"] == {}
    assert "is not valid base64 (Incorrect padding)" in run.stdout


def test_base64_text_with_base64_off_gets_a_hint(project, run_job):
    run = run_job(project(ECHO), env={**PLAIN, "ENTRY_POINT": "src.program:run", "DATA_VALUE": b64({"a": 1})})
    assert run.block[1]["data"] == {}
    assert "(it looks base64-encoded: set BASE64_ENCODED=true)" in run.stdout


def test_bad_json_is_logged_and_gives_empty_dict(project, run_job):
    app = project(ECHO)
    (app / "input").mkdir()
    (app / "input" / "data.json").write_text('{"values": [1, 2,]}')
    run = run_job(app, env={**PLAIN, "ENTRY_POINT": "src.program:run", "DATA_FILE": "input/data.json"})
    assert run.returncode == 0
    assert run.block[1]["data"] == {}
    # CPython's own words and position differ between versions; the file, a location and the fallback are ours
    assert re.search(r"ERROR .*Input data from file '.*input/data.json' is not valid JSON: [^\n]+ at line 1 "
                     r"column \d+; working with empty dict", run.stdout), run.stdout


def test_a_byte_order_mark_is_named(project, run_job):
    app = project(ECHO)
    (app / "input").mkdir()
    (app / "input" / "data.json").write_bytes(b'\xef\xbb\xbf{"a": 1}')
    run = run_job(app, env={**PLAIN, "ENTRY_POINT": "src.program:run", "DATA_FILE": "input/data.json"})
    assert run.block[1]["data"] == {}
    assert "starts with a UTF-8 byte order mark (BOM); save it as UTF-8 without BOM" in run.stdout


# ---------------------------------------------------------------------------------- results

RESPONSES = '''
class ResultResponse:
    def __init__(self, result=None, metadata=None):
        self.result, self.metadata = result, metadata


class ErrorResponse:
    def __init__(self, code, detail):
        self.code, self.detail = code, detail


class Custom:
    def __init__(self):
        self.b, self.a = 2, {1, }


class Slots:
    __slots__ = ("x",)

    def __str__(self):
        return "slots!"
'''


@pytest.mark.parametrize("expression, exit_code, expected, warned", [
    ("ResultResponse(result={'x': 1}, metadata={'m': True})", 0, {"metadata": {"m": True}, "result": {"x": 1}}, False),
    ("ErrorResponse(code='500', detail='broken')", 1, {"code": "500", "detail": "broken"}, False),
    ("{'b': 1, 'a': [1, 2]}", 0, {"a": [1, 2], "b": 1}, True),
    ("[3, 'x']", 0, [3, "x"], True),
    ("42", 0, 42, True),
    ("'text'", 0, "text", True),
    ("Custom()", 0, {"a": "{1}", "b": 2}, True),
    ("Slots()", 0, "slots!", True),
])
def test_each_kind_of_return_value_is_printed_and_classified(project, run_job, expression, exit_code, expected, warned):
    app = project(RESPONSES + f"\n\ndef run(data, params):\n    return {expression}\n")
    run = run_job(app, env={"ENTRY_POINT": "src.program:run"})
    assert run.returncode == exit_code, run.output
    assert run.block == (True, expected)
    assert ("Result type is not one of ResultResponse or ErrorResponse" in run.stdout) == warned


def test_the_block_is_sorted_and_indented_by_two(project, run_job):
    run = run_job(project("def run(data, params):\n    return {'b': {'d': 1, 'c': 2}, 'a': 0}\n"),
                  env={"ENTRY_POINT": "src.program:run"})
    assert run.stdout.endswith(f'{MARKER}\n{{\n  "a": 0,\n  "b": {{\n    "c": 2,\n    "d": 1\n  }}\n}}\n{MARKER}\n')


def test_non_ascii_is_escaped_and_nan_kept_as_planqk_does(project, run_job):
    run = run_job(project("def run(data, params):\n    return {'t': 'Grüße', 'n': float('nan')}\n"),
                  env={"ENTRY_POINT": "src.program:run"})
    assert '"t": "Gr\\u00fc\\u00dfe"' in run.stdout and '"n": NaN' in run.stdout


def test_none_prints_only_an_empty_line(project, run_job):
    run = run_job(project("def run(data, params):\n    print('work done')\n"), env={"ENTRY_POINT": "src.program:run"})
    assert run.returncode == 0
    assert "work done\n" in run.stdout and MARKER not in run.stdout
    assert run.stdout.endswith(" - Result type is not one of ResultResponse or ErrorResponse: NoneType\n\n")


def test_the_block_comes_after_all_user_output(project, run_job):
    program = ("import logging, sys\n"
               "def run(data, params):\n"
               f"    print('{MARKER}')\n    print('{{\"fake\": true}}')\n    print('{MARKER}')\n"
               "    sys.stdout.write('no newline at the end')\n"
               "    logging.getLogger('user').info('user log line')\n"
               "    return {'real': True}\n")
    run = run_job(project(program), env={"ENTRY_POINT": "src.program:run"})
    assert run.block == (True, {"real": True})
    assert run.stdout.index("user log line") < run.stdout.rindex(MARKER)


def test_an_exception_is_logged_with_the_users_traceback_and_exit_1(project, run_job):
    app = project("def helper():\n    raise ValueError('boom: shots must be positive')\n\n"
                  "def run(data, params):\n    helper()\n")
    run = run_job(app, env={"ENTRY_POINT": "src.program:run"})
    assert run.returncode == 1
    assert re.search(r"\| ERROR +\| .* - Error executing user code: boom: shots must be positive$", run.stdout, re.M)
    assert MARKER not in run.stdout
    assert run.stderr.startswith("Traceback (most recent call last):\n")
    assert "in helper" in run.stderr and run.stderr.rstrip().endswith("ValueError: boom: shots must be positive")
    assert "planqk_job_template" not in run.stderr


def test_a_syntax_error_in_the_users_module_shows_its_file_and_line(project, run_job):
    run = run_job(project("def run(data, params)\n    return 1\n"), env={"ENTRY_POINT": "src.program:run"})
    assert run.returncode == 1
    assert "Error executing user code: " in run.stdout
    assert re.search(r'File ".*src/program.py", line 1\n', run.stderr) and "SyntaxError" in run.stderr
    assert "planqk_job_template" not in run.stderr and "importlib" not in run.stderr


def test_a_result_json_cannot_hold_fails_with_exit_1(project, run_job):
    run = run_job(project("def run(data, params):\n    d = {}\n    d['self'] = d\n    return d\n"),
                  env={"ENTRY_POINT": "src.program:run"})
    assert run.returncode == 1
    assert "Cannot serialize the result of the user code (dict) to JSON: Circular reference detected" in run.stdout
    assert MARKER not in run.stdout


def test_sys_exit_in_the_user_code_is_not_caught(project, run_job):
    run = run_job(project("import sys\n\ndef run(data, params):\n    sys.exit(3)\n"),
                  env={"ENTRY_POINT": "src.program:run"})
    assert run.returncode == 3
    assert MARKER not in run.stdout


# ---------------------------------------------------------------------------------- logging

def test_logs_go_to_stdout_in_loguru_layout_including_the_users(project, run_job):
    app = project("import logging\n\ndef run(data, params):\n    logging.getLogger('svc').info('from the user')\n")
    run = run_job(app, env={"ENTRY_POINT": "src.program:run"})
    log_lines = [line for line in run.stdout.splitlines() if " | " in line]
    assert log_lines and all(LOG_LINE.match(line) for line in log_lines), log_lines
    assert any(line.endswith("| svc:run:4 - from the user") for line in log_lines)
    assert "DEBUG" in run.stdout and "PlanQK job-template runtime 1." in run.stdout
    assert run.stderr == ""


@pytest.mark.parametrize("level, shown, hidden", [
    ("INFO", ["INFO"], ["DEBUG"]),
    ("info", ["INFO"], ["DEBUG"]),
    ("WARNING", ["WARNING"], ["DEBUG", "INFO"]),
    ("ERROR", [], ["DEBUG", "INFO", "WARNING"]),
])
def test_log_level_filters_lines(project, run_job, level, shown, hidden):
    run = run_job(project(ECHO), env={**PLAIN, "ENTRY_POINT": "src.program:run", "LOG_LEVEL": level,
                                      "DATA_VALUE": "{}", "PARAMS_VALUE": "{}"})
    levels = {m.group(1) for m in map(LOG_LINE.match, run.stdout.splitlines()) if m}
    assert set(shown) <= levels and not levels & set(hidden), run.stdout
    assert run.block == (True, {"data": {}, "params": {}})


def test_an_unknown_log_level_is_named_and_debug_is_used(project, run_job):
    run = run_job(project(ECHO), env={"ENTRY_POINT": "src.program:run", "LOG_LEVEL": "chatty"})
    assert "LOG_LEVEL='chatty' is not a log level; using DEBUG" in run.stdout
    assert run.returncode == 0


# ---------------------------------------------------------------------------------- launcher

def test_version_and_help(project, run_job):
    app = project(ECHO)
    assert re.fullmatch(r"planqk-job-template \d+\.\d+\.\d+\n", run_job(app, args=["--version"]).stdout)
    assert "ENTRY_POINT" in run_job(app, args=["--help"]).stdout


def test_unexpected_arguments_are_refused(project, run_job):
    run = run_job(project(ECHO), args=["extra"])
    assert run.returncode == 2
    assert "unexpected arguments ['extra']" in run.stderr


def test_the_runtime_runs_on_python_3_8(project, run_job, python38):
    app = project(STARTER)
    write_inputs(app, {"values": [1, 5.2, 20, 7, 9.4]}, {"round_off": True})
    run = run_job(app, env={**PLAIN, "ENTRY_POINT": "src.program:run"}, python=python38)
    assert "Python 3.8" in run.stdout
    assert run.block == (True, {"metadata": None, "result": {"sum": 42}})
