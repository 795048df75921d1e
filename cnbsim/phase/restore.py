"""The restore phase: layers put back before the build, as the lifecycle's analyzer and restorer do.

Before the build (cnb-spec.md 5.3, buildpack.md "Layer Types"), for each buildpack of the group:
- a `cache = true` layer saved in the cache gets its `<layer>.toml` (metadata only, no types)
  and its contents back;
- a `launch = true` layer of the previous output (the previous image) gets its `<layer>.toml`
  back, metadata only; if the buildpack then keeps it (writes `launch = true` again without
  contents), its contents are reused from the previous output, as the exporter reuses an
  image layer;
- `store.toml` comes back from the previous output.

A real lifecycle always builds in `/layers`, so absolute paths that buildpacks write into
layers (env files, virtualenv scripts, symlinks) stay valid. cnbsim builds in the output dir,
which may differ from one build to the next: a layer restored from a cache saved by a build
elsewhere is relocated, its old layers path replaced by the new one in files and link targets.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cnbsim.cache import Cache
from cnbsim.errors import BuildError
from cnbsim.fs import is_regular, special_files
from cnbsim.log import Logger
from cnbsim.model.api import ApiVersion
from cnbsim.model.buildpack import escape_id
from cnbsim.model.layer import LayerMetadata, read_layer_toml
from cnbsim.model.order import GroupElement
from cnbsim.report import tree_digest
from cnbsim.tomlio import write_toml


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


def relocate(root: Path, old: str, new: str) -> None:
    """Replace the path `old` by `new` in the files and link targets under `root`."""
    old_b, new_b = old.encode(), new.encode()
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink() and not is_regular(str(path)):
                continue
            if path.is_symlink():
                target = os.readlink(path)
                if old in target:
                    path.unlink()
                    path.symlink_to(target.replace(old, new))
                continue
            data = path.read_bytes()
            if old_b in data:
                mode = path.stat().st_mode
                path.unlink()
                path.write_bytes(data.replace(old_b, new_b))
                path.chmod(mode)
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            path = Path(dirpath, name)
            if path.is_symlink() and old in os.readlink(path):
                target = os.readlink(path)
                path.unlink()
                path.symlink_to(target.replace(old, new))
