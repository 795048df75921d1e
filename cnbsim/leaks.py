"""The secret-leak check: a build fails if a secret given at build time ends up in its output.

A platform env var is secret when its name matches one of `log.SECRET_NAME_PATTERNS` (shell-style,
case-insensitive) or is named with `--secret-env`. After the build and before anything is kept,
each such value is searched in the whole output tree: in the names of files, directories, layers
and symlinks, in symlink targets, in the contents of every file (the layers, env files,
launch.toml, anything written beside them), except workspace files that are unchanged copies of
the app's; and in the captured logs. A hit names the place with the value redacted.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from cnbsim.errors import BuildError, ExitCode
from cnbsim.log import MIN_SECRET_LENGTH, REDACTED, SECRET_NAME_PATTERNS, Redactor, is_secret_name

MIN_LENGTH = MIN_SECRET_LENGTH   # shorter values would match everywhere; they are not searched (with a warning)
__all__ = ["MIN_LENGTH", "REDACTED", "SECRET_NAME_PATTERNS", "check", "is_secret_name", "redact", "secret_values"]


class SecretLeakError(BuildError):
    """A secret value was found in the build output."""

    exit_code = ExitCode.SECRET_LEAK


def secret_values(env: Mapping[str, str], extra_names: Iterable[str] = ()) -> dict[str, str]:
    """name -> value of the platform env vars that are secrets."""
    names = set(extra_names)
    return {k: v for k, v in env.items() if v and is_secret_name(k, names)}


def redact(text: str, values: Iterable[str]) -> str:
    """`text` with every secret value of at least MIN_LENGTH characters replaced by a marker."""
    return Redactor(values)(text)


def _same_as_source(path: str, st: os.stat_result, source: Path, rel: str) -> bool:
    """A workspace entry that is an unchanged copy of the app's (the app's own names and contents)."""
    original = os.path.join(source, rel)
    try:
        ost = os.lstat(original)
        if stat.S_IFMT(ost.st_mode) != stat.S_IFMT(st.st_mode):
            return False
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(original) == os.readlink(path)
        if stat.S_ISREG(st.st_mode):
            if ost.st_size != st.st_size:
                return False
            with open(original, "rb") as a, open(path, "rb") as b:
                return a.read() == b.read()
        return stat.S_ISDIR(st.st_mode)
    except OSError:
        return False


def changed_files(workspace: Path, source: Path) -> Iterable[Path]:
    """Workspace files that are not byte-identical copies of the source app's files."""
    for dirpath, dirnames, filenames in os.walk(workspace):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and not _same_as_source(path, st, source,
                                                                  os.path.relpath(path, workspace)):
                yield Path(path)


def _hits(root: Path, needles: list[bytes], workspace: Path, source: Path) -> Iterable[str]:
    """Places under `root` where a needle shows: entry names, link targets, file contents."""
    def found(data: bytes) -> bool:
        return any(n in data for n in needles)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            in_workspace = path.startswith(str(workspace) + "/")
            if in_workspace and _same_as_source(path, st, source, os.path.relpath(path, workspace)):
                continue
            if found(os.fsencode(name)):
                yield f"{rel} (its name)"
            elif stat.S_ISLNK(st.st_mode):
                if found(os.fsencode(os.readlink(path))):
                    yield f"{rel} (its link target)"
            elif stat.S_ISREG(st.st_mode):     # not sockets or FIFOs: opening one could block
                try:
                    with open(path, "rb") as fh:
                        if found(fh.read()):
                            yield rel
                except OSError:
                    continue


def check(secrets: Mapping[str, str], *, output: Path, source: Path, texts: Mapping[str, str]) -> list[str]:
    """Raise SecretLeakError naming where a secret was found; return warnings for unsearchable values."""
    warnings = [f"the value of {name} is shorter than {MIN_LENGTH} characters and was not searched for leaks"
                for name, value in secrets.items() if len(value) < MIN_LENGTH]
    searched = {n: v for n, v in secrets.items() if len(v) >= MIN_LENGTH}
    if not searched:
        return warnings
    needles = [os.fsencode(v) for v in searched.values()]
    hits = list(_hits(output, needles, output / "workspace", source))
    hits += [where for where, text in texts.items() if any(v in text for v in searched.values())]
    if hits:
        names = ", ".join(sorted(searched))
        shown = redact(", ".join(hits), searched.values())
        raise SecretLeakError(
            f"secret value of {names} found in the build output: {shown}",
            hint="a buildpack must never write a build-time secret into a layer, a file name, an env file, "
                 "a process or a log; the output was discarded")
    return warnings
