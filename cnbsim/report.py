"""The normalized report of a build: the single view used by `inspect`, `--json` and golden tests.

No absolute host paths (the layers dir reads `/layers`, the workspace `/workspace`, as in an
image), no secret values, stable ordering: two builds of the same input give the same bytes
apart from the host-dependent keys (`HOST_DEPENDENT`): `timings`, `host`, the interpreter
the stub buildpacks expose instead of a downloaded CPython, and `isolation`, whether this host
ran the buildpacks in the namespace (bubblewrap) or not. `comparable()` is the report as
golden files hold it: without those keys, the host interpreter written as placeholders.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnbsim.fs import TreeDigests, cache_home
from cnbsim.log import NO_SECRETS, Redactor
from cnbsim.model.platform_toml import PlatformRecord
from cnbsim.phase.build import BuildOutcome
from cnbsim.phase.detect import DetectResult
from cnbsim.phase.launch import launch_env

SCHEMA = 1
# Keys that differ from host to host (or run to run) for the same input: goldens leave them out.
HOST_DEPENDENT = ("timings", "host", "isolation")


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
    def current(cls) -> HostPython:
        """The base interpreter (not a venv) behind the running one: what cnbsim gives the stubs."""
        # sys.version's first word is platform.python_version() (which parses it), without importing platform
        return cls(os.path.realpath(getattr(sys, "_base_executable", sys.executable)), sys.version.split()[0])

    @classmethod
    def exposed(cls, outcome: BuildOutcome) -> HostPython:
        """The interpreter the build exposed: the one a layer records as `cnbsim.host-python` (the cpython
        stub selects the installed Python of the requested version), else the running one's base."""
        current = cls.current()
        for bp in outcome.buildpacks:
            for layer in bp.layers:
                meta = layer.metadata.metadata.get("cnbsim")
                path = meta.get("host-python") if isinstance(meta, Mapping) else None
                version = _python_version(path) if isinstance(path, str) and path and path != current.path else ""
                if version:
                    return cls(str(path), version)
        return current

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> HostPython | None:
        host = report.get("host")
        if not isinstance(host, Mapping) or not host.get("python") or not host.get("python_version"):
            return None
        return cls(str(host["python"]), str(host["python_version"]))

    def to_report(self) -> dict[str, str]:
        return {"python": self.path, "python_version": self.version}

    @functools.cached_property
    def _needles(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """What neutral() replaces is in a text only if one of the first and one of the second are
        (the first, searched first, are fewer: most texts have neither)."""
        path, xy = self.path.encode("utf-8", errors="surrogateescape"), self.xy.encode()
        return (xy,) if xy in path else (xy, path), (path, b"py" + xy, b"python" + xy)

    @property
    def xy(self) -> str:
        return ".".join(self.version.split(".")[:2])

    def neutral(self, text: str) -> str:
        """`text` with the interpreter's path and the `pythonX.Y` / `pyX.Y` names derived from it as placeholders."""
        text = text.replace(self.path, self.PLACEHOLDER)
        return re.sub(rf"(?<=py){re.escape(self.xy)}(?![0-9])|(?<=python){re.escape(self.xy)}(?![0-9])",
                      self.XY_PLACEHOLDER, text)

    def neutral_bytes(self, data: bytes, name: str = "") -> bytes:
        """File contents made neutral; a venv's `pyvenv.cfg` names its base interpreter by definition."""
        if name == "pyvenv.cfg":
            data = re.sub(rb"(?m)^(home|version|version_info|executable|command)[ \t]*=.*$", rb"\1 = <host>", data)
        first, then = self._needles
        if not any(n in data for n in first) or not any(n in data for n in then):
            return data
        # as neutral(), on the bytes: decoding a large binary (a compiled extension naming its
        # interpreter) and running the str pattern over it took seconds per 100 MB
        return self._xy_bytes.sub(rb"\1" + self.XY_PLACEHOLDER.encode(), data.replace(then[0], self.PLACEHOLDER.encode()))

    @functools.cached_property
    def _xy_bytes(self) -> re.Pattern[bytes]:
        """neutral()'s pattern for bytes, led by a literal (fast to search)."""
        return re.compile(rb"(py(?:thon)?)" + re.escape(self.xy.encode()) + rb"(?![0-9])")

    def neutral_value(self, value: Any) -> Any:
        """`neutral` on every string (keys too) of a JSON value."""
        if isinstance(value, str):
            return self.neutral(value)
        if isinstance(value, dict):
            return {self.neutral(k): self.neutral_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.neutral_value(v) for v in value]
        return value


@functools.lru_cache(maxsize=8)
def _python_version(path: str) -> str:
    """`3.12.1` of the interpreter at `path`, asked from it; else `3.12` from its name (`python3.12`).
    The answer is kept in cnbsim's cache dir per interpreter file (path, inode, size, mtime): asking
    costs a process, about 9 ms of every build that reports a cpython layer."""
    known = _KnownVersions()
    version = known.get(path)
    if version:
        return version
    try:
        # sys.version's first word is platform.python_version() (which parses it), without importing platform
        done = subprocess.run([path, "-I", "-S", "-c", "import sys; print(sys.version.split()[0])"],
                              capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        match = re.search(r"python(\d+\.\d+)$", path)
        return match.group(1) if match else ""
    version = done.stdout.strip()
    if re.fullmatch(r"\d+\.\d+\.\d+\S*", version):
        known.put(path, version)
    return version


class _KnownVersions:
    """`python-versions.json` in cnbsim's cache dir: interpreter path -> [inode, size, mtime_ns, version].
    A replaced or upgraded interpreter has another inode, size or mtime and is asked again; an
    unreadable or damaged file is taken as empty (it is only a cache)."""

    def __init__(self) -> None:
        self.file = cache_home() / "python-versions.json"

    def _key(self, path: str) -> list[int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return [st.st_ino, st.st_size, st.st_mtime_ns]

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, path: str) -> str:
        entry, key = self._load().get(path), self._key(path)
        if key and isinstance(entry, list) and entry[:3] == key and len(entry) == 4 and isinstance(entry[3], str):
            return entry[3]
        return ""

    def put(self, path: str, version: str) -> None:
        key = self._key(path)
        if key is None:
            return
        data = self._load()
        data[path] = [*key, version]
        tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}")
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.file)   # whole or not at all, beside builds running at the same time
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


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
                 normalize: Normalizer, host: HostPython, platform: PlatformRecord | None = None,
                 digests: TreeDigests | None = None) -> dict[str, Any]:
    """The report of a finished build from what its phases returned, host paths normalized; `host` is the
    interpreter the build exposed, `platform` what the platform chose (default process, run image);
    `digests` the layers' digests as far as known (made with normalize.pairs and host)."""
    digests = digests or TreeDigests(normalize.pairs, host)
    md = outcome.metadata
    platform = platform or PlatformRecord()
    default_process = platform.process_type or md.default_process
    buildpacks = []
    for bp in outcome.buildpacks:
        layers = []
        for layer in bp.layers:
            digest, files = digests.normalized(layer.path)
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
        "default": p.type == default_process, "buildpack_id": p.buildpack_id,
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
        "default_process": default_process,
        **({"buildpack_default_process": md.default_process}
           if default_process != md.default_process else {}),
        **({"run_image": {"reference": platform.run_image, "image": platform.run_image_digest,
                          "target": platform.target.to_toml() if platform.target else {}}}
           if platform.run_image else {}),
        "launch_env": launch,
        "labels": [{"key": lab.key, "value": lab.value} for lab in md.labels],
        "slices": [list(s.paths) for s in md.slices],
        "timings": {k: round(v, 4) for k, v in timings.items()},
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
