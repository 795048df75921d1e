"""<output>/platform.toml: what the platform gave the build for its export and run, so that `cnbsim export`,
`cnbsim run` and `cnbsim inspect` use what `cnbsim build` was given.

It holds the exporter's inputs that are not in the layers: `process-type` (the lifecycle exporter's
`-process-type` / CNB_PROCESS_TYPE, pack's `--default-process`) and the run image (`-run-image`), with
its target as analyzed.toml's `[run-image]` records it (platform.md "analyzed.toml").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnbsim.errors import CnbsimError, ConfigError
from cnbsim.model._fields import Fields
from cnbsim.platform import RunTarget
from cnbsim.tomlio import read_toml, write_toml

FILE_NAME = "platform.toml"


@dataclass(frozen=True)
class PlatformRecord:
    process_type: str = ""             # "" : the buildpacks' default process
    run_image: str = ""                # the run image's OCI layout (DIR or DIR:TAG), "" : none
    run_image_digest: str = ""
    target: RunTarget | None = None    # the run image's target (None: no run image given)

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.process_type:
            out["process-type"] = self.process_type
        if self.run_image:
            out["run-image"] = {"reference": self.run_image, "image": self.run_image_digest,
                                **({"target": self.target.to_toml()} if self.target else {})}
        return out

    def write(self, output: Path) -> None:
        if self.process_type or self.run_image:
            write_toml(output / FILE_NAME, self.to_toml())


def read_platform_toml(output: Path, error: type[CnbsimError] = ConfigError) -> PlatformRecord:
    """The record of `output`, empty when the build was given neither a default process nor a run image."""
    path = output / FILE_NAME
    if not path.is_file():
        return PlatformRecord()
    top = Fields(read_toml(path, what="build platform record (platform.toml)", error=error), path, error=error)
    run = top.sub("run-image")
    target = None
    if run.has("target"):
        t = run.sub("target")
        distro = t.sub("distro")
        target = RunTarget(t.str("os", default="linux"), t.str("arch"), t.str("arch-variant"),
                           distro.str("name"), distro.str("version"))
    return PlatformRecord(top.str("process-type"), run.str("reference"), run.str("image"), target)
