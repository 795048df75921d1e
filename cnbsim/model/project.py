"""project.toml, the project descriptor (buildpacks/spec extensions/project-descriptor.md), read as pack reads it.

Schema 0.2 (`[_] schema-version = "0.2"`): `[_]` version/source-url, `[io.buildpacks]` include/exclude,
`[[io.buildpacks.group]]` and `[[io.buildpacks.build.env]]` (the deprecated `[[io.buildpacks.env.build]]` too).
Schema 0.1 (no schema-version, as pack defaults): `[project]`, `[build]` include/exclude,
`[[build.buildpacks]]` and `[[build.env]]`. pack's rules (pack pkg/project/project.go validate): include and
exclude are mutually exclusive, a buildpack has an id or a uri, and not both a uri and a version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cnbsim.errors import CnbsimError, ConfigError
from cnbsim.model._fields import Fields
from cnbsim.tomlio import read_toml

FILE_NAME = "project.toml"
SCHEMAS = ("0.1", "0.2")

# The keys cnbsim reads, per table; anything else in these tables is what pack warns about and ignores.
_KNOWN = {
    "0.2": {"_": {"schema-version", "id", "name", "version", "authors", "documentation-url", "source-url",
                  "licenses", "metadata"},
            "io.buildpacks": {"include", "exclude", "group", "build", "env", "builder", "pre", "post"},
            "io.buildpacks.build": {"env"}, "io.buildpacks.env": {"build"}},
    "0.1": {"project": {"id", "name", "version", "authors", "documentation-url", "source-url", "licenses"},
            "build": {"include", "exclude", "buildpacks", "env", "builder", "pre", "post"}},
}


@dataclass(frozen=True)
class DescriptorBuildpack:
    """One `[[io.buildpacks.group]]` (0.2) / `[[build.buildpacks]]` (0.1) entry: an id (with a version) or a uri."""

    id: str = ""
    version: str = ""
    uri: str = ""
    field: str = ""          # where it was declared, e.g. io.buildpacks.group[0]

    def reference(self, base: Path) -> str:
        """The `--buildpack` reference it stands for; a local uri is relative to the project dir (as pack)."""
        if self.uri:
            uri = self.uri[len("file://"):] if self.uri.startswith("file://") else self.uri
            if uri.startswith("oci:"):
                rest = uri[len("oci:"):]
                return uri if Path(rest).is_absolute() else f"oci:{base / rest}"
            if "://" in uri or uri.startswith("urn:"):
                return uri
            path = Path(uri)
            if path.is_absolute() or (base / path).exists() or uri.startswith((".", "/")):
                return str(path if path.is_absolute() else base / path)
            return uri                   # a registry reference (gcr.io/paketo-buildpacks/pip, ...)
        return f"{self.id}@{self.version}" if self.version else self.id


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str


@dataclass(frozen=True)
class ProjectDescriptor:
    path: Path
    schema: str = "0.1"
    version: str = ""
    source_url: str = ""
    include: tuple[str, ...] | None = None     # None: not given (an empty list is given, as in pack)
    exclude: tuple[str, ...] | None = None
    group: tuple[DescriptorBuildpack, ...] = ()
    env: tuple[EnvVar, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def group_field(self) -> str:
        return "io.buildpacks.group" if self.schema == "0.2" else "build.buildpacks"

    def env_dict(self) -> dict[str, str]:
        return {e.name: e.value for e in self.env}

    def buildpack_refs(self) -> list[str]:
        return [bp.reference(self.path.parent) for bp in self.group]

    def file_filter(self) -> FileFilter | None:
        """The include/exclude filter of app files, None when the descriptor gives neither."""
        if self.include is not None:
            return FileFilter(self.include, include=True)
        if self.exclude is not None:
            return FileFilter(self.exclude, include=False)
        return None


class FileFilter:
    """pack's app file filter: gitignore-style patterns matched against each path relative to the app dir
    (pack pkg/client/build.go: `include` keeps only matching files, `exclude` drops matching ones)."""

    def __init__(self, patterns: Iterable[str], *, include: bool) -> None:
        import pathspec
        self.patterns = tuple(patterns)
        self.include = include
        self._spec = pathspec.GitIgnoreSpec.from_lines(self.patterns)

    def keeps(self, rel: str, is_dir: bool = False) -> bool:
        matched = self._spec.match_file(rel + "/" if is_dir else rel)
        return matched if self.include else not matched


def read_project_toml(path: Path, error: type[CnbsimError] = ConfigError) -> ProjectDescriptor | None:
    """The app's project.toml, or None when it has none; a bad one raises `error` naming the field and the fix."""
    if not path.is_file():
        return None
    top = Fields(read_toml(path, what="project descriptor (project.toml)", error=error), path, error=error)
    project = top.sub("_") if top.has("_") else None
    schema = project.str("schema-version") if project is not None else ""
    warnings: list[str] = []
    if not schema:
        # pack: "No schema version declared in project.toml, defaulting to schema version 0.1"
        schema = "0.1"
    if schema not in SCHEMAS:
        raise error(f"unknown project descriptor schema version {schema}", file=path, field="_.schema-version",
                    hint="use schema-version = \"0.2\" (or leave it out for 0.1)")
    if schema == "0.2":
        meta = project if project is not None else Fields({}, path, "_", error)
        bps = top.sub("io").sub("buildpacks")
        env_tables = bps.sub("build").tables("env") + bps.sub("env").tables("build")
        group_key, tables = "group", bps
    else:
        meta = top.sub("project")
        bps = top.sub("build")
        env_tables = bps.tables("env")
        group_key, tables = "buildpacks", bps
        if top.has("io"):
            warnings.append(_unsupported(path, schema, ["io"]))
    warnings += _unknown_keys(top, path, schema)
    include = bps.str_list("include") if bps.has("include") else None
    exclude = bps.str_list("exclude") if bps.has("exclude") else None
    if include is not None and exclude is not None:
        raise error("cannot have both include and exclude defined", file=path, field=f"{bps.prefix}.include",
                    hint="keep one of include and exclude (gitignore-style patterns)")
    group_tables = tables.tables(group_key)
    group = tuple(_buildpack(t, error) for t in group_tables)
    entry_keys = [f"{t.prefix}.{k}" for t in group_tables for k in sorted(set(t.data) - {"id", "version", "uri"})]
    entry_keys += [f"{t.prefix}.{k}" for t in env_tables for k in sorted(set(t.data) - {"name", "value"})]
    if entry_keys:
        warnings.append(_unsupported(path, schema, entry_keys))
    env = []
    for t in env_tables:
        name = t.str("name", required=True, hint="write name = \"MY_VAR\" and value = \"...\"")
        env.append(EnvVar(name, t.str("value")))
    for key in ("pre", "post"):
        if bps.has(key):
            raise error("pre/post groups are not supported by cnbsim", file=path, field=f"{bps.prefix}.{key}",
                        hint=f"list the buildpacks in [[{bps.prefix}.{group_key}]] instead")
    if bps.has("builder"):
        warnings.append(f"{path}: field '{bps.prefix}.builder' names a builder image; cnbsim ignores it "
                        "(give a builder.toml with --builder)")
    return ProjectDescriptor(path, schema, meta.str("version"), meta.str("source-url"), include, exclude, group,
                             tuple(env), tuple(warnings))


