"""A build output dir: what an image would hold (`workspace/`, `layers/`, `report.json`).

`OutputDir` writes one aside so that a failed or interrupted build never replaces the previous output;
`BuiltOutput` opens one for `run`, `serve`, `inspect` and `export`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cnbsim.errors import ConfigError
from cnbsim.fs import AtomicDir, DirKind
from cnbsim.model.metadata import BuildMetadata, read_metadata_toml
from cnbsim.model.platform_toml import PlatformRecord, read_platform_toml


@dataclass(frozen=True)
class BuiltOutput:
    """A `cnbsim build` output dir: what an image holds."""

    path: Path
    metadata: BuildMetadata
    platform: PlatformRecord = field(default_factory=PlatformRecord)   # the build's default process, run image

    @classmethod
    def open(cls, path: Path | str) -> BuiltOutput:
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

    @property
    def image_paths(self) -> bool:
        """Built in the namespace: its layers hold /layers and /workspace paths (report.json's
        "isolation"), so it runs only where those paths are."""
        try:
            report = json.loads((self.path / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        isolation = report.get("isolation") if isinstance(report, dict) else None
        return isinstance(isolation, dict) and isolation.get("paths") == "image"


class OutputDir(AtomicDir):
    """A new build output, written aside and swapped in only once complete.

    `path` is where the build happens (`<work>/new`, beside the output, same file system);
    `current` is the last good output, untouched until `commit()`; `platform_dir` is the
    0700 platform dir (its env/ files may hold secrets), removed with the work dir on every exit.
    """

    def __init__(self, path: Path | str, notice: Callable[[str], None] | None = None) -> None:
        super().__init__(path, DirKind.OUTPUT, "output", notice)

    @property
    def platform_dir(self) -> Path:
        return self.work / "platform"
