"""builder.toml, pack's builder configuration (pack's `builder.toml` schema; buildpacks/spec platform.md#ordertoml-toml
for its `[[order]]`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbsim.errors import ConfigError
from cnbsim.model._fields import Fields
from cnbsim.model.order import OrderGroup, parse_order_groups
from cnbsim.tomlio import read_toml


@dataclass(frozen=True)
class BuilderBuildpack:
    uri: str
    id: str = ""
    version: str = ""


@dataclass(frozen=True)
class Builder:
    path: Path
    buildpacks: tuple[BuilderBuildpack, ...]
    order: tuple[OrderGroup, ...]
    description: str = ""
    # Recorded, not used: cnbsim has no images to pull.
    stack: dict[str, Any] = field(default_factory=dict, hash=False)
    build: dict[str, Any] = field(default_factory=dict, hash=False)
    run: dict[str, Any] = field(default_factory=dict, hash=False)
    lifecycle: dict[str, Any] = field(default_factory=dict, hash=False)
    detect_hint: str = ""   # cnbsim's own `[cnbsim] detect-hint`: shown when no group passes


def read_builder_toml(path: Path) -> Builder:
    path = path.absolute()
    top = Fields(read_toml(path, what="builder.toml"), path)
    bps = tuple(BuilderBuildpack(b.str("uri"), b.str("id"), b.str("version")) for b in top.tables("buildpacks"))
    for i, b in enumerate(bps):
        if not b.uri and not b.id:
            raise ConfigError("needs a uri (or an id)", file=path, field=f"buildpacks[{i}]",
                              hint='add uri = "<path or image reference>"')
    order = parse_order_groups(top, path, require_version=False)
    if not order:
        raise ConfigError("has no [[order]] groups", file=path, field="order",
                          hint="add [[order]] with [[order.group]] id = \"...\" entries")
    return Builder(path, bps, order, top.str("description"), top.table("stack"), top.table("build"),
                   top.table("run"), top.table("lifecycle"),
                   Fields(top.table("cnbsim"), path, "cnbsim").str("detect-hint"))
