"""Restore and reuse of layers between builds, as the lifecycle's analyze/restore/export do.

Before the build (cnb-spec.md 5.3, buildpack.md "Layer Types"), for each buildpack of the group:
- a `cache = true` layer saved in the cache gets its `<layer>.toml` (metadata only, no types)
  and its contents back;
- a `launch = true` layer of the previous output (the previous image) gets its `<layer>.toml`
  back, metadata only; if the buildpack then keeps it (writes `launch = true` again without
  contents), its contents are reused from the previous output, as the exporter reuses an
  image layer;
- `store.toml` comes back from the previous output.
After the build, every `cache = true` layer is saved to the cache (written aside, then swapped in).

A real lifecycle always builds in `/layers`, so absolute paths that buildpacks write into
layers (env files, virtualenv scripts, symlinks) stay valid. cnbsim builds in the output dir,
which may differ from one build to the next: a layer restored from a cache saved by a build
elsewhere is relocated, its old layers path replaced by the new one in files and link targets.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cnbsim.build import BuildOutcome
from cnbsim.errors import BuildError, ConfigError
from cnbsim.fs import AtomicDir, DirKind, check_replaceable, relocate, remove_owned, special_files
from cnbsim.log import Logger
from cnbsim.model.api import ApiVersion
from cnbsim.model.buildpack import escape_id
from cnbsim.model.layer import LayerMetadata, read_layer_toml
from cnbsim.model.order import GroupElement
from cnbsim.report import tree_digest
from cnbsim.tomlio import write_toml

RESTORED, REUSED, REBUILT = "restored", "reused", "rebuilt"
INDEX = "index.json"
LAYERS_KEY = "layers-dir"     # in the index: where the cached layers were built


def default_cache_dir(app: Path) -> Path:
    """Per app under the user's cache dir: `$XDG_CACHE_HOME/cnbsim/<name>-<hash of its path>`."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(str(app.absolute()).encode()).hexdigest()[:12]
    return base / "cnbsim" / f"{app.absolute().name}-{key}"


@dataclass(frozen=True)
class Restored:
    key: tuple[str, str]          # (buildpack id, layer name)
    source: str                   # "cache" | "previous"
    digest: str                   # of the contents put back ("" for metadata only)


def _layer_tomls(bp_dir: Path, api: ApiVersion) -> dict[str, LayerMetadata]:
    out = {}
    for toml in sorted(bp_dir.glob("*.toml")):
        if toml.name in ("launch.toml", "build.toml", "store.toml"):
            continue
        try:
            out[toml.stem] = read_layer_toml(toml, api)
        except BuildError:
            continue  # unreadable metadata is skipped, as the lifecycle warns and skips
    return out


def _metadata_only(path: Path, meta: LayerMetadata) -> None:
    write_toml(path, {"metadata": meta.metadata} if meta.metadata else {})


