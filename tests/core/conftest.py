from __future__ import annotations

from pathlib import Path

import pytest

from cnbsim.buildpacks import BuildpackStore
from cnbsim.log import Logger
from cnbsim.model.order import GroupElement, OrderGroup
from cnbsim.phase.build import build as build_phase
from cnbsim.phase.detect import detect as detect_phase
from cnbsim.platform import Platform


def order_of(groups: list[list[tuple]]) -> tuple[OrderGroup, ...]:
    return tuple(OrderGroup(tuple(GroupElement(e[0], e[1], bool(e[2]) if len(e) > 2 else False) for e in g))
                 for g in groups)


class Lifecycle:
    """Drives the detect and build phases on real buildpack executables in tmp_path."""

    def __init__(self, tmp_path: Path, bps, app: Path) -> None:
        self.bps = bps
        self.app = app
        self.layers = tmp_path / "layers"
        self.platform_dir = tmp_path / "platform"
        (self.platform_dir / "env").mkdir(parents=True)
        self.layers.mkdir()
        self.log = Logger(level="debug", stream=None)

    def platform(self, **kw) -> Platform:
        return Platform(app_dir=self.app, platform_dir=self.platform_dir, layers_dir=self.layers, **kw)

    def store(self) -> BuildpackStore:
        store = BuildpackStore()
        store.add_layout_dir(self.bps.root)
        return store

    def detect(self, groups: list[list[tuple]], **kw):
        return detect_phase(order_of(groups), self.store(), self.platform(**kw), self.log)

    def build(self, groups: list[list[tuple]], **kw):
        result = self.detect(groups, **kw)
        return build_phase(result.group, result.plan, self.store(), self.platform(**kw), self.log)

    def platform_env(self, name: str, value: str) -> None:
        (self.platform_dir / "env" / name).write_text(value)


@pytest.fixture
def lc(tmp_path: Path, bps, app: Path) -> Lifecycle:
    return Lifecycle(tmp_path, bps, app)
