"""package.toml, pack's buildpack package configuration (`pack buildpack package --config`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnbsim.model._fields import Fields
from cnbsim.tomlio import read_toml


@dataclass(frozen=True)
class PackageToml:
    path: Path
    buildpack_uri: str                 # `[buildpack] uri`, relative to the file's dir (default ".")
    dependencies: tuple[str, ...]      # each `[[dependencies]] uri`


def read_package_toml(path: Path) -> PackageToml:
    top = Fields(read_toml(path, what="package.toml"), path)
    uri = top.sub("buildpack").str("uri", default=".")
    deps = tuple(dep.str("uri", required=True) for dep in top.tables("dependencies"))
    return PackageToml(path, uri, deps)
