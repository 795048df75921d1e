"""Unit tests of pure file logic: every file lives on a pyfakefs fake filesystem."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path, PurePath

import pytest


def fs_path(fs, path: str | Path) -> Path:
    """A path object that works on the fake filesystem whatever this module's own `Path` is."""
    from pyfakefs.fake_pathlib import FakePathlibModule
    return FakePathlibModule(fs).Path(str(path))


@pytest.fixture(autouse=True)
def _module_paths_on_the_fake_fs(request: pytest.FixtureRequest) -> None:
    """Re-make a test module's `Path` constants on the fake filesystem, for the tests that use `fs`.

    Before Python 3.11 a `pathlib.Path` keeps the filesystem accessor it was created with, so a
    path made at import (a module constant, before pyfakefs patches anything) would read the real
    filesystem; from 3.11 on pathlib calls `os` directly and pyfakefs fakes every path.
    """
    if sys.version_info >= (3, 11) or "fs" not in request.fixturenames:
        return
    fs = request.getfixturevalue("fs")
    monkeypatch = request.getfixturevalue("monkeypatch")
    for name, value in vars(request.module).items():
        if isinstance(value, PurePath) and type(value).__module__ == "pathlib":
            monkeypatch.setattr(request.module, name, fs_path(fs, value))


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
