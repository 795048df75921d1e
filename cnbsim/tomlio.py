"""Reading and writing TOML at the edge, with errors that name the file."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from cnbsim.errors import ConfigError


def read_toml(path: Path, *, what: str = "TOML file", missing_ok: bool = False,
              error: type[Exception] = ConfigError) -> dict[str, Any]:
    """Parse `path`; an empty file is an empty table. Errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise error(f"{what} not found", file=path, hint="check the path")
    except IsADirectoryError:
        raise error(f"{what} is a directory, expected a file", file=path)
    except UnicodeDecodeError:
        raise error(f"{what} is not UTF-8 text", file=path, hint="save it as UTF-8")
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}", file=path)
    return parse_toml(text, path=path, what=what, error=error)


def parse_toml(text: str, *, path: Path | str, what: str = "TOML file",
               error: type[Exception] = ConfigError) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"invalid TOML in {what}: {exc}", file=path,
                    hint="fix the syntax; see https://toml.io")


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
