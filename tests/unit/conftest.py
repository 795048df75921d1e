"""Unit tests of pure file logic: every file lives on a pyfakefs fake filesystem."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest


@pytest.fixture
def put(fs) -> Callable[..., Path]:
    """`put(path, text)` writes a file (parents created) on the fake filesystem; text is dedented."""

    def write(path: str | Path, text: str = "", *, dedent: bool = True) -> Path:
        path = Path(path)
        fs.create_file(path, contents=textwrap.dedent(text).lstrip("\n") if dedent else text,
                       encoding="utf-8")
        return path

    return write
