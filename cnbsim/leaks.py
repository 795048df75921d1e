"""The secret-leak check: a build fails if a secret given at build time ends up in its output.

A platform env var is secret when its name matches log.SECRET_NAME_PATTERNS (TOKEN, SECRET,
PASSWORD, ending in _KEY) or is named with `--secret-env`. After the build and before anything is exported, each such
value is searched in every file of the layers dir (layer contents, env files, launch.toml, ...),
in the workspace files the build added or changed, in the report and in the captured logs.
A hit names the file and never shows the value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

from cnbsim.errors import BuildError, ExitCode
from cnbsim.fs import is_regular
from cnbsim.log import MIN_SECRET_LENGTH, is_secret_name

MIN_LENGTH = MIN_SECRET_LENGTH   # shorter values would match everywhere; they are not searched (with a warning)


class SecretLeakError(BuildError):
    """A secret value was found in the build output."""

    exit_code = ExitCode.SECRET_LEAK


def secret_values(env: Mapping[str, str], extra_names: Iterable[str] = ()) -> dict[str, str]:
    """name -> value of the platform env vars that are secrets."""
    names = set(extra_names)
    return {k: v for k, v in env.items() if v and (is_secret_name(k) or k in names)}


def _files(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if is_regular(os.path.join(dirpath, name)):   # not links, sockets or FIFOs
                yield Path(dirpath, name)


def _contains(path: Path, needles: list[bytes]) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return any(n in data for n in needles)


def changed_files(workspace: Path, source: Path) -> Iterable[Path]:
    """Workspace files that are not byte-identical copies of the source app's files."""
    for path in _files(workspace):
        original = source / path.relative_to(workspace)
        try:
            if original.is_file() and original.stat().st_size == path.stat().st_size \
                    and original.read_bytes() == path.read_bytes():
                continue
        except OSError:
            pass
        yield path


def check(secrets: Mapping[str, str], *, layers: Path, workspace: Path, source: Path,
          texts: Mapping[str, str], shown_root: Path) -> list[str]:
    """Raise SecretLeakError naming where a secret was found; return warnings for unsearchable values."""
    warnings = [f"the value of {name} is shorter than {MIN_LENGTH} characters and was not searched for leaks"
                for name, value in secrets.items() if len(value) < MIN_LENGTH]
    searched = {n: v for n, v in secrets.items() if len(v) >= MIN_LENGTH}
    if not searched:
        return warnings
    needles = [v.encode("utf-8") for v in searched.values()]
    hits: list[str] = []
    for path in [*_files(layers), *changed_files(workspace, source)]:
        if _contains(path, needles):
            hits.append(os.path.relpath(path, shown_root))
    for where, text in texts.items():
        if any(v in text for v in searched.values()):
            hits.append(where)
    if hits:
        names = ", ".join(sorted(searched))
        raise SecretLeakError(
            f"secret value of {names} found in the build output: {', '.join(hits)}",
            hint="a buildpack must never write a build-time secret into a layer, env file, process or log; "
                 "the output was discarded")
    return warnings
