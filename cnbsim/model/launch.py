"""launch.toml, build.toml and store.toml (buildpacks/spec buildpack.md#launchtoml-toml, #buildtoml-toml, #storetoml-toml).

Buildpack-API differences (buildpacks/spec buildpack.md, per Buildpack API): `command` is a string before 0.9 and an
array from 0.9; `direct` is allowed (default false) before 0.9 and forbidden from 0.9,
where every process is direct; `working-dir` is honoured from 0.8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbsim.errors import BuildError
from cnbsim.model._fields import Fields
from cnbsim.model.api import ApiVersion
from cnbsim.tomlio import read_toml

# [IMPL] lc rejects these only at export; cnbsim rejects them at build, because the
# type becomes the file name /cnb/process/<type> and "/" would escape that directory.
FORBIDDEN_TYPE_CHARS = frozenset('/><:|&\\')
PROCESS_TYPE_HINT = "use letters, digits, '.', '_' and '-'"


def process_type_problem(ptype: str) -> str:
    """'' for a valid process type, else the lifecycle's message (lifecycle layers/launcher.go ProcessTypesLayer)."""
    if set(ptype) & FORBIDDEN_TYPE_CHARS:
        return f"invalid process type '{ptype}': type may not contain characters '/><:|&\\'"
    return ""


@dataclass(frozen=True)
class Process:
    type: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    direct: bool = True
    default: bool = False
    buildpack_id: str = ""
    working_dir: str = ""
    exec_env: tuple[str, ...] = ()

    def to_metadata_toml(self, platform_api: ApiVersion) -> dict[str, Any]:
        """lifecycle launch/launch.go: field order type, command, args, direct, buildpack-id, working-dir, exec-env."""
        command: Any = list(self.command)
        args = list(self.args)
        if platform_api < ApiVersion(0, 10):
            # platform.md < 0.10: command is a string; extra command entries move into args.
            command, args = (self.command[0] if self.command else ""), [*self.command[1:], *args]
        out: dict[str, Any] = {"type": self.type, "command": command}
        # lifecycle launch/launch.go WithPlatformAPI: before 0.10 args is command[1:] + args, never nil, so
        # `args = []` is written even when empty
        if args or (platform_api < ApiVersion(0, 10) and self.command):
            out["args"] = args
        out["direct"] = self.direct
        out["buildpack-id"] = self.buildpack_id
        if self.working_dir:
            out["working-dir"] = self.working_dir
        if self.exec_env:
            out["exec-env"] = list(self.exec_env)
        return out


@dataclass(frozen=True)
class Label:
    key: str
    value: str


@dataclass(frozen=True)
class Slice:
    paths: tuple[str, ...]


@dataclass(frozen=True)
class BomEntry:
    """A legacy `[[bom]]` entry (deprecated since Buildpack API 0.7), tagged with its buildpack."""

    name: str
    metadata: dict[str, Any] | None = field(default=None, hash=False)
    buildpack_id: str = ""
    buildpack_version: str = ""

    def to_json(self) -> dict[str, Any]:
        # lifecycle buildpack/files.go BOMEntry: {"name", "metadata" (null when absent), "buildpack"}
        return {"name": self.name, "metadata": self.metadata,
                "buildpack": {"id": self.buildpack_id, "version": self.buildpack_version}}

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.metadata:
            out["metadata"] = self.metadata
        out["buildpack"] = {"id": self.buildpack_id, "version": self.buildpack_version}
        return out


def parse_bom(top: Fields, bp_id: str, bp_version: str) -> tuple[BomEntry, ...]:
    """`[[bom]]` of launch.toml / build.toml (lifecycle buildpack/bom.go validateBOM)."""
    out = []
    for b in top.tables("bom"):
        name = b.str("name")
        if b.str("version"):
            raise b.fail("version", f"bom entry '{name}' has a top level version which is not allowed. "
                         "The buildpack should instead set metadata.version", "move it to [bom.metadata]")
        out.append(BomEntry(name, dict(b.table("metadata")) if b.has("metadata") else None, bp_id, bp_version))
    return tuple(out)


