"""order.toml and group.toml (buildpacks/spec platform.md#ordertoml-toml, #grouptoml-toml)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cnbsim.model._fields import Fields
from cnbsim.model.api import ApiVersion
from cnbsim.tomlio import read_toml


@dataclass(frozen=True)
class GroupElement:
    """One entry of an order group, or of group.toml once `api` is known."""

    id: str
    version: str = ""
    optional: bool = False
    api: ApiVersion | None = None    # None in an order (known once the buildpack is looked up)
    homepage: str = ""

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    def participating(self, api: ApiVersion, homepage: str) -> GroupElement:
        return replace(self, optional=False, api=api, homepage=homepage)

    @property
    def api_text(self) -> str:
        return str(self.api) if self.api is not None else ""

    def to_toml(self, *, api: bool = True) -> dict[str, Any]:
        """The entry as group.toml, metadata.toml and the report write it (lifecycle platform/files WriteGroup):
        id, version, api, homepage if set; never optional."""
        out: dict[str, Any] = {"id": self.id, "version": self.version}
        if api:
            out["api"] = self.api_text
        if self.homepage:
            out["homepage"] = self.homepage
        return out


@dataclass(frozen=True)
class OrderGroup:
    group: tuple[GroupElement, ...]


def parse_order_groups(top: Fields, path: Path, *, require_version: bool = True) -> tuple[OrderGroup, ...]:
    groups = []
    for order in top.tables("order"):
        elements = []
        for el in order.tables("group"):
            elements.append(GroupElement(
                id=el.str("id", required=True),
                version=el.str("version", required=require_version,
                               hint="add the buildpack's version; the lifecycle looks up <id>/<version>/buildpack.toml"),
                optional=el.bool("optional")))
        groups.append(OrderGroup(tuple(elements)))
    return tuple(groups)


def read_order_toml(path: Path) -> tuple[OrderGroup, ...]:
    data = read_toml(path, what="order.toml")
    return parse_order_groups(Fields(data, path), path)


def order_to_toml(order: tuple[OrderGroup, ...]) -> dict[str, Any]:
    out = []
    for g in order:
        entries = []
        for el in g.group:
            e: dict[str, Any] = {"id": el.id, "version": el.version}
            if el.optional:
                e["optional"] = True
            entries.append(e)
        out.append({"group": entries})
    return {"order": out}


def group_to_toml(group: tuple[GroupElement, ...]) -> dict[str, Any]:
    """lifecycle platform/files WriteGroup: id, version, api, homepage (if set); never optional."""
    entries = [el.to_toml() for el in group]
    return {"group": entries} if entries else {}


def read_group_toml(path: Path) -> tuple[GroupElement, ...]:
    """An empty file is a valid, empty group (buildpacks/spec platform.md#builder)."""
    top = Fields(read_toml(path, what="group.toml"), path)
    return tuple(
        GroupElement(id=e.str("id", required=True), version=e.str("version", required=True),
                     api=api_field(e), homepage=e.str("homepage"))
        for e in top.tables("group"))


def api_field(fields: Fields, key: str = "api") -> ApiVersion | None:
    """An optional `api = "<major>.<minor>"` of a group entry; None when absent."""
    text = fields.str(key)
    if not text:
        return None
    try:
        return ApiVersion.parse(text)
    except ValueError as exc:
        raise fields.fail(key, str(exc), 'write the buildpack API as "<major>.<minor>", e.g. "0.10"') from None
