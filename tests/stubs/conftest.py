"""Fixtures of the stub buildpack tests (the helpers are in stubrun.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stubrun import Lifecycle, Wheelhouse, write_wheel


@pytest.fixture
def lc(tmp_path: Path) -> Lifecycle:
    return Lifecycle(tmp_path)


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Wheelhouse:
    """A local wheel directory with demo_pkg 1.0 and other_pkg 2.0 (offline installs)."""
    path = tmp_path / "wheelhouse"
    return Wheelhouse(path, [write_wheel(path), write_wheel(path, "other_pkg", "2.0", "VALUE = 2\n")])
