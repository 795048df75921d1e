"""Unit tests of pure file logic: every file lives on a pyfakefs fake filesystem."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Callable

import pytest


def fs_path(fs, path: str | Path) -> Path:
    """A path object that works on the fake filesystem whatever this module's own `Path` is."""
    from pyfakefs.fake_pathlib import FakePathlibModule
    return FakePathlibModule(fs).Path(str(path))


@pytest.fixture
def put(fs) -> Callable[..., Path]:
    """`put(path, text)` writes a file (parents created) on the fake filesystem; text is dedented."""

    def write(path: str | Path, text: str = "", *, dedent: bool = True) -> Path:
        # pyfakefs patches the modules it finds in sys.modules; several test dirs have a conftest.py,
        # so this module may not be the one registered as `conftest`: take Path from the patched os.
        path = fs_path(fs, path)
        fs.create_file(path, contents=textwrap.dedent(text).lstrip("\n") if dedent else text,
                       encoding="utf-8")
        return path

    return write
