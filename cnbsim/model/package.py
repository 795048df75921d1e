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
    dependencies: tuple[str, ...]      # each `[[dependencies]] uri` (or `image`, pack's other spelling)
    platform_os: str = ""              # `[platform] os` (pack's default: linux)


def read_package_toml(path: Path) -> PackageToml:
    top = Fields(read_toml(path, what="package.toml"), path)
    uri = top.sub("buildpack").str("uri", default=".")
    deps = []
    for dep in top.tables("dependencies"):
        ref = dep.str("uri") or dep.str("image")
        if not ref:
            raise dep.fail("uri", "is required (or image)",
                           'add uri = "<directory, .cnb file or oci:DIR>"')
        deps.append(ref)
    return PackageToml(path, uri, tuple(deps), top.sub("platform").str("os"))
