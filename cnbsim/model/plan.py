"""Build plans: the one bin/detect writes, plan.toml (detector output) and the buildpack plan.

buildpacks/spec buildpack.md#build-plan-toml, #buildpack-plan-toml; platform.md#plantoml-toml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbsim.errors import CnbsimError, ConfigError
from cnbsim.model._fields import Fields
from cnbsim.tomlio import parse_toml, read_toml


@dataclass(frozen=True)
class Provide:
    name: str


@dataclass(frozen=True)
class Require:
    name: str
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass(frozen=True)
class PlanOption:
    """One alternative of a detect build plan: the top level, or one [[or]] table."""

    provides: tuple[Provide, ...] = ()
    requires: tuple[Require, ...] = ()


@dataclass(frozen=True)
class DetectPlan:
    """What one bin/detect wrote: the primary alternative and its [[or]] alternatives, in order."""

    primary: PlanOption = PlanOption()
    alternatives: tuple[PlanOption, ...] = ()

    @property
    def options(self) -> tuple[PlanOption, ...]:
        return (self.primary, *self.alternatives)

    def to_toml(self) -> dict[str, Any]:
        def option(o: PlanOption) -> dict[str, Any]:
            out: dict[str, Any] = {}
            if o.provides:
                out["provides"] = [{"name": p.name} for p in o.provides]
            if o.requires:
                out["requires"] = [r.to_toml() for r in o.requires]
            return out
        out = option(self.primary)
        if self.alternatives:
            out["or"] = [option(o) for o in self.alternatives]
        return out


class PlanDecodeError(CnbsimError):
    """A bin/detect wrote a build plan the lifecycle rejects (the buildpack then errors, code -1)."""


def _option(f: Fields, bp_id: str) -> PlanOption:
    provides = tuple(Provide(p.str("name", required=True)) for p in f.tables("provides"))
    requires = []
    for r in f.tables("requires"):
        if r.has("version"):
            # lifecycle buildpack/detect.go: a top-level version key is rejected for every supported API.
            raise PlanDecodeError(
                f'buildpack {bp_id} has a "version" key which is not supported. '
                '"metadata.version" should be used instead', file=f.file, field=f"{r.prefix}.version",
                hint="move it to [requires.metadata] version = \"...\"")
        requires.append(Require(r.str("name", required=True), dict(r.table("metadata"))))
    return PlanOption(provides, tuple(requires))


def parse_detect_plan(text: str, path: Path | str, bp_id: str) -> DetectPlan:
    data = parse_toml(text, path=path, what=f"build plan written by {bp_id}", error=PlanDecodeError)
    top = Fields(data, path, error=PlanDecodeError)
    return DetectPlan(_option(top, bp_id), tuple(_option(o, bp_id) for o in top.tables("or")))


@dataclass(frozen=True)
class Provider:
    id: str
    version: str


@dataclass(frozen=True)
class PlanEntry:
    providers: tuple[Provider, ...]
    requires: tuple[Require, ...]


@dataclass(frozen=True)
class Plan:
    """plan.toml: the resolved plan the detector writes and the builder reads."""

    entries: tuple[PlanEntry, ...] = ()

    def to_toml(self) -> dict[str, Any]:
        if not self.entries:
            return {}
        return {"entries": [
            {"providers": [{"id": p.id, "version": p.version} for p in e.providers],
             "requires": [r.to_toml() for r in e.requires]}
            for e in self.entries]}

    def for_buildpack(self, bp_id: str) -> BuildpackPlan:
        """lifecycle buildpack/build.go: every entry this buildpack provides, all its requires."""
        return BuildpackPlan(tuple(
            r for e in self.entries if any(p.id == bp_id for p in e.providers) for r in e.requires))

    def without_met(self, met: set[str]) -> Plan:
        """Entries whose requires name a dependency the buildpack met are done with."""
        return Plan(tuple(e for e in self.entries if not any(r.name in met for r in e.requires)))


def read_plan_toml(path: Path) -> Plan:
    """An empty file is a valid, empty plan (buildpacks/spec platform.md#builder)."""
    top = Fields(read_toml(path, what="plan.toml"), path)
    entries = []
    for e in top.tables("entries"):
        entries.append(PlanEntry(
            tuple(Provider(p.str("id", required=True), p.str("version")) for p in e.tables("providers")),
            tuple(Require(r.str("name", required=True), dict(r.table("metadata"))) for r in e.tables("requires"))))
    return Plan(tuple(entries))


@dataclass(frozen=True)
class BuildpackPlan:
    """The buildpack plan given to bin/build: `[[entries]] name, metadata`."""

    entries: tuple[Require, ...] = ()

    @property
    def names(self) -> set[str]:
        return {e.name for e in self.entries}

    def to_toml(self) -> dict[str, Any]:
        return {"entries": [e.to_toml() for e in self.entries]} if self.entries else {}


def read_buildpack_plan(path: Path) -> BuildpackPlan:
    top = Fields(read_toml(path, what="buildpack plan"), path)
    return BuildpackPlan(tuple(Require(e.str("name", required=True), dict(e.table("metadata")))
                               for e in top.tables("entries")))


__all__ = [
    "BuildpackPlan",
    "ConfigError",
    "DetectPlan",
    "Plan",
    "PlanDecodeError",
    "PlanEntry",
    "PlanOption",
    "Provide",
    "Provider",
    "Require",
    "parse_detect_plan",
    "read_buildpack_plan",
    "read_plan_toml",
]
