"""Shared fixtures: small real shell buildpacks written into tmp_path."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
        path.write_text(self._order_text(groups))
        return path

    def builder(self, groups: list[list[tuple]], path: Path | None = None) -> Path:
        """A builder.toml with the order `groups` and, as its [[buildpacks]], each buildpack they name."""
        path = path or self.root.parent / "builder.toml"
        named = dict.fromkeys((el[0], el[1]) for group in groups for el in group)
        text = "".join(f'[[buildpacks]]\nuri = "{self.root / bp_id.replace("/", "_") / version}"\n\n'
                       for bp_id, version in named)
        path.write_text(text + self._order_text(groups))
        return path

    @staticmethod
    def _order_text(groups: list[list[tuple]]) -> str:
        """[[order]] tables: [[(id, version[, optional]), ...], ...]."""
        text = ""
        for group in groups:
            text += "[[order]]\n"
            for el in group:
                text += f'[[order.group]]\nid = "{el[0]}"\nversion = "{el[1]}"\n'
                if len(el) > 2 and el[2]:
                    text += "optional = true\n"
            text += "\n"
        return text


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


def make_run_image(root: Path, *, os_name: str = "linux", arch: str = "amd64", variant: str = "",
                   labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A minimal run image layout by hand: one layer with /etc/os-release, env, history, labels and a Cmd."""
    from cnbsim.phase.export import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("etc")
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        info = tarfile.TarInfo("etc/os-release")
        info.size = len(b"ID=tiny\n")
        tar.addfile(info, io.BytesIO(b"ID=tiny\n"))
    layer = put(gzip.compress(raw.getvalue(), mtime=0)) | {"mediaType": OCI_LAYER_GZIP}
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    config = {"architecture": arch, "os": os_name, **({"variant": variant} if variant else {}),
              "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["sh"], "User": "1000:1000",
                         "Labels": {"org.example.base": "tiny", **(labels or {})}},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]},
              "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD os-release"}]}
    config_desc = put(json.dumps(config).encode()) | {"mediaType": OCI_CONFIG}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": [layer]}
    manifest_desc = put(json.dumps(manifest).encode()) | {"mediaType": OCI_MANIFEST}
    entry = manifest_desc | {"annotations": {"org.opencontainers.image.ref.name": "base"}}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return {"layer": layer, "diff_id": diff_id, "manifest": manifest_desc}


@pytest.fixture
def write_run_image() -> Callable[..., dict[str, Any]]:
    """`write_run_image(root, os_name="linux", arch="amd64", variant="", labels=None)`: an OCI run image layout."""
    return make_run_image


# -- the differential suite's seed (tests/differential): one per run, the same on every xdist worker --

def pytest_configure(config: pytest.Config) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.cnb_diff_seed = workerinput["cnb_diff_seed"]
    else:
        import secrets
        config.cnb_diff_seed = os.environ.get("CNB_DIFF_SEED") or secrets.token_hex(4)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    node.workerinput["cnb_diff_seed"] = node.config.cnb_diff_seed


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    ran = [r for rs in terminalreporter.stats.values() for r in rs
           if getattr(r, "nodeid", "").startswith("tests/differential/") and getattr(r, "when", "") == "call"]
    if ran:
        terminalreporter.write_line(f"differential: seed {config.cnb_diff_seed} "
                                    f"(replay: make differential SEED={config.cnb_diff_seed})")