@dataclass(frozen=True)
class LaunchToml:
    processes: tuple[Process, ...] = ()
    labels: tuple[Label, ...] = ()
    slices: tuple[Slice, ...] = ()
    bom: tuple[BomEntry, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)


def _process(p: Fields, api: ApiVersion, bp_id: str, warnings: list[str]) -> Process:
    ptype = p.str("type", required=True, hint='add type = "web" (or another process type)')
    problem = process_type_problem(ptype)
    if problem:
        raise p.fail("type", problem, PROCESS_TYPE_HINT)
    raw = p.data.get("command")
    if api < ApiVersion(0, 9):
        if not isinstance(raw, str):
            raise p.fail("command", f"must be a string for Buildpack API {api}",
                         'write command = "python -m app" (an array is Buildpack API 0.9+)')
        command: tuple[str, ...] = (raw,)
        direct = p.bool("direct")
    else:
        if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
            raise p.fail("command", f"must be an array of strings for Buildpack API {api}",
                         'write command = ["python", "-m", "app"]')
        command = tuple(raw)
        if p.has("direct"):
            raise p.fail("direct", "process.direct is not supported on this buildpack version",
                         f"remove it: every process is direct since Buildpack API 0.9 (this buildpack declares {api})")
        direct = True
    working_dir = p.str("working-dir")
    if working_dir and api < ApiVersion(0, 8):
        # buildpacks/spec buildpack.md, per Buildpack API: ignored before Buildpack API 0.8, with a warning.
        warnings.append(f"process working-dir is not supported by this buildpack API "
                        f"version ({api}) and will be ignored (buildpack {bp_id}, process {ptype})")
        working_dir = ""
    return Process(type=ptype, command=command, args=p.str_list("args"), direct=direct,
                   default=p.bool("default"), buildpack_id=bp_id, working_dir=working_dir,
                   exec_env=p.str_list("exec-env"))


def parse_launch_toml(data: dict[str, Any], path: Path, api: ApiVersion, bp_id: str,
                      bp_version: str = "") -> LaunchToml:
    top = Fields(data, path, error=BuildError)
    warnings: list[str] = []
    processes = tuple(_process(p, api, bp_id, warnings) for p in top.tables("processes"))
    if sum(p.default for p in processes) > 1:
        raise BuildError("multiple default process types aren't allowed", file=path, field="processes",
                         hint="mark only one process with default = true")
    labels = tuple(Label(lab.str("key", required=True), lab.str("value")) for lab in top.tables("labels"))
    slices = tuple(Slice(s.str_list("paths")) for s in top.tables("slices"))
    return LaunchToml(processes, labels, slices, parse_bom(top, bp_id, bp_version), tuple(warnings))


def read_launch_toml(path: Path, api: ApiVersion, bp_id: str, bp_version: str = "") -> LaunchToml:
    if not path.exists():
        return LaunchToml()
    return parse_launch_toml(read_toml(path, what="launch.toml", error=BuildError), path, api, bp_id, bp_version)


@dataclass(frozen=True)
class BuildToml:
    unmet: tuple[str, ...] = ()
    bom: tuple[BomEntry, ...] = ()


def read_build_toml(path: Path, plan_names: set[str], bp_id: str = "", bp_version: str = "") -> BuildToml:
    """build.toml `[[unmet]] name`: each must name a dependency in this buildpack's plan."""
    if not path.exists():
        return BuildToml()
    top = Fields(read_toml(path, what="build.toml", error=BuildError), path, error=BuildError)
    bom = parse_bom(top, bp_id, bp_version)
    unmet = []
    for u in top.tables("unmet"):
        name = u.str("name", required=True, hint="unmet.name is required")
        if name not in plan_names:
            raise u.fail("name", f"unmet.name '{name}' must match a requested dependency",
                         f"this buildpack's plan has {sorted(plan_names) or 'no entries'}")
        unmet.append(name)
    return BuildToml(tuple(unmet), bom)


@dataclass(frozen=True)
class StoreToml:
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)


def read_store_toml(path: Path) -> StoreToml | None:
    if not path.exists():
        return None
    top = Fields(read_toml(path, what="store.toml", error=BuildError), path, error=BuildError)
    return StoreToml(dict(top.table("metadata")))
