"""Fixtures of the serve tests: a build of the test service, and a server of it on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servekit import Client, build_service, serving

from cnbsim.output import BuiltOutput


@pytest.fixture
def output(bps, tmp_path) -> BuiltOutput:
    return build_service(bps, tmp_path)


@pytest.fixture
def client(output) -> Iterator[Client]:
    with serving(output) as c:
        yield c
