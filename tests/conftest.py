"""Shared fixtures: small real shell buildpacks written into tmp_path."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def write_exe(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + textwrap.dedent(body).lstrip("\n"))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class BuildpackFactory:
    """Writes buildpacks in the Platform API layout <root>/<id with / as _>/<version>/."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def __call__(self, bp_id: str, version: str = "1.0", *, api: str = "0.10", detect: str | None = "exit 0",
                 build: str | None = "exit 0", order: list[list[tuple]] | None = None,
                 extra: str = "") -> Path:
        """detect/build are bash bodies; order is [[(id, version[, optional]), ...], ...] for a composite."""
        path = self.root / bp_id.replace("/", "_") / version
        path.mkdir(parents=True, exist_ok=True)
        toml = f'api = "{api}"\n\n[buildpack]\nid = "{bp_id}"\nversion = "{version}"\n{extra}\n'
        for group in order or []:
            toml += "\n[[order]]\n"
            for el in group:
                toml += f'[[order.group]]\nid = "{el[0]}"\nversion = "{el[1]}"\n'
                if len(el) > 2 and el[2]:
                    toml += "optional = true\n"
        (path / "buildpack.toml").write_text(toml)
        if order is None:
            if detect is not None:
                write_exe(path / "bin" / "detect", detect)
            if build is not None:
                write_exe(path / "bin" / "build", build)
        return path

    def order(self, groups: list[list[tuple]], path: Path | None = None) -> Path:
        path = path or self.root.parent / "order.toml"
        text = ""
        for group in groups:
            text += "[[order]]\n"
            for el in group:
                text += f'[[order.group]]\nid = "{el[0]}"\nversion = "{el[1]}"\n'
                if len(el) > 2 and el[2]:
                    text += "optional = true\n"
            text += "\n"
        path.write_text(text)
        return path


@pytest.fixture
def bps(tmp_path: Path) -> BuildpackFactory:
    return BuildpackFactory(tmp_path / "buildpacks")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    (path / "main.py").write_text("print('hello')\n")
    return path


@pytest.fixture
def lifecycle_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, str]]:
    def env(**extra: str) -> dict[str, str]:
        out = dict(os.environ, CNB_PLATFORM_API="0.15")
        out.update(extra)
        return out
    return env


# -- the differential suite's seed (tests/differential): one per run, the same on every xdist worker --

def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.cnb_diff_seed = workerinput["cnb_diff_seed"]
    else:
        import secrets
        config.cnb_diff_seed = os.environ.get("CNB_DIFF_SEED") or secrets.token_hex(4)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # noqa: ANN001 - xdist's WorkerController
    node.workerinput["cnb_diff_seed"] = node.config.cnb_diff_seed


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:  # noqa: ANN001
    ran = [r for rs in terminalreporter.stats.values() for r in rs
           if getattr(r, "nodeid", "").startswith("tests/differential/") and getattr(r, "when", "") == "call"]
    if ran:
        terminalreporter.write_line(f"differential: seed {config.cnb_diff_seed} "
                                    f"(replay: make differential SEED={config.cnb_diff_seed})")
