"""The seed of the differential run, shared by every xdist worker (set by tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def diff_seed(request: pytest.FixtureRequest) -> str:
    return request.config.cnb_diff_seed
