"""`ENTRY_POINT`: which user function to call, and calling it (PlanQK's job-template runtime, as planqk-commons' planqk/commons/runtime has it).

The value reads `[directory/]module[.py][:function]`, e.g. `src.program:run`,
`user_code/src/program.py:run` or `mypkg.mod` (no function: the module runs as `__main__`).
The directory (or the working directory) goes first on `sys.path` before the import, so the
user's `src` package resolves from the project.

The buildpack's bin/build uses `parse` and `module_files` too, to check the project at build time.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:   # names for the annotations only: bin/build's project check imports this module, and
    from typing import Any, Callable, Mapping, Optional, Tuple   # typing (and dataclasses) cost it ~10 ms

DEFAULT = "user_code.src.program:run"
VARIABLE, ALIAS = "ENTRY_POINT", "ENTRYPOINT"
EXAMPLE = "src.program:run"


class EntryPointError(ValueError):
    """The entry point cannot be used; the message names the value and the fix."""


class EntryPoint(namedtuple("EntryPoint", "text directory module function")):
    """text: as configured; directory: "" = the working directory; module: dotted module name;
    function: None = run the module as __main__."""

    __slots__ = ()
    text: str
    directory: str
    module: str
    function: Optional[str]

    def module_files(self) -> Tuple[str, str]:
        """The two files the module can be, relative to the working directory."""
        base = os.path.join(self.directory, *self.module.split("."))
        return base + ".py", os.path.join(base, "__init__.py")


def configured(env: Mapping[str, str]) -> Tuple[str, str, str]:
    """(value, the variable it came from, a warning or ""): ENTRY_POINT, else its alias ENTRYPOINT, else DEFAULT."""
    primary, alias = env.get(VARIABLE, "").strip(), env.get(ALIAS, "").strip()
    if primary:
        warning = (f"{ALIAS}={alias!r} is ignored because {VARIABLE}={primary!r} is set"
                   if alias and alias != primary else "")
        return primary, VARIABLE, warning
    if alias:
        return alias, ALIAS, ""
    return DEFAULT, "default", ""


def parse(text: str) -> EntryPoint:
    """Split `[directory/]module[.py][:function]`; backslashes count as `/`."""
    normalized = text.strip().replace("\\", "/")
    *directories, rest = normalized.split("/")
    module, colon, function = rest.partition(":")
    if module.endswith(".py"):
        module = module[: -len(".py")]
    problem = ""
    if not rest or rest.count(":") > 1:
        problem = "expected [directory/]module[.py][:function]"
    elif not module or not all(part.isidentifier() for part in module.split(".")):
        problem = f"'{module}' is not a Python module name"
    elif colon and not function.isidentifier():
        problem = f"'{function}' is not a Python function name"
    if problem:
        raise EntryPointError(f"cannot parse entry point {text!r}: {problem} (e.g. {EXAMPLE})")
    return EntryPoint(text, "/".join(directories), module, function if colon else None)


def search_dir(entry: EntryPoint, cwd: str) -> str:
    """The absolute directory the module is imported from."""
    path = os.path.abspath(os.path.join(cwd, entry.directory or "."))
    if not os.path.isdir(path):
        raise EntryPointError(f"directory '{entry.directory}' of entry point {entry.text!r} not found "
                              f"(looked for {path})")
    return path


def load(entry: EntryPoint, cwd: str) -> Optional[Callable[..., Any]]:
    """Import the entry module and return its function; with no function, run the module and return None."""
    path = search_dir(entry, cwd)
    sys.path.insert(0, path)
    try:
        if entry.function is None:
            import runpy   # here: bin/build imports this module to check a project, and never runs one
            runpy.run_module(entry.module, run_name="__main__", alter_sys=True)
            return None
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not _is_prefix(exc.name, entry.module):
            raise                 # a module the user's code imports is missing: the user's error
        files = " or ".join(entry.module_files())
        raise EntryPointError(f"module '{entry.module}' of entry point {entry.text!r} not found: "
                              f"expected {files} in {path}") from None
    function = getattr(module, entry.function, None)
    if function is None:
        raise EntryPointError(f"module '{entry.module}' ({getattr(module, '__file__', '?')}) has no attribute "
                              f"'{entry.function}': define `def {entry.function}(data=None, params=None)` "
                              f"there, or set {VARIABLE} to the function to call")
    if not callable(function):
        raise EntryPointError(f"'{entry.module}.{entry.function}' is a {type(function).__name__}, "
                              "not a function")
    return function


def _is_prefix(name: str, module: str) -> bool:
    """True if `name` is `module` or one of its parent packages."""
    return module == name or module.startswith(name + ".")
