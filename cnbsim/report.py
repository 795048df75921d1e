"""The normalized report of a build: the single view used by `inspect`, `--json` and golden tests.

No absolute host paths (the layers dir reads `/layers`, the workspace `/workspace`, as in an
image), no secret values, stable ordering: two builds of the same input give the same bytes
apart from the `timings` table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from cnbsim.fs import tree_digest
from cnbsim.log import NO_SECRETS, Redactor
from cnbsim.phase.build import BuildOutcome
from cnbsim.phase.detect import DetectResult
from cnbsim.phase.launch import launch_env

SCHEMA = 1


class Normalizer:
    """Replaces host paths by their image paths and secret values by a marker, in any JSON value."""

    def __init__(self, paths: Mapping[str, str], redact: Redactor = NO_SECRETS) -> None:
        self.pairs = sorted(((h, i) for h, i in paths.items() if h), key=lambda p: -len(p[0]))
        self.redact = redact

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for host, image in self.pairs:      # paths first: a secret inside a path must not break it
                value = value.replace(host, image)
            return self.redact(value)
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value


def build_report(detected: DetectResult, outcome: BuildOutcome, layers_dir: Path,
                 layer_status: Mapping[tuple[str, str], str], timings: Mapping[str, float],
                 normalize: Normalizer) -> dict[str, Any]:
    """The report of a finished build, from what its phases returned."""
    md = outcome.metadata
    buildpacks = []
    for bp in outcome.buildpacks:
        layers = []
        for layer in bp.layers:
            digest, files = tree_digest(layer.path, normalize.pairs)
            layers.append({
                "name": layer.name,
                "types": {"launch": layer.launch, "build": layer.build, "cache": layer.cache},
                "metadata": layer.metadata.metadata,
                "digest": digest,
                "files": files,
                **({"cache": layer_status.get((bp.element.id, layer.name))}
                   if layer_status.get((bp.element.id, layer.name)) else {}),
            })
        buildpacks.append({
            "id": bp.element.id, "version": bp.element.version, "api": bp.element.api_text,
            "plan": [r.to_toml() for r in bp.plan.entries],
            "build_env": dict(sorted(bp.env_from_layers.items())),
            "layers": layers,
            "unmet": list(bp.build.unmet),
            **({"store": bp.store.metadata} if bp.store is not None else {}),
        })
    processes = [{
        "type": p.type, "command": list(p.command), "args": list(p.args), "direct": p.direct,
        "default": p.type == md.default_process, "buildpack_id": p.buildpack_id,
        "working_dir": p.working_dir or "/workspace",
    } for p in md.processes]
    launch = {p.type: dict(sorted(launch_env(layers_dir, md, p.type, {}).vars.items()))
              for p in md.processes}
    report = {
        "schema": SCHEMA,
        "group": [e.to_toml() for e in detected.group],
        "plan": [{"providers": [{"id": p.id, "version": p.version} for p in e.providers],
                  "requires": [r.to_toml() for r in e.requires]} for e in detected.plan.entries],
        "detect": [{"passed": g.passed,
                    "buildpacks": [{"id": e.id, "version": e.version, "optional": e.optional,
                                    "status": e.status, **({"detail": e.detail} if e.detail else {})}
                                   for e in g.elements],
                    **({"reasons": list(g.reasons)} if g.reasons else {})}
                   for g in detected.groups],
        "buildpacks": buildpacks,
        "processes": processes,
        "default_process": md.default_process,
        "launch_env": launch,
        "labels": [{"key": lab.key, "value": lab.value} for lab in md.labels],
        "slices": [list(s.paths) for s in md.slices],
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    return normalize(report)


def dumps(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def without_timings(report: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "timings"}
