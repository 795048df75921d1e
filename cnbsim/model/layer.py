"""`<layers>/<bp>/<layer>.toml` (buildpacks/spec buildpack.md#layer-content-metadata-toml).

One format for every supported Buildpack API (0.7+): the flags in `[types]`, the buildpack's own
data in `[metadata]` (lifecycle buildpack/layermetadata.go).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbsim.errors import BuildError
from cnbsim.model._fields import Fields
from cnbsim.tomlio import read_toml

FLAGS = ("launch", "build", "cache")


@dataclass(frozen=True)
class LayerTypes:
    launch: bool = False
    build: bool = False
    cache: bool = False

    @property
    def any(self) -> bool:
        return self.launch or self.build or self.cache


@dataclass(frozen=True)
class LayerMetadata:
    types: LayerTypes = LayerTypes()
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)
    # whether the file has a [metadata] table, even an empty one: the image label's `data` is then `{}`, not null
    has_metadata: bool = field(default=False, compare=False)

    @property
    def data(self) -> dict[str, Any] | None:
        """The layer's `data` in the io.buildpacks.lifecycle.metadata label (lifecycle LayerMetadataFile.Data)."""
        return self.metadata if self.has_metadata else None

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"types": {k: getattr(self.types, k) for k in FLAGS}}
        if self.metadata:
            out["metadata"] = self.metadata
        return out


def parse_layer_toml(data: dict[str, Any], path: Path) -> LayerMetadata:
    top = Fields(data, path, error=BuildError)
    top_level = [k for k in FLAGS if k in data]
    if top_level:
        # lifecycle buildpack/layermetadata.go typesInTopLevel
        raise BuildError(f"the launch, cache and build flags should be in the types table of {path}",
                         file=path, field=top_level[0],
                         hint="move them under [types] (every Buildpack API from 0.6 requires it)")
    t = top.sub("types")
    return LayerMetadata(LayerTypes(t.bool("launch"), t.bool("build"), t.bool("cache")),
                         dict(top.table("metadata")), "metadata" in data)


def read_layer_toml(path: Path) -> LayerMetadata:
    data = read_toml(path, what="layer metadata file", error=BuildError)
    return parse_layer_toml(data, path)