class Cache:
    """A directory cache: `<dir>/layers/<escaped id>/<layer>/` + `<layer>.toml`, and an index."""

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()

    def check(self) -> None:
        """Refuse a cache dir that cnbsim did not create (it is replaced after every build)."""
        check_replaceable(self.path, DirKind.CACHE, "cache dir")

    def clear(self) -> None:
        if os.path.lexists(self.path):
            remove_owned(self.path, DirKind.CACHE, "cache dir")

    @property
    def layers(self) -> Path:
        return self.path / "layers"

    def built_in(self) -> str:
        return str(self.index().get(LAYERS_KEY, ""))

    def index(self) -> dict[str, str]:
        """The cache's index (layer -> digest); an unreadable or malformed one is an empty cache."""
        try:
            data = json.loads((self.path / INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def save(self, outcome: BuildOutcome, layers_dir: Path, status: dict[tuple[str, str], str],
             log: Logger) -> None:
        """Write the new cache aside, then swap it in; on any failure the previous cache stays as it was
        (a warning, as the lifecycle gives: the build itself succeeded). A layer restored from the cache
        and left as it was keeps its cached files (the lifecycle's "Reusing cache layer")."""
        try:
            with AtomicDir(self.path, DirKind.CACHE, "cache dir", notice=log.warn) as staging:
                self._write(staging.path, outcome, layers_dir, status, log)
                staging.commit()
        except (OSError, shutil.Error, ConfigError) as exc:
            log.warn(f"failed to save the cache to {self.path}: {exc}; the previous cache is kept")

    def _write(self, staging: Path, outcome: BuildOutcome, layers_dir: Path, status: dict[tuple[str, str], str],
               log: Logger) -> None:
        (staging / "layers").mkdir(parents=True)
        before = self.index()
        index = {LAYERS_KEY: str(layers_dir)}
        for bp in outcome.buildpacks:
            for layer in bp.layers:
                if not layer.cache:
                    continue
                name = f"{bp.element.id}:{layer.name}"
                if not layer.path.is_dir():
                    log.warn(f"Failed to cache layer '{name}' because it has no contents")
                    continue
                dest = staging / "layers" / escape_id(bp.element.id)
                dest.mkdir(parents=True, exist_ok=True)
                cached = self.layers / escape_id(bp.element.id) / layer.name
                if status.get((bp.element.id, layer.name)) == RESTORED and name in before and cached.is_dir() \
                        and before.get(LAYERS_KEY) == str(layers_dir):
                    # unchanged: the new cache shares the cached files (never written in place: restore copies)
                    shutil.copytree(cached, dest / layer.name, symlinks=True, copy_function=_link_or_copy)
                    index[name] = before[name]
                    log.debug(f"Reusing cache layer '{name}'")
                else:
                    shutil.copytree(layer.path, dest / layer.name, symlinks=True, ignore=special_files)
                    index[name] = tree_digest(dest / layer.name)[0]   # of what is cached (no sockets, FIFOs)
                    log.debug(f"Adding cache layer '{name}'")
                shutil.copy2(layer.path.with_name(layer.name + ".toml"), dest / f"{layer.name}.toml")
        (staging / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True), encoding="utf-8")


def _link_or_copy(src: str, dst: str) -> None:
    """Between two cache generations, files are shared by hard link where the filesystem allows."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def restore(group: tuple[GroupElement, ...], layers_dir: Path, previous: Path | None, cache: Cache | None,
            log: Logger) -> dict[tuple[str, str], Restored]:
    """Put back layer metadata (and cached contents) for the buildpacks of the group."""
    restored: dict[tuple[str, str], Restored] = {}
    if cache and cache.layers.exists() and not cache.built_in():
        log.warn(f"ignoring the cache at {cache.path}: it was written by another cnbsim version")
        cache = None
    cache_index = cache.index() if cache else {}
    for el in group:
        api = ApiVersion.parse(el.api) if el.api else ApiVersion(0, 10)
        bp_dir = layers_dir / escape_id(el.id)
        prev_dir = previous / escape_id(el.id) if previous else None
        cached_dir = cache.layers / escape_id(el.id) if cache else None
        prev = _layer_tomls(prev_dir, api) if prev_dir and prev_dir.is_dir() else {}
        cached = _layer_tomls(cached_dir, api) if cached_dir and cached_dir.is_dir() else {}
        if prev_dir and (prev_dir / "store.toml").is_file():
            bp_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(prev_dir / "store.toml", bp_dir / "store.toml")
        for name, meta in cached.items():
            key = f"{el.id}:{name}"
            src = cached_dir / name if cached_dir else None
            if not meta.types.cache or src is None or not src.is_dir():
                continue
            digest = tree_digest(src)[0]
            if cache_index.get(key) != digest:
                log.warn(f"Removing \"{key}\", wrong sha")
                continue
            bp_dir.mkdir(parents=True, exist_ok=True)
            _metadata_only(bp_dir / f"{name}.toml", meta)
            # a copy, never links: a buildpack may change a restored file in place, even in a build
            # that then fails, and the cache must not change with it
            shutil.copytree(src, bp_dir / name, symlinks=True, ignore=special_files)
            built_in = cache.built_in() if cache else ""
            if built_in and built_in != str(layers_dir):
                relocate(bp_dir / name, built_in, str(layers_dir))
                digest = tree_digest(bp_dir / name)[0]
            restored[(el.id, name)] = Restored((el.id, name), "cache", digest)
            log.debug(f"Restoring data for \"{key}\" from cache")
        for name, meta in prev.items():
            t = meta.types
            if (el.id, name) in restored or not t.launch or (t.build and not t.cache) or t.cache:
                continue  # cache=true layers come back from the cache only
            bp_dir.mkdir(parents=True, exist_ok=True)
            _metadata_only(bp_dir / f"{name}.toml", meta)
            restored[(el.id, name)] = Restored((el.id, name), "previous", "")
            log.debug(f"Restoring metadata for \"{el.id}:{name}\" from app image")
    return restored


def finish(outcome: BuildOutcome, previous: Path | None, restored: dict[tuple[str, str], Restored],
           log: Logger) -> dict[tuple[str, str], str]:
    """Reuse kept launch layers from the previous output; say what was restored, reused or rebuilt."""
    status: dict[tuple[str, str], str] = {}
    for bp in outcome.buildpacks:
        for layer in bp.layers:
            key = (bp.element.id, layer.name)
            if layer.launch and not layer.path.exists():
                src = previous / escape_id(bp.element.id) / layer.name if previous else None
                if layer.cache:
                    raise BuildError(f"layer '{bp.element.id}:{layer.name}' is cache=true but has no contents",
                                     file=layer.path.with_name(layer.name + ".toml"),
                                     hint="create the layer directory, or set cache = false")
                if src is None or not src.is_dir():
                    raise BuildError(f"cannot reuse '{bp.element.id}:{layer.name}', previous image has no "
                                     f"metadata for layer '{bp.element.id}:{layer.name}'",
                                     file=layer.path.with_name(layer.name + ".toml"),
                                     hint="the buildpack must create the layer directory on a first build")
                shutil.copytree(src, layer.path, symlinks=True)
                status[key] = REUSED
                log.info(f"Reusing layer '{bp.element.id}:{layer.name}'")
                continue
            before = restored.get(key)
            if before and before.digest and tree_digest(layer.path)[0] == before.digest:
                status[key] = RESTORED
            else:
                status[key] = REBUILT
    return status
