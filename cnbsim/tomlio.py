"""Reading and writing TOML (and JSON inputs) at the edge, with errors that name the file.

Every TOML or JSON file cnbsim reads is bounded: at most `MAX_TOML_BYTES` / `MAX_JSON_BYTES`
and `MAX_DEPTH` levels of nested tables and arrays, so a hostile file gives one clear error,
never a RecursionError or minutes of parsing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from cnbsim.errors import CnbsimError, ConfigError

MAX_TOML_BYTES = 10 * 1024 * 1024     # CNB files are a few kB; a builder.toml far below this
MAX_JSON_BYTES = 256 * 1024 * 1024    # job inputs (`run --data`) may be data sets
MAX_DEPTH = 100                       # nested tables/arrays; JSON and TOML parsers recurse per level


def check_depth(value: Any, *, path: Path | str, what: str, error: type[CnbsimError] = ConfigError) -> Any:
    """`value` if it nests at most MAX_DEPTH lists/dicts deep (checked without recursion), else `error`."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise _too_deep(path, what, error)
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return value


def _too_deep(path: Path | str, what: str, error: type[CnbsimError]) -> CnbsimError:
    return error(f"{what} nests tables or arrays more than {MAX_DEPTH} levels deep", file=path,
                 hint="flatten the structure; cnbsim refuses deeper nesting")


def read_bounded(path: Path, *, what: str, limit: int, missing_ok: bool = False,
                 error: type[CnbsimError] = ConfigError) -> str | None:
    """The UTF-8 text of `path` (at most `limit` bytes); None if missing and `missing_ok`."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise error(f"{what} not found", file=path, hint="check the path")
    except IsADirectoryError:
        raise error(f"{what} is a directory, expected a file", file=path)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}", file=path)
    if len(data) > limit:
        raise error(f"{what} is larger than {limit // (1024 * 1024)} MB", file=path,
                    hint="cnbsim refuses files this large; check it is the right file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} is not UTF-8 text", file=path, hint="save it as UTF-8")


def read_json(path: Path, *, what: str, error: type[CnbsimError] = ConfigError) -> Any:
    """Parse the JSON file `path`, bounded in size and depth; errors name the file, line and column."""
    text = read_bounded(path, what=what, limit=MAX_JSON_BYTES, error=error)
    assert text is not None
    return parse_json(text, path=path, what=what, error=error)


def parse_json(text: str, *, path: Path | str, what: str, error: type[CnbsimError] = ConfigError) -> Any:
    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep(path, what, error) from None
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                    file=path, hint="fix the JSON (e.g. check quotes and commas)") from None
    return check_depth(value, path=path, what=what, error=error)


def read_toml(path: Path, *, what: str = "TOML file", missing_ok: bool = False,
              error: type[CnbsimError] = ConfigError) -> dict[str, Any]:
    """Parse `path`; an empty file is an empty table. Errors name the file and line."""
    text = read_bounded(path, what=what, limit=MAX_TOML_BYTES, missing_ok=missing_ok, error=error)
    if text is None:
        return {}
    return parse_toml(text, path=path, what=what, error=error)


def parse_toml(text: str, *, path: Path | str, what: str = "TOML file",
               error: type[CnbsimError] = ConfigError) -> dict[str, Any]:
    if len(text) > MAX_TOML_BYTES:
        raise error(f"{what} is larger than {MAX_TOML_BYTES // (1024 * 1024)} MB", file=path,
                    hint="cnbsim refuses TOML this large")
    try:
        value = tomllib.loads(text)
    except RecursionError:
        raise _too_deep(path, what, error) from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"invalid TOML in {what}: {exc}", file=path,
                    hint="fix the syntax; see https://toml.io") from None
    return check_depth(value, path=path, what=what, error=error)


def dumps(data: Mapping[str, Any]) -> str:
    return tomli_w.dumps(data)


def write_toml(path: Path, data: Mapping[str, Any]) -> None:
    """Write atomically: the file is either the old one or the complete new one."""
    write_text_atomic(path, dumps(data))


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
