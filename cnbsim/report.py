"""The normalized report of a build: the single view used by `inspect`, `--json` and golden tests.

No absolute host paths (the layers dir reads `/layers`, the workspace `/workspace`, as in an
image), no secret values, stable ordering: two builds of the same input give the same bytes
apart from the host-dependent keys (`HOST_DEPENDENT`): `timings`, and `host`, the interpreter
the stub buildpacks expose instead of a downloaded CPython. `comparable()` is the report as
golden files hold it: without those keys, the host interpreter written as placeholders.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from cnbsim.phase.launch import launch_env

if TYPE_CHECKING:
    from cnbsim.api import BuildResult

SCHEMA = 1
REDACTED = "<redacted>"
# Keys that differ from host to host (or run to run) for the same input: goldens leave them out.
HOST_DEPENDENT = ("timings", "host")


@dataclass(frozen=True)
class HostPython:
    """The host's base interpreter, which the stubs expose instead of a downloaded CPython.

    A build records it in the report's `host`. What it leaves in a build (the cpython layer's
    link to it, `lib/pythonX.Y/site-packages`, poetry's `-pyX.Y` venv, a venv's `pyvenv.cfg`)
    `neutral()` writes as placeholders, so that goldens and layer digests do not depend on
    which Python ran the build; the requested and selected CPython stay as they are.
    """

    path: str
    version: str

    PLACEHOLDER = "<host.python>"
    XY_PLACEHOLDER = "<host.python_xy>"

    @classmethod
    def current(cls) -> "HostPython":
        """The base interpreter (not a venv) behind the running one: what cnbsim gives the stubs."""
        return cls(os.path.realpath(getattr(sys, "_base_executable", sys.executable)), platform.python_version())

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> "HostPython | None":
        host = report.get("host")
        if not isinstance(host, Mapping) or not host.get("python") or not host.get("python_version"):
            return None
        return cls(str(host["python"]), str(host["python_version"]))

    def to_report(self) -> dict[str, str]:
        return {"python": self.path, "python_version": self.version}

    @property
    def xy(self) -> str:
        return ".".join(self.version.split(".")[:2])

    def neutral(self, text: str) -> str:
        """`text` with the interpreter's path and the `pythonX.Y` / `pyX.Y` names derived from it as placeholders."""
        text = text.replace(self.path, self.PLACEHOLDER)
        return re.sub(rf"(?<=py){re.escape(self.xy)}(?!\d)|(?<=python){re.escape(self.xy)}(?!\d)",
                      self.XY_PLACEHOLDER, text)

    def neutral_bytes(self, data: bytes, name: str = "") -> bytes:
        """File contents made neutral; a venv's `pyvenv.cfg` names its base interpreter by definition."""
        if name == "pyvenv.cfg":
            data = re.sub(rb"(?m)^(home|version|version_info|executable|command)[ \t]*=.*$", rb"\1 = <host>", data)
        if self.path.encode() not in data and self.xy.encode() not in data:
            return data
        return self.neutral(data.decode("utf-8", errors="surrogateescape")).encode("utf-8", errors="surrogateescape")

    def neutral_value(self, value: Any) -> Any:
        """`neutral` on every string (keys too) of a JSON value."""
        if isinstance(value, str):
            return self.neutral(value)
        if isinstance(value, dict):
            return {self.neutral(k): self.neutral_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.neutral_value(v) for v in value]
        return value


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


def tree_digest(root: Path, replace: Iterable[tuple[str, str]] = (),
                host: HostPython | None = None) -> tuple[str, int]:
    """A content digest of a directory (names, types, modes' x bit, contents, link targets) and its file count.

    `replace` maps host paths to image paths in contents and link targets first, so the digest is
    that of the layer as built at `/layers` (where a real build writes it), not of this host's path;
    with `host`, names, link targets and contents are read `host.neutral`, so that it does not
    depend on the host's interpreter either.
    """
    pairs = [(h.encode(), i.encode()) for h, i in sorted(replace, key=lambda p: -len(p[0])) if h]

    def fix(data: bytes, name: str = "") -> bytes:
        for host_path, image in pairs:
            if host_path in data:
                data = data.replace(host_path, image)
        return host.neutral_bytes(data, name) if host else data

    def fix_name(rel: str) -> str:
        return host.neutral(rel) if host else rel
    h = hashlib.sha256()
    count = 0
    if not root.is_dir():
        return "", 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        h.update(f"d {fix_name(rel_dir)}\n".encode())
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            path = os.path.join(dirpath, name)
            rel = fix_name(os.path.normpath(os.path.join(rel_dir, name)))
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
                h.update(fix(fh.read(), name) if pairs or host else fh.read())
            h.update(b"\n")
    return "sha256:" + h.hexdigest(), count


def build_report(result: "BuildResult", normalize: Normalizer, host: HostPython) -> dict[str, Any]:
    """The report of `result`, host paths normalized; `host` is the interpreter the build exposed."""
    outcome = result.outcome
    md = outcome.metadata
    buildpacks = []
    for bp in outcome.buildpacks:
        layers = []
        for layer in bp.layers:
            digest, files = tree_digest(layer.path, normalize.pairs, host)
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
        "default": p.type == result.default_process, "buildpack_id": p.buildpack_id,
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
        "default_process": result.default_process,
        **({"buildpack_default_process": md.default_process}
           if result.default_process != md.default_process else {}),
        **({"run_image": {"reference": result.platform.run_image, "image": result.platform.run_image_digest,
                          "target": result.platform.target.to_toml() if result.platform.target else {}}}
           if result.platform.run_image else {}),
        "launch_env": launch,
        "labels": [{"key": lab.key, "value": lab.value} for lab in md.labels],
        "slices": [list(s.paths) for s in md.slices],
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
    }
    report = normalize(report)
    report["host"] = host.to_report()
    return report


def dumps(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def comparable(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report as golden files hold it: the same on every host for the same input.

    The `HOST_DEPENDENT` keys are left out and the host interpreter the report names (`host`)
    is written as placeholders wherever else it appears (`HostPython.neutral`).
    """
    kept = {k: v for k, v in report.items() if k not in HOST_DEPENDENT}
    host = HostPython.from_report(report)
    return host.neutral_value(kept) if host else kept
