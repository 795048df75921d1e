"""One job: resolve the entry point, load the inputs, call `run()`, print (and write) the result.

An untyped `run(data=None, params=None)` or `run(**kwargs)` is called with `data=..., params=...`
as the job-template always did; a `run()` with annotated parameters gets its own parameters,
each bound to its type as PlanQK's v2 runtime does (binding.py).

Exit codes (PlanQK's job-template runtime, as planqk-commons' planqk/commons/runtime has it): 0 for a ResultResponse, another value or None; 1 for an
ErrorResponse (after its block is printed), for an exception in the user's code (the line
"Error executing user code: ...", the traceback on stderr, no block), for an input that does
not fit its parameter ("Invalid input: ..." naming the parameter and the field) and for an
unusable entry point. `SystemExit` and `KeyboardInterrupt` from the user's code are not caught.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import runpy
import sys
import traceback
from typing import Any, Dict, List, Mapping, Optional, Tuple

from planqk_job_template import __version__, binding, entrypoint, inputs, logs, output

USAGE = f"""usage: planqk-job-template [--version]

Runs a PlanQK service once, as PlanQK's job-template does: calls the function that
ENTRY_POINT names (default {entrypoint.DEFAULT}) with the inputs `data` and `params` (a typed
function: each of its parameters, bound to its type) and prints the result between two
'{output.MARKER}' lines on stdout.

environment:
  ENTRY_POINT (alias ENTRYPOINT)       [directory/]module[.py][:function]
  DATA_FILE, PARAMS_FILE               input files (then {inputs.DEFAULT_INPUT_ROOT}/data.json,
                                       {inputs.DEFAULT_INPUT_ROOT}/data/data.json, ...)
  DATA_VALUE, PARAMS_VALUE             inputs as values (deprecated: INPUT_DATA, INPUT_PARAMS)
  BASE64_ENCODED                       inputs are base64 (default true; also DATA_/PARAMS_BASE64_ENCODED)
  {inputs.INPUT_ROOT_VAR}                    where the input files are mounted (default {inputs.DEFAULT_INPUT_ROOT})
  {inputs.INPUT_DIRECTORY_VAR}                      v2 layout: one <parameter>.json per input, used when it exists
                                       (default {inputs.DEFAULT_INPUT_DIRECTORY})
  {output.OUTPUT_DIRECTORY_VAR}                     the result is also written there as output.json when it exists
                                       (default {output.DEFAULT_OUTPUT_DIRECTORY})
  LOG_LEVEL                            DEBUG (default), INFO, WARNING, ERROR or CRITICAL
  PLANQK_APP_DIR                       the project dir to run in (default: the working directory)
