"""buildpack.toml (buildpacks/spec buildpack.md#buildpacktoml-toml), as lifecycle buildpack/bp_descriptor.go reads it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from cnbsim.errors import BuildpackApiError, ConfigError
from cnbsim.model._fields import Fields
from cnbsim.model.api import SUPPORTED_BUILDPACK_APIS, ApiVersion, supported_range
from cnbsim.model.order import GroupElement, OrderGroup, parse_order_groups
from cnbsim.tomlio import read_toml

# buildpack.md: "MUST only contain numbers, letters, and the characters ., /, and -"
# and MUST NOT be one of the reserved names. [IMPL] the lifecycle does not check ids;
# cnbsim does, because an id like ".." would make <layers>/<id> escape the layers dir.
_ID = re.compile(r"^[A-Za-z0-9./-]+$")
RESERVED_IDS = frozenset({"app", "config", "generated", "sbom"})


def check_id(value: str, fields: Fields, key: str = "id") -> str:
    if not _ID.fullmatch(value) or value in {".", ".."} or "/../" in f"/{value}/" or value.startswith("/"):
        raise fields.fail(key, f"'{value}' is not a valid buildpack id",
                          "use only letters, digits, '.', '/' and '-' (e.g. 'my-org/my-buildpack')")
    if value in RESERVED_IDS:
        raise fields.fail(key, f"'{value}' is a reserved name", f"pick an id other than {sorted(RESERVED_IDS)}")
    return value


def escape_id(bp_id: str) -> str:
    """lifecycle launch/launch.go EscapeID: every '/' becomes '_'."""
    return bp_id.replace("/", "_")


@dataclass(frozen=True)
class Distro:
    name: str = ""
    version: str = ""


@dataclass(frozen=True)
class Target:
    os: str = ""
    arch: str = ""
    arch_variant: str = ""
    distros: tuple[Distro, ...] = ()


@dataclass(frozen=True)
class BuildpackInfo:
    id: str
    version: str
    name: str = ""
    homepage: str = ""
    clear_env: bool = False
    sbom_formats: tuple[str, ...] = ()
    exec_env: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildpackDescriptor:
    """A parsed buildpack.toml: a ComponentBuildpack or a CompositeBuildpack (buildpacks/spec buildpack.md#buildpacktoml-toml)."""

    api: ApiVersion                      # as declared; check_api() says whether the lifecycle supports it
    info: BuildpackInfo
    path: Path
    targets: tuple[Target, ...] = ()
    stacks: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # A composite's api that is not a version: the lifecycle parses it only where it verifies the
    # buildpack (cmd/apis.go VerifyBuildpackAPI, for the order's own elements), so one nested in
    # another composite is expanded all the same (buildpack/bp_descriptor.go keeps it as text).
    api_error: BuildpackApiError | None = field(default=None, compare=False, repr=False)

    is_composite: ClassVar[bool] = False

    @property
    def declared_api(self) -> str:
        """`api` as buildpack.toml gives it."""
        return str(self.raw.get("api", self.api))

    @property
    def order(self) -> tuple[OrderGroup, ...]:
        """The groups a composite is made of; none for a component."""
        return ()

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def key(self) -> str:
        return f"{self.info.id}@{self.info.version}"

    @property
    def root(self) -> Path:
        return self.path.parent

    def check_api(self) -> ApiVersion:
        """The declared API if the lifecycle supports it, else exit 12 (lifecycle cmd/apis.go VerifyBuildpackAPI,
        run for each buildpack a phase uses, before it runs)."""
        if self.api_error is not None:
            raise self.api_error
        if self.api not in SUPPORTED_BUILDPACK_APIS:
            raise BuildpackApiError(
                f"buildpack API version '{self.api}' is incompatible with the lifecycle",
                file=self.path, field="api",
                hint=f"set API for buildpack '{self.key}' to one of {supported_range(SUPPORTED_BUILDPACK_APIS)}")
        return self.api

    def effective_targets(self) -> tuple[Target, ...]:
        """buildpacks/spec buildpack.md#targets, as lifecycle buildpack/bp_descriptor.go inferTargets does."""
        if self.targets:
            return self.targets
        inferred: list[Target] = []
        api = self.api
        for stack in self.stacks:
            if stack == "io.buildpacks.stacks.bionic" and (api.at_least("0.10") or len(self.stacks) == 1):
                inferred.append(Target(os="linux", arch="amd64", distros=(Distro("ubuntu", "18.04"),)))
            elif stack == "*":
                inferred.append(Target())
        if not inferred and (self.root / "bin" / "build").exists():
            inferred.append(Target(os="linux"))
        return tuple(inferred)

    def to_toml(self) -> dict[str, Any]:
        return self.raw


@dataclass(frozen=True)
class ComponentBuildpack(BuildpackDescriptor):
    """A buildpack that runs: bin/detect and bin/build."""


@dataclass(frozen=True)
class CompositeBuildpack(BuildpackDescriptor):
    """A buildpack made of others: an `[[order]]` of groups, expanded at detection (lifecycle phase/detector.go)."""

    order: tuple[OrderGroup, ...] = ()   # a field here, the base's property () there

    is_composite: ClassVar[bool] = True


def parse_buildpack_toml(data: dict[str, Any], path: Path) -> BuildpackDescriptor:
    top = Fields(data, path)
    api_text = top.str("api", required=True, hint='add api = "0.10" at the top of buildpack.toml')
    bp = top.sub("buildpack")
    if not top.has("buildpack"):
        raise top.fail("buildpack", "table is missing", "add a [buildpack] table with id and version")
    info = BuildpackInfo(
        id=check_id(bp.str("id", required=True), bp),
        version=bp.str("version", required=True, hint='add version = "1.0.0" under [buildpack]'),
        name=bp.str("name"),
        homepage=bp.str("homepage"),
        clear_env=bp.bool("clear-env"),
        sbom_formats=bp.str_list("sbom-formats"),
        exec_env=_exec_env(bp),
    )
    targets = []
    for t in top.tables("targets"):
        distros = tuple(Distro(d.str("name"), d.str("version")) for d in t.tables("distros"))
        # [GAP] spec names the key "variant"; the lifecycle reads "arch-variant". Accept both.
        variant = t.str("arch-variant") or t.str("variant")
        targets.append(Target(t.str("os"), t.str("arch"), variant, distros))
    stacks = tuple(s.str("id", required=True) for s in top.tables("stacks"))
    order = parse_order_groups(top, path)
    try:
        api = ApiVersion.parse(api_text)
        api_error = None
    except ValueError:
        # exit 12, as lifecycle cmd/apis.go VerifyBuildpackAPI gives it (there when the buildpack is used)
        api_error = BuildpackApiError(f"parse buildpack API '{api_text}' for buildpack '{info.id}@{info.version}'",
                                      file=path, field="api", hint="set api = \"0.10\" (a <major>.<minor> version)")
        if not order:
            raise api_error from None
        api = ApiVersion(0, 0)   # never read: check_api() raises api_error first
    if order:
        return CompositeBuildpack(api=api, info=info, path=path, targets=tuple(targets), stacks=stacks, raw=data,
                                  order=order, api_error=api_error)
    return ComponentBuildpack(api=api, info=info, path=path, targets=tuple(targets), stacks=stacks, raw=data)


def _exec_env(bp: Fields) -> tuple[str, ...]:
    # [GAP] the spec shows [[buildpack.exec-env]] name = "..."; the lifecycle reads
    # exec-env = ["..."] under [buildpack]. Accept both spellings.
    value = bp.data.get("exec-env", [])
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return tuple(t.str("name", required=True) for t in bp.tables("exec-env"))
    return bp.str_list("exec-env")


def read_buildpack_toml(path: Path) -> BuildpackDescriptor:
    path = path.absolute()
    try:
        st = path.stat()
    except OSError:
        return parse_buildpack_toml(read_toml(path, what="buildpack.toml"), path)  # reports the error
    return _read_cached(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=512)
def _read_cached(path: Path, mtime_ns: int, size: int) -> BuildpackDescriptor:
    """Descriptors are immutable: one parse per file version (builders list the same ones often)."""
    return parse_buildpack_toml(read_toml(path, what="buildpack.toml"), path)


__all__ = [
    "BuildpackDescriptor",
    "BuildpackInfo",
    "ComponentBuildpack",
    "CompositeBuildpack",
    "ConfigError",
    "Distro",
    "GroupElement",
    "Target",
    "check_id",
    "escape_id",
    "parse_buildpack_toml",
    "read_buildpack_toml",
]
