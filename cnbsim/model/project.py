"""project.toml, the project descriptor (buildpacks/spec extensions/project-descriptor.md).

Only what the exporter records: `[_]` (or schema 0.1's `[project]`) `version` and `source-url`,
which pack puts in the io.buildpacks.project.metadata label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnbsim.errors import CnbsimError, ConfigError
from cnbsim.model._fields import Fields
from cnbsim.tomlio import read_toml


@dataclass(frozen=True)
class ProjectDescriptor:
    path: Path
    version: str = ""
    source_url: str = ""


def read_project_toml(path: Path, error: type[CnbsimError] = ConfigError) -> ProjectDescriptor | None:
    """The app's project.toml, or None when it has none; a bad one raises `error`."""
    if not path.is_file():
        return None
    top = Fields(read_toml(path, what="project descriptor (project.toml)", error=error), path, error=error)
    table = top.sub("_") if top.has("_") else top.sub("project")
    return ProjectDescriptor(path, table.str("version"), table.str("source-url"))