"""

log = logging.getLogger(__name__)
IMPORT_DIRS = (os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.abspath(importlib.__file__)))


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        print(f"planqk-job-template {__version__}")
        return 0
    if args in (["--help"], ["-h"]):
        print(USAGE, end="")
        return 0
    if args:
        print(f"planqk-job-template: unexpected arguments {args}; the job is configured by "
              f"environment variables\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    app_dir = os.environ.get("PLANQK_APP_DIR") or os.getcwd()
    if app_dir != os.getcwd():
        # `web` starts in the runtime's dir so that `python -m app` is ours; the job runs in the app dir.
        try:
            os.chdir(app_dir)
        except OSError as exc:
            print(f"planqk-job-template: cannot change to the app directory {app_dir} (PLANQK_APP_DIR): "
                  f"{exc.strerror}", file=sys.stderr)
            return 1
    return run_job(os.environ, os.getcwd())


def run_job(env: Mapping[str, str], cwd: str) -> int:
    logs.setup(env.get("LOG_LEVEL"))
    log.debug("PlanQK job-template runtime %s, Python %s", __version__, platform.python_version())
    text, origin, warning = entrypoint.configured(env)
    if warning:
        log.warning("%s", warning)
    log.debug("Entry point: %s (%s)", text, origin)
    try:
        entry = entrypoint.parse(text)
    except entrypoint.EntryPointError as exc:
        log.error("Error executing user code: %s", exc)
        return 1
    try:
        given = _load_inputs(env, cwd)
    except inputs.InputError as exc:
        log.error("Invalid input: %s", exc)
        return 1
    try:
        function = entrypoint.load(entry, cwd)
        signature = binding.inspect_function(function) if function is not None else None
    except (entrypoint.EntryPointError, binding.BindingError) as exc:
        log.error("Error executing user code: %s", exc)
        return 1
    except Exception as exc:  # the user's code failed on import: report it as PlanQK does
        log.error("Error executing user code: %s", exc)
        _print_user_traceback(exc)
        return 1
    if function is None:
        return _report(None, env, declared=False)
    try:
        args, kwargs = _arguments(signature, given)
    except binding.BindingError as exc:
        log.error("Invalid input: %s", exc)
        return 1
    try:
        result = function(*args, **kwargs)
    except Exception as exc:  # the user's code failed: report it as PlanQK does
        log.error("Error executing user code: %s", exc)
        _print_user_traceback(exc)
        return 1
    return _report(result, env, declared=signature.typed and signature.declares_return)


def _load_inputs(env: Mapping[str, str], cwd: str) -> Dict[str, binding.Input]:
    """The inputs by name: the v2 layout's files when its directory exists, else `data` and `params`
    from the job-template's sources (`{}` for one that is missing, as the job-template passes)."""
    directory = inputs.input_directory(env)
    if directory is not None:
        log.info("Using the inputs in %s (one file per parameter)", directory)
        return {name: binding.Input(source, text=text)
                for name, (text, source) in inputs.load_directory(directory).items()}
    loaded = {}
    for name in binding.LEGACY_INPUTS:
        value, source = inputs.load_with_source(name, env, cwd)
        loaded[name] = binding.Input(source, value)
    return loaded


def _arguments(signature: binding.Signature, given: Mapping[str, binding.Input]) -> Tuple[List[Any], Dict[str, Any]]:
    """What to call the user's function with: the typed binding, or `data=..., params=...` as always."""
    if signature.typed:
        log.debug("Binding the inputs to the parameters of a typed function: %s", ", ".join(signature.names))
        return binding.bind(signature, given)
    kwargs = {}
    for name in binding.LEGACY_INPUTS:
        if name not in given:
            kwargs[name] = {}
            continue
        try:
            value = given[name].json_value()
        except binding.BindingError as exc:
            log.error("%s; working with empty dict", exc)
            value = None
        kwargs[name] = {} if value is None else value
    return [], kwargs


def _report(result: object, env: Mapping[str, str], *, declared: bool) -> int:
    """Print the block (and write the v2 output file); a result a typed function declares is no surprise."""
    kind = output.kind_of(result)
    if kind in (output.OTHER, output.NONE) and not declared:
        log.warning("Result type is not one of ResultResponse or ErrorResponse: %s", type(result).__name__)
    try:
        text = output.block(result)
    except (TypeError, ValueError) as exc:
        log.error("Cannot serialize the result of the user code (%s) to JSON: %s", type(result).__name__, exc)
        return 1
    try:
        written = output.output_file(result, env)
    except OSError as exc:
        log.error("Cannot write the result to %s: %s", exc.filename, exc.strerror or exc)
        return 1
    if written:
        log.info("Result written to %s", written)
    if kind == output.ERROR:
        log.info("The user code returned an ErrorResponse")
    sys.stderr.flush()
    sys.stdout.flush()
    output.emit(text, sys.stdout)
    return 1 if kind == output.ERROR else 0


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback on stderr, starting at the user's code (the runtime's own frames are no help;
    a SyntaxError in the user's module then shows just its file, line and message)."""
    sys.stdout.flush()
    tb = exc.__traceback__
    while tb is not None and _is_runtime_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)
    sys.stderr.flush()


def _is_runtime_frame(filename: str) -> bool:
    """A frame of this runtime or of the import machinery it calls (not of the user's code)."""
    return (filename.startswith("<frozen ") or os.path.dirname(os.path.abspath(filename)) in IMPORT_DIRS
            or os.path.abspath(filename) == os.path.abspath(runpy.__file__))
