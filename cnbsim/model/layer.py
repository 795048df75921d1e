"""<layers>/<bp>/<layer>.toml (buildpack.md "Layer Content Metadata (TOML)")."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbsim.errors import BuildError
from cnbsim.model._fields import Fields
from cnbsim.model.api import ApiVersion
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

    def to_toml(self, api: ApiVersion) -> dict[str, Any]:
        out: dict[str, Any] = {}
        flags = {k: getattr(self.types, k) for k in FLAGS}
        if api < ApiVersion(0, 6):
            out.update(flags)  # buildpack.md <= 0.5: launch/build/cache were top-level keys
        else:
            out["types"] = flags
        if self.metadata:
            out["metadata"] = self.metadata
        return out


def parse_layer_toml(data: dict[str, Any], path: Path, api: ApiVersion) -> LayerMetadata:
    top = Fields(data, path, error=BuildError)
    top_level = [k for k in FLAGS if k in data]
    if api >= ApiVersion(0, 6):
        if top_level:
            # lc:buildpack/layermetadata.go, Buildpack API >= 0.6.
            raise BuildError(f"the launch, cache and build flags should be in the types table of {path}",
                             file=path, field=top_level[0],
                             hint=f"move them under [types] (Buildpack API {api} requires it)")
        t = top.sub("types")
    else:
        t = top
    return LayerMetadata(LayerTypes(t.bool("launch"), t.bool("build"), t.bool("cache")),
                         dict(top.table("metadata")))


def read_layer_toml(path: Path, api: ApiVersion) -> LayerMetadata:
    data = read_toml(path, what="layer metadata file", error=BuildError)
    return parse_layer_toml(data, path, api)
