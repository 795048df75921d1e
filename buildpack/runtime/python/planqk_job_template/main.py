"""One job: resolve the entry point, load the inputs, call `run(data=..., params=...)`, print the result.

Exit codes (planqk-runtime.md §1.9): 0 for a ResultResponse, another value or None; 1 for an
ErrorResponse (after its block is printed), for an exception in the user's code (the line
"Error executing user code: ...", the traceback on stderr, no block) and for an unusable
entry point. `SystemExit` and `KeyboardInterrupt` from the user's code are not caught.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import runpy
import sys
import traceback
from typing import List, Mapping, Optional

from planqk_job_template import __version__, entrypoint, inputs, logs, output

USAGE = f"""usage: planqk-job-template [--version]

Runs a PlanQK service once, as PlanQK's job-template does: calls the function that
ENTRY_POINT names (default {entrypoint.DEFAULT}) with the inputs `data` and `params` and prints
the result between two '{output.MARKER}' lines on stdout.

environment:
  ENTRY_POINT (alias ENTRYPOINT)       [directory/]module[.py][:function]
  DATA_FILE, PARAMS_FILE               input files (then {inputs.DEFAULT_INPUT_ROOT}/data.json,
                                       {inputs.DEFAULT_INPUT_ROOT}/data/data.json, ./input/data.json, ...)
  DATA_VALUE, PARAMS_VALUE             inputs as values (deprecated: INPUT_DATA, INPUT_PARAMS)
  BASE64_ENCODED                       inputs are base64 (default true; also DATA_/PARAMS_BASE64_ENCODED)
  {inputs.INPUT_ROOT_VAR}                    where the input files are mounted (default {inputs.DEFAULT_INPUT_ROOT})
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
    data = inputs.load("data", env, cwd)
    params = inputs.load("params", env, cwd)
    try:
        function = entrypoint.load(entry, cwd)
        result = function(data=data, params=params) if function is not None else None
    except entrypoint.EntryPointError as exc:
        log.error("Error executing user code: %s", exc)
        return 1
    except Exception as exc:  # the user's code failed: report it as PlanQK does
        log.error("Error executing user code: %s", exc)
        _print_user_traceback(exc)
        return 1
    return _report(result)


def _report(result: object) -> int:
    kind = output.kind_of(result)
    if kind in (output.OTHER, output.NONE):
        log.warning("Result type is not one of ResultResponse or ErrorResponse: %s", type(result).__name__)
    try:
        text = output.block(result)
    except (TypeError, ValueError) as exc:
        log.error("Cannot serialize the result of the user code (%s) to JSON: %s", type(result).__name__, exc)
        return 1
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
