"""App slices: Go's filepath.Match, and the app dir's files partitioned into one layer per `[[slices]]`.

Follows lifecycle layers/slices.go and buildpacks/spec buildpack.md#launchtoml-toml (`[[slices]]`).
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from cnbsim.errors import ExportError
from cnbsim.model.launch import Slice
from cnbsim.oci.tar import parent_dirs, walk


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match: `*`/`?` never match '/', `[^...]` classes with ranges, `\\` escapes."""
    def bad() -> ExportError:
        return ExportError(f"bad pattern for glob path '{pattern}'", field="slices",
                           hint="use filepath.Match syntax: *, ?, [a-z], [^a-z], \\ to escape")

    def class_char(i: int) -> tuple[str, int]:
        if i >= len(pattern) or pattern[i] in "-]":
            raise bad()
        if pattern[i] == "\\":
            i += 1
            if i >= len(pattern):
                raise bad()
        return pattern[i], i + 1

    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 >= len(pattern):
                raise bad()
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i += 1
            negate = i < len(pattern) and pattern[i] == "^"
            i += negate
            ranges: list[tuple[str, str]] = []
            while not (i < len(pattern) and pattern[i] == "]" and ranges):
                lo, i = class_char(i)
                hi = lo
                if i < len(pattern) and pattern[i] == "-":
                    hi, i = class_char(i + 1)
                ranges.append((lo, hi))
            body = "".join(f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in ranges if lo <= hi)
            out.append(("[^" if negate else "[") + body + "]" if body else ("(?s:.)" if negate else "(?!)"))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def app_slices(app: Path, root: str, slices: tuple[Slice, ...]) -> list[list[tuple[Path, str]]]:
    """lifecycle layers/slices.go: the files (named under `root`) of each slice (matches, their contents, missing parents), then the rest."""
    walked = list(walk(app, root))
    host_of = {name: host for host, name in walked}
    children: dict[str, list[str]] = {}
    for _, name in walked[1:]:
        children.setdefault(posixpath.dirname(name), []).append(name)
    sliced = dict.fromkeys(host_of, False)

    def take(name: str, matched: dict[str, None]) -> None:
        if sliced.get(name, True):
            return   # outside the app dir, or in an earlier slice
        for child in children.get(name, []):
            take(child, matched)
        matched[name] = None
        sliced[name] = True

    layers: list[list[str]] = []
    for s in slices:
        matched: dict[str, None] = {}
        for pattern in s.paths:
            regex = glob_regex(posixpath.normpath(pattern))
            for _, name in walked[1:]:
                if regex.fullmatch(name[len(root) + 1:]):
                    take(name, matched)
        parents: dict[str, None] = {}
        for name in matched:
            for parent in [root] + [p for p in parent_dirs(name) if p.startswith(root + "/")]:
                if parent not in matched:
                    parents[parent] = None
        files = [*matched, *parents]
        for parent in sorted(parents, key=lambda p: p.count("/"), reverse=True):
            sliced[parent] = all(sliced[c] for c in children.get(parent, []))
        layers.append(files)
    rest = [name for name, done in sliced.items() if not done]
    layers.append(rest)
    return [[(host_of[n], n) for n in sorted(files, key=os.fsencode)] for files in layers]
