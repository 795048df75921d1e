"""Finding buildpacks: a single buildpack dir, or a buildpacks dir in the Platform API layout.

buildpacks/spec platform.md#buildpacks-directory-layout: `<buildpacks>/<id with / as _>/<version>/buildpack.toml`
(lifecycle platform/dir_store.go LookupBp).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cnbsim.errors import ConfigError
from cnbsim.model.buildpack import BuildpackDescriptor, CompositeBuildpack, escape_id, read_buildpack_toml
from cnbsim.model.order import OrderGroup


class BuildpackStore:
    """Buildpack descriptors by id and version, from explicit dirs and/or layout dirs."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], BuildpackDescriptor] = {}
        self._layout_dirs: list[Path] = []

    @classmethod
    def from_paths(cls, paths: Iterable[Path | str]) -> BuildpackStore:
        store = cls()
        for path in paths:
            store.add_path(Path(path))
        return store

    def add_path(self, path: Path) -> list[BuildpackDescriptor]:
        """A buildpack dir (has buildpack.toml) or a buildpacks dir (<id>/<version>/buildpack.toml)."""
        if os.path.lexists(path / "buildpack.toml"):
            return [self.add(read_buildpack_toml(path / "buildpack.toml"))]   # a directory there: its error
        if not path.is_dir():
            raise ConfigError("is not a buildpack directory (no buildpack.toml) nor a buildpacks directory",
                              file=path, hint="give a directory that contains buildpack.toml")
        self.add_layout_dir(path)
        found = [self.add(read_buildpack_toml(toml)) for toml in sorted(path.glob("*/*/buildpack.toml"))]
        if not found:
            raise ConfigError("holds no buildpack (no buildpack.toml, nor <id>/<version>/buildpack.toml)",
                              file=path, hint="give a directory that contains buildpack.toml")
        return found

    def add_layout_dir(self, path: Path) -> None:
        """A buildpacks dir whose descriptors are looked up lazily, as the lifecycle does."""
        if not path.is_dir():
            raise ConfigError("buildpacks directory not found", file=path,
                              hint="give the directory that holds <id with / as _>/<version>/buildpack.toml")
        self._layout_dirs.append(path.absolute())

    def add(self, desc: BuildpackDescriptor) -> BuildpackDescriptor:
        key = (desc.id, desc.version)
        other = self._known.get(key)
        if other is not None and other.root.resolve() != desc.root.resolve():
            raise ConfigError(f"duplicate buildpack {desc.key}: also defined by {other.path}",
                              file=desc.path, field="buildpack.id",
                              hint="give each buildpack once, or change one id or version")
        self._known[key] = desc
        return desc

    def all(self) -> list[BuildpackDescriptor]:
        return list(self._known.values())

    def order_buildpacks(self, order: Iterable[OrderGroup]) -> list[BuildpackDescriptor]:
        """The buildpacks (not composites) that `order` names, those of its composites' orders
        included, each once; an entry that cannot be found is left out (detect reports it)."""
        found: dict[tuple[str, str], BuildpackDescriptor] = {}
        seen: set[tuple[str, str]] = set()
        pending = [order]
        while pending:
            for group in pending.pop():
                for el in group.group:
                    if (el.id, el.version) in seen:
                        continue
                    seen.add((el.id, el.version))
                    try:
                        desc = self.lookup(el.id, el.version)
                    except ConfigError:
                        continue
                    if isinstance(desc, CompositeBuildpack):
                        pending.append(desc.order)
                    else:
                        found.setdefault((desc.id, desc.version), desc)
        return list(found.values())

    def versions(self, bp_id: str) -> list[str]:
        return sorted({v for (i, v) in self._known if i == bp_id})

    def lookup(self, bp_id: str, version: str = "") -> BuildpackDescriptor:
        if not version:
            # pack's builder resolveRef: an order entry without a version takes the only one there is.
            versions = self.versions(bp_id)
            if len(versions) == 1:
                return self._known[(bp_id, versions[0])]
            if len(versions) > 1:
                raise ConfigError(f"unable to resolve version: multiple versions of {bp_id} - "
                                  "must specify an explicit version", hint=f"available: {', '.join(versions)}")
            raise ConfigError(f"no versions of buildpack {bp_id} were found",
                              hint="add the buildpack (a directory with buildpack.toml) or fix the id")
        found = self._known.get((bp_id, version))
        if found is not None:
            return found
        for layout in self._layout_dirs:
            toml = layout / escape_id(bp_id) / version / "buildpack.toml"
            if toml.is_file():
                desc = read_buildpack_toml(toml)
                if (desc.id, desc.version) != (bp_id, version):
                    raise ConfigError(f"declares {desc.key}, but its location says {bp_id}@{version}",
                                      file=toml, field="buildpack.id",
                                      hint="the layout is <id with / as _>/<version>/buildpack.toml")
                return self.add(desc)
        where = ", ".join(str(d / escape_id(bp_id) / version / "buildpack.toml") for d in self._layout_dirs)
        have = self.versions(bp_id)
        raise ConfigError(f"buildpack {bp_id}@{version} not found" + (f" (looked for {where})" if where else ""),
                          hint=(f"available versions: {', '.join(have)}" if have
                                else "add the buildpack directory, or fix the id/version in the order"))
