"""The normalized report of a build: the single view used by `inspect`, `--json` and golden tests.

No absolute host paths (the layers dir reads `/layers`, the workspace `/workspace`, as in an
image), no secret values, stable ordering: two builds of the same input give the same bytes
apart from the `timings` table.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from cnbsim.phase.launch import launch_env

if TYPE_CHECKING:
    from cnbsim.api import BuildResult

SCHEMA = 1
REDACTED = "<redacted>"


class Normalizer:
    """Replaces host paths by their image paths and secret values by a marker, in any JSON value."""

    def __init__(self, paths: Mapping[str, str], secrets: Iterable[str] = ()) -> None:
        self.pairs = sorted(((h, i) for h, i in paths.items() if h), key=lambda p: -len(p[0]))
        self.secrets = sorted((s for s in secrets if s), key=len, reverse=True)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for host, image in self.pairs:      # paths first: a secret inside a path must not break it
                value = value.replace(host, image)
            for secret in self.secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value


def tree_digest(root: Path, replace: Iterable[tuple[str, str]] = ()) -> tuple[str, int]:
    """A content digest of a directory (names, types, modes' x bit, contents, link targets) and its file count.

    `replace` maps host paths to image paths in contents and link targets first, so the digest is
    that of the layer as built at `/layers` (where a real build writes it), not of this host's path.
    """
    pairs = [(h.encode(), i.encode()) for h, i in sorted(replace, key=lambda p: -len(p[0])) if h]

    def fix(data: bytes) -> bytes:
        for host, image in pairs:
            if host in data:
                data = data.replace(host, image)
        return data
    h = hashlib.sha256()
    count = 0
    if not root.is_dir():
        return "", 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        h.update(f"d {rel_dir}\n".encode())
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            count += 1
            if os.path.islink(path):
                h.update(f"l {rel} ".encode() + fix(os.readlink(path).encode()) + b"\n")
                continue
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):     # a socket or FIFO: named, never opened (it could block)
                h.update(f"o {rel}\n".encode())
                continue
            h.update(f"f {rel} {'x' if st.st_mode & 0o111 else '-'} ".encode())
            with open(path, "rb") as fh:
                h.update(fix(fh.read()) if pairs else fh.read())
            h.update(b"\n")
    return "sha256:" + h.hexdigest(), count


def build_report(result: "BuildResult", normalize: Normalizer) -> dict[str, Any]:
    outcome = result.outcome
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
                **({"cache": result.layer_status.get((bp.element.id, layer.name))}
                   if result.layer_status.get((bp.element.id, layer.name)) else {}),
            })
        buildpacks.append({
            "id": bp.element.id, "version": bp.element.version, "api": bp.element.api,
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
    launch = {p.type: dict(sorted(launch_env(result.layers_dir, md, p.type, {}).vars.items()))
              for p in md.processes}
    report = {
        "schema": SCHEMA,
        "group": [{"id": e.id, "version": e.version, "api": e.api,
                   **({"homepage": e.homepage} if e.homepage else {})} for e in result.group],
        "plan": [{"providers": [{"id": p.id, "version": p.version} for p in e.providers],
                  "requires": [r.to_toml() for r in e.requires]} for e in result.plan.entries],
        "detect": [{"passed": g.passed,
                    "buildpacks": [{"id": e.id, "version": e.version, "optional": e.optional,
                                    "status": e.status, **({"detail": e.detail} if e.detail else {})}
                                   for e in g.elements],
                    **({"reasons": list(g.reasons)} if g.reasons else {})}
                   for g in result.detect.groups],
        "buildpacks": buildpacks,
        "processes": processes,
        "default_process": md.default_process,
        "launch_env": launch,
        "labels": [{"key": lab.key, "value": lab.value} for lab in md.labels],
        "slices": [list(s.paths) for s in md.slices],
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
    }
    return normalize(report)


def dumps(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def without_timings(report: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "timings"}
