"""A build output dir: what an image would hold (`workspace/`, `layers/`, `report.json`).

`OutputDir` writes one so that a failed build never replaces the previous output;
`BuiltOutput` opens one for `run`, `serve`, `inspect` and `export`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbsim.errors import ConfigError
from cnbsim.model.metadata import BuildMetadata, read_metadata_toml
from cnbsim.model.platform_toml import PlatformRecord, read_platform_toml

OUTPUT_MARKER = "report.json"


@dataclass(frozen=True)
class BuiltOutput:
    """A `cnbsim build` output dir: what an image holds."""

    path: Path
    metadata: BuildMetadata
    platform: PlatformRecord = field(default_factory=PlatformRecord)   # the build's default process, run image

    @classmethod
    def open(cls, path: Path | str) -> "BuiltOutput":
        path = Path(path).absolute()
        md = path / "layers" / "config" / "metadata.toml"
        if not md.is_file():
            raise ConfigError("is not a cnbsim build output (no layers/config/metadata.toml)", file=path,
                              hint="run cnbsim build first, and give its --output directory")
        return cls(path, read_metadata_toml(md), read_platform_toml(path))

    @property
    def default_process(self) -> str:
        """The image's default process: the one the build was given (--default-process), else the buildpacks'."""
        return self.platform.process_type or self.metadata.default_process

    @property
    def workspace(self) -> Path:
        return self.path / "workspace"

    @property
    def layers_dir(self) -> Path:
        return self.path / "layers"


class OutputDir:
    """Build in place, but keep the previous output until the new one is complete.

    Buildpacks write absolute paths into layers (virtualenvs, env files), so the output is
    built at its final path; the previous output is moved aside and put back on failure.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()
        self.previous = self.path.with_name(self.path.name + ".cnbsim-previous")

    def __enter__(self) -> "OutputDir":
        if self.previous.exists() and not self.path.exists():
            self.previous.rename(self.path)          # a crash left it aside: it is still the last good one
        shutil.rmtree(self.previous, ignore_errors=True)
        if self.path.exists():
            if not self.path.is_dir() or (any(self.path.iterdir()) and not (self.path / OUTPUT_MARKER).exists()):
                raise ConfigError("output exists and is not a cnbsim output; refusing to replace it",
                                  file=self.path, hint="choose another --output directory")
            self.path.rename(self.previous)
        self.path.mkdir(parents=True)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            shutil.rmtree(self.previous, ignore_errors=True)
            return
        shutil.rmtree(self.path, ignore_errors=True)
        if self.previous.exists():
            self.previous.rename(self.path)
