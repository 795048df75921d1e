"""Checks of a PlanQK project for bin/detect and bin/build (Python 3.8+, standard library only).

    project_check.py detect APP_DIR            prints planqk.json's runtime ("" when absent)
    project_check.py build APP_DIR ENTRY_POINT [TREE FILE]
                                               checks planqk.json and the entry point's module;
                                               with TREE and FILE, the last two lines are
                                               "sha256 TREE-DIGEST" and "sha256 FILE-DIGEST"

Exit 0: fine (notes on stdout). Exit 10: the project has a problem, described on stdout as
lines "<file>: <what is wrong> (<how to fix it>)". Any other exit is this script failing, and
the caller falls back to its shell checks. Nothing here imports or runs the user's code.
"""

from __future__ import annotations

import ast
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runtime", "python"))

from planqk_job_template import entrypoint  # noqa: E402  (the runtime's own parser, from the path above)

PROBLEM = 10
PYTHON_TEMPLATE = "PYTHON_TEMPLATE"
SIGNATURE = "def run(data=None, params=None)"


class ProjectError(Exception):
    """A problem in the user's project; the message names the file, what is wrong and the fix."""


def planqk_runtime(app: str) -> str:
    """The `runtime` field of planqk.json ("" when absent), after checking that the file is a JSON object."""
    path = os.path.join(app, "planqk.json")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ProjectError(f"planqk.json: cannot be read: {exc.strerror}") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ProjectError("planqk.json: starts with a UTF-8 byte order mark (BOM) "
                           "(save it as UTF-8 without BOM)")
    try:
        config = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProjectError("planqk.json: is not UTF-8 text (save it as UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise ProjectError(f"planqk.json: is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
                           "(fix the JSON; `planqk init` writes a valid file)") from None
    if not isinstance(config, dict):
        raise ProjectError(f"planqk.json: must be a JSON object, not a {type(config).__name__} "
                           '(e.g. {"name": "my-service", "runtime": "PYTHON_TEMPLATE"})')
    runtime = config.get("runtime", "")
    if not isinstance(runtime, str):
        raise ProjectError(f"planqk.json: field 'runtime' must be a string, not {json.dumps(runtime)} "
                           f"(use \"{PYTHON_TEMPLATE}\")")
    return runtime


def check_entry_point(app: str, text: str) -> list[str]:
    """Notes about the entry point's module; raises ProjectError if it cannot work."""
    try:
        entry = entrypoint.parse(text)
    except entrypoint.EntryPointError as exc:
        raise ProjectError(f"BP_PLANQK_ENTRY_POINT: {exc}") from None
    found = [name for name in entry.module_files() if os.path.isfile(os.path.join(app, name))]
    if not found:
        module_file = entry.module_files()[0]
        raise ProjectError(f"{module_file}: not found, but the entry point {text!r} needs it "
                           f"(create {module_file} with `{_signature(entry)}: ...`; PlanQK expects "
                           "src/program.py with a function run; or set BP_PLANQK_ENTRY_POINT to your module)")
    if entry.function is None:
        return [f"{found[0]} runs as __main__ (the entry point names no function)"]
    path = found[0]
    try:
        with open(os.path.join(app, path), "rb") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except SyntaxError as exc:
        raise ProjectError(f"{path}: line {exc.lineno}: {exc.msg} (fix the syntax; checked with Python "
                           f"{sys.version.split()[0]})") from None   # platform.python_version(), without importing platform
    except (OSError, ValueError) as exc:
        raise ProjectError(f"{path}: cannot be read: {exc}") from None
    names, functions = _top_level_names(tree.body)
    if entry.function not in names and "*" not in names and "__getattr__" not in names:
        others = ", ".join(sorted(functions)) or "none"
        raise ProjectError(f"{path}: does not define a top-level function '{entry.function}' "
                           f"(functions found: {others}); PlanQK calls {entry.function}(data=..., params=...): "
                           f"add `{_signature(entry)}: ...` or set BP_PLANQK_ENTRY_POINT to the function to call")
    notes = [f"{path} defines {entry.function}"]
    missing = _missing_keywords(tree.body, entry.function)
    if missing:
        notes.append(f"warning: {path}: {entry.function}() does not accept the keyword argument(s) "
                     f"{', '.join(missing)}, but PlanQK calls {entry.function}(data=..., params=...), so the job "
                     f"will fail with a TypeError (use `{_signature(entry)}`)")
    return notes


def _signature(entry: entrypoint.EntryPoint) -> str:
    return SIGNATURE.replace("run", entry.function or "run", 1)


def _top_level_names(body: list[ast.stmt]) -> tuple[set[str], set[str]]:
    """Names bound at module level (also inside if/try/with blocks), and which of them are functions."""
    names: set[str] = set()
    functions: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
            functions.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        for block in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, block, None)
            if inner and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                more, more_functions = _top_level_names(inner)
                names |= more
                functions |= more_functions
    return names, functions


def _missing_keywords(body: list[ast.stmt], name: str) -> list[str]:
    """The keywords data/params that a plain, untyped top-level `def name(...)` cannot take ([] if unsure).
    A typed one (an annotated parameter) gets only its own parameters, so it needs neither."""
    defs = [n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    if len(defs) != 1 or defs[0].decorator_list or defs[0].args.kwarg is not None:
        return []
    args = defs[0].args
    if any(a.annotation is not None for a in args.posonlyargs + args.args + args.kwonlyargs):
        return []
    accepted = {a.arg for a in args.args + args.kwonlyargs}
    return [k for k in ("data", "params") if k not in accepted]


def check_build(app: str, entry_point: str) -> list[str]:
    """planqk.json and the entry point, as bin/build needs them."""
    runtime = planqk_runtime(app)
    if runtime not in ("", PYTHON_TEMPLATE):
        raise ProjectError(f"planqk.json: field 'runtime' is {runtime!r}, but this buildpack builds "
                           f"{PYTHON_TEMPLATE} services (set it to \"{PYTHON_TEMPLATE}\")")
    return [f"planqk.json: runtime {runtime or '(not set)'}"] + check_entry_point(app, entry_point)


def tree_sha256(root: str) -> str:
    """The digest bin/build's shell fallback computes for a directory: sha256 over `sha256sum` lines
    ("<hex>  ./<path>") of its regular files outside __pycache__ and not *.pyc, in byte order."""
    import hashlib   # here: detect, which runs in every build, needs no digest
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if name.endswith(".pyc") or os.path.islink(path) or not os.path.isfile(path):
                continue
            rel = "./" + os.path.relpath(path, root)
            with open(path, "rb") as fh:
                lines.append((os.fsencode(rel), hashlib.sha256(fh.read()).hexdigest().encode()))
    lines.sort()
    return hashlib.sha256(b"".join(digest + b"  " + rel + b"\n" for rel, digest in lines)).hexdigest()


def file_sha256(path: str) -> str:
    import hashlib
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def main(argv: list[str]) -> int:
    try:
        if len(argv) == 2 and argv[0] == "detect":
            print(planqk_runtime(argv[1]))
            return 0
        if len(argv) in (3, 5) and argv[0] == "build":
            notes = check_build(argv[1], argv[2])
            if len(argv) == 5:   # bin/build's layer metadata: one Python process instead of five shell ones
                notes += [f"sha256 {tree_sha256(argv[3])}", f"sha256 {file_sha256(argv[4])}"]
            print("\n".join(notes))
            return 0
    except ProjectError as exc:
        print(exc)
        return PROBLEM
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
