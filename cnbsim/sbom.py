"""SBOM files a buildpack writes next to its layers, and the legacy `[[bom]]` tables.

buildpacks/spec buildpack.md "Bill of Materials"; as lifecycle buildpack/bomfile.go reads them
and phase/builder.go copies them: `<layers>/<bp>/<layer>.sbom.<ext>`, `launch.sbom.<ext>` and
`build.sbom.<ext>` go to `<layers>/sbom/{launch,build,cache}/<bp>/[<layer>/]sbom.<ext>` (Platform
API >= 0.8); the legacy BOM goes to `<layers>/sbom/{launch,build}/sbom.legacy.json` (>= 0.9).
"""

from __future__ import annotations

import enum
import fnmatch
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cnbsim.errors import BuildError
from cnbsim.model.api import ApiVersion
from cnbsim.model.buildpack import escape_id
from cnbsim.model.launch import BomEntry
from cnbsim.model.layer import LayerTypes

# lifecycle buildpack/bomfile.go: the three extensions and their media types.
MEDIA_TYPES = {"sbom.cdx.json": "application/vnd.cyclonedx+json",
               "sbom.spdx.json": "application/spdx+json",
               "sbom.syft.json": "application/vnd.syft+json"}
SBOM_GLOB = "*.sbom.*.json"


class SbomKind(enum.Enum):
    """Which SBOM tree a file goes to: it describes the image, the build, or the cache."""

    LAUNCH = "launch"
    BUILD = "build"
    CACHE = "cache"


@dataclass(frozen=True)
class SbomFile:
    buildpack_id: str
    layer: str            # "" for launch.sbom.<ext> / build.sbom.<ext>
    kind: SbomKind
    path: Path

    @property
    def extension(self) -> str:
        return next(ext for ext in MEDIA_TYPES if self.path.name.endswith("." + ext))


def _media_type(declared: str) -> str:
    """mime.ParseMediaType: the type without its parameters, lower-cased."""
    return declared.split(";", 1)[0].strip().lower()


def find_sbom_files(bp_dir: Path, bp_id: str, bp_key: str, layer_types: Mapping[str, LayerTypes],
                    declared: Iterable[str]) -> tuple[SbomFile, ...]:
    """The SBOM files of one buildpack, validated against its `sbom-formats` (exit 52 otherwise).

    lifecycle buildpack/bomfile.go processSBOMFiles: `launch.*`/`build.*` are the image's and the
    build's; `<layer>.*` counts only if `<layer>.toml` exists: a launch layer's goes to launch, any
    other's to build, and a cache layer's to cache as well. Files of no known layer are ignored.
    """
    try:
        names = sorted(n for n in os.listdir(bp_dir) if fnmatch.fnmatchcase(n, SBOM_GLOB))
    except FileNotFoundError:
        return ()
    files: list[SbomFile] = []
    for name in names:
        path = bp_dir / name
        owner = name.split(".", 1)[0]
        if owner in ("launch", "build"):
            files.append(SbomFile(bp_id, "", SbomKind(owner), path))
            continue
        if owner not in layer_types:
            continue
        types = layer_types[owner]
        files.append(SbomFile(bp_id, owner, SbomKind.LAUNCH if types.launch else SbomKind.BUILD, path))
        if types.cache:
            files.append(SbomFile(bp_id, owner, SbomKind.CACHE, path))
    allowed = {_media_type(d) for d in declared}
    for f in files:
        ext = next((e for e in MEDIA_TYPES if f.path.name.endswith("." + e)), None)
        if ext is None:
            raise BuildError(f"unsupported SBOM file format: '{f.path}'",
                             hint=f"name it <layer>.<ext> with <ext> one of {', '.join(MEDIA_TYPES)}")
        if MEDIA_TYPES[ext] not in allowed:
            raise BuildError(
                f"validating SBOM file '{f.path}' for buildpack: '{bp_key}': undeclared SBOM media type: "
                f"'{MEDIA_TYPES[ext]}'",
                hint=f"add \"{MEDIA_TYPES[ext]}\" to [buildpack] sbom-formats in buildpack.toml")
    return tuple(files)


def copy_sbom_files(layers_dir: Path, files: Iterable[SbomFile]) -> None:
    """lifecycle phase/builder.go copySBOMFiles: `<layers>/sbom/<kind>/<bp>/[<layer>/]sbom.<ext>`."""
    for f in files:
        target = layers_dir / "sbom" / f.kind.value / escape_id(f.buildpack_id)
        if f.layer:
            target = target / f.layer
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f.path, target / f.extension)


def write_legacy_boms(layers_dir: Path, launch: Iterable[BomEntry], build: Iterable[BomEntry]) -> None:
    """Platform API >= 0.9: `sbom.legacy.json` in launch/ and build/, `null` when there is none."""
    for kind, entries in ((SbomKind.LAUNCH, list(launch)), (SbomKind.BUILD, list(build))):
        path = layers_dir / "sbom" / kind.value / "sbom.legacy.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([e.to_json() for e in entries] if entries else None) + "\n", encoding="utf-8")


def finish_sboms(layers_dir: Path, platform_api: ApiVersion, files: Iterable[SbomFile],
                 launch: Iterable[BomEntry], build: Iterable[BomEntry]) -> None:
    """What the builder does with every buildpack's SBOMs once all have built."""
    if platform_api >= ApiVersion(0, 8):
        copy_sbom_files(layers_dir, files)
    if platform_api >= ApiVersion(0, 9):
        write_legacy_boms(layers_dir, launch, build)


def copy_sbom_output(layers_dir: Path, dest: Path) -> list[Path]:
    """`pack build --sbom-output-dir DIR`: the build's `<layers>/sbom` tree (launch/, build/, cache/) into
    DIR, as pack copies it out of the build container; files already in DIR with other names stay."""
    src = layers_dir / "sbom"
    if not src.is_dir():
        return []
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return sorted(p for p in dest.rglob("*") if p.is_file())