def _buildpack(t: Fields, error: type[CnbsimError]) -> DescriptorBuildpack:
    if t.has("script"):
        raise t.fail("script", "inline buildpacks are not supported by cnbsim",
                     "write the script as a buildpack directory (buildpack.toml, bin/detect, bin/build) and "
                     "give its uri")
    bp = DescriptorBuildpack(t.str("id"), t.str("version"), t.str("uri"), t.prefix)
    if not bp.id and not bp.uri:
        raise error("buildpacks must have an id or uri defined", file=t.file, field=t.prefix,
                    hint="add id = \"my/buildpack\" or uri = \"./my-buildpack\"")
    if bp.uri and bp.version:
        raise error("buildpacks cannot have both uri and version defined", file=t.file, field=f"{t.prefix}.version",
                    hint="drop version (the uri names the buildpack), or give id and version instead of uri")
    return bp


def _unknown_keys(top: Fields, path: Path, schema: str) -> list[str]:
    """pack warns about (and ignores) the keys of its tables it does not know; so does cnbsim, naming them."""
    unknown = []
    for table, known in _KNOWN[schema].items():
        data: object = top.data
        for part in table.split("."):
            data = data.get(part, {}) if isinstance(data, dict) else {}
        if isinstance(data, dict):
            unknown += [f"{table}.{k}" for k in sorted(set(data) - known)]
    return [_unsupported(path, schema, unknown)] if unknown else []


def _unsupported(path: Path, schema: str, keys: list[str]) -> str:
    return (f"{path}: these keys are not supported in schema version {schema} and are ignored: "
            f"{', '.join(keys)} (check their spelling, or set [_] schema-version = \"0.2\" for io.buildpacks tables)")
