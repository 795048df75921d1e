"""<layers>/config/metadata.toml (buildpacks/spec platform.md#metadatatoml-toml), written by the builder, read by the launcher."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnbsim.errors import LaunchError
from cnbsim.model._fields import Fields
from cnbsim.model.api import ApiVersion
from cnbsim.model.launch import BomEntry, Label, Process, Slice
from cnbsim.model.order import GroupElement, api_field
from cnbsim.tomlio import read_toml


@dataclass(frozen=True)
class BuildMetadata:
    buildpacks: tuple[GroupElement, ...] = ()
    processes: tuple[Process, ...] = ()
    labels: tuple[Label, ...] = ()
    slices: tuple[Slice, ...] = ()
    default_process: str = ""
    bom: tuple[BomEntry, ...] = ()

    def process(self, ptype: str) -> Process | None:
        return next((p for p in self.processes if p.type == ptype), None)

    def buildpack(self, bp_id: str) -> GroupElement | None:
        return next((b for b in self.buildpacks if b.id == bp_id), None)

    def to_toml(self, platform_api: ApiVersion) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.bom:
            out["bom"] = [b.to_toml() for b in self.bom]   # Platform API < 0.9 only
        if self.default_process:
            out["buildpack-default-process-type"] = self.default_process
        bps = [b.to_toml() for b in self.buildpacks]
        if bps:
            out["buildpacks"] = bps
        if self.labels:
            out["labels"] = [{"key": lab.key, "value": lab.value} for lab in self.labels]
        # lifecycle phase/builder.go: the process list is never nil, so `processes = []` when there is none
        out["processes"] = [p.to_metadata_toml(platform_api) for p in self.processes]
        if self.slices:
            out["slices"] = [{"paths": list(s.paths)} for s in self.slices]
        return out


def read_metadata_toml(path: Path) -> BuildMetadata:
    top = Fields(read_toml(path, what="build metadata (config/metadata.toml)", error=LaunchError),
                 path, error=LaunchError)
    processes = []
    for p in top.tables("processes"):
        raw = p.data.get("command", [])
        command = (raw,) if isinstance(raw, str) else tuple(p.str_list("command"))
        processes.append(Process(
            type=p.str("type", required=True), command=command, args=p.str_list("args"),
            direct=p.bool("direct"), buildpack_id=p.str("buildpack-id"),
            working_dir=p.str("working-dir"), exec_env=p.str_list("exec-env")))
    return BuildMetadata(
        buildpacks=tuple(GroupElement(b.str("id", required=True), b.str("version"), api=api_field(b),
                                      homepage=b.str("homepage")) for b in top.tables("buildpacks")),
        processes=tuple(processes),
        labels=tuple(Label(lab.str("key"), lab.str("value")) for lab in top.tables("labels")),
        slices=tuple(Slice(s.str_list("paths")) for s in top.tables("slices")),
        default_process=top.str("buildpack-default-process-type"))
