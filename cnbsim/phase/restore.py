"""The restore phase: layers put back before the build, as the lifecycle's analyzer and restorer do.

Before the build (buildpacks/spec platform.md#restorer, buildpack.md#layer-types; lifecycle
phase/restorer.go), for each buildpack of the group:
- a `cache = true` layer saved in the cache gets its `<layer>.toml` (metadata only, no types)
  and its contents back;
- a `launch = true` layer of the previous output (the previous image) gets its `<layer>.toml`
  back, metadata only; if the buildpack then keeps it (writes `launch = true` again without
  contents), its contents are reused from the previous output, as the exporter reuses an
  image layer;
- `store.toml` comes back from the previous output.

A cached layer is moved into the build, not copied, where the cache recorded its stamp and it still
has it (the cache and the output on one file system, no relocation). The lifecycle extracts a copy
(cache/volume_cache.go), so that what a buildpack writes never reaches the cache; a move keeps that
too, as the cache takes back only trees it can tell are unchanged: its next generation takes the
previous output's copy of a layer the build left as it was (cnbsim.cache), a failed build puts back
the moved layers it did not change (`put_back`), and the build after a killed one takes back those
it finds unchanged in the work dir the killed one left (Cache.reclaim); the others it rebuilds.

A real lifecycle always builds in `/layers`, so absolute paths that buildpacks write into
layers (env files, virtualenv scripts, symlinks) stay valid; so does cnbsim's build namespace.
A build on the host (no bubblewrap) sees its work dir's own layers path: a layer restored from a
cache saved by a build whose layers were elsewhere (another output, or the namespace's /layers) is
relocated, its old layers path replaced by the one its buildpack sees, in files and link targets.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cnbsim.cache import OUTPUT_PREFIX, STAMP_PREFIX, Cache, report_digest
from cnbsim.fs import content_key, copy_tree, relocate, settle_clock, tree_digest, tree_stamp
from cnbsim.log import Logger
from cnbsim.model.buildpack import escape_id
from cnbsim.model.layer import LayerMetadata
from cnbsim.model.layers import read_layers_dir
from cnbsim.model.order import GroupElement
from cnbsim.tomlio import write_toml


@dataclass(frozen=True)
class Restored:
    key: tuple[str, str]          # (buildpack id, layer name)
    source: str                   # "cache" | "previous"
    digest: str                   # of the contents put back ("" for metadata only)
    metadata: Mapping[str, Any] = field(default_factory=dict)   # the [metadata] table put back
    stamp: tuple[int, int] = (0, 0)   # the layer dir's (inode, ctime) as put back: see dir_stamp
    tree: tuple[Any, ...] = ()        # fs.tree_stamp of the contents as put back (the clock settled after)
    report: tuple[str, int, str, str] | None = None   # what the cache recorded the report digest of these
                                      # contents to be: (normalized digest, files, host python, its version)
    copied_from: Path | None = None   # the cached layer the contents were copied from
    generation: tuple[int, ...] = ()  # Cache.generation() then: while it holds, `copied_from` is unchanged
    moved_from: Path | None = None    # the cached layer dir the contents were moved from (not copied)
    twin: tuple[Path, str] | None = None   # for a moved layer: the previous output's copy, and the content_key
                                      # it had when it had these contents (the cache's index says)


def dir_stamp(path: Path) -> tuple[int, int]:
    """A directory's inode and status-change time: a buildpack that wipes and recreates a restored layer
    (even with the same files) or adds or removes an entry of it changes them; one that keeps it does not."""
    st = path.stat()
    return st.st_ino, st.st_ctime_ns


def _move(src: Path, dest: Path, key: str) -> bool:
    """Move a cached layer into the build instead of copying it, when the cache recorded its stamp
    (content_key) and the layer still has it: the contents are the ones the index's digest was taken
    of, unread. False (nothing moved) where it cannot be: no stamp, another one, another file system;
    the caller copies then, checking the digest."""
    if not key or content_key(tree_stamp(src)) != key:
        return False
    try:
        os.rename(src, dest)
    except OSError:        # EXDEV: the cache on another file system than the output
        return False
    return True


def put_back(restored: Mapping[tuple[str, str], Restored], layers_dir: Path, cache: Cache | None,
             unless: list[bool] | None = None) -> None:
    """After a build that failed (`unless` empty: the cache was not saved), as a failed build leaves the
    lifecycle's cache as it was: move the layers restore moved out of the cache back into it, those left
    as restore put them (same stamp, same cache generation); one the build changed is copied back from
    the previous output's copy of the same contents, if that has them; any other is missed by the next
    build (never a changed layer in the cache)."""
    if cache is None or unless:
        return
    for r in restored.values():
        if r.moved_from is None or not r.tree or cache.generation() != r.generation:
            continue
        path = layers_dir / escape_id(r.key[0]) / r.key[1]
        try:
            if os.path.lexists(r.moved_from):
                continue
            if content_key(tree_stamp(path)) == content_key(r.tree):
                os.rename(path, r.moved_from)
            elif r.twin and content_key(tree_stamp(r.twin[0])) == r.twin[1]:
                copy_tree(r.twin[0], r.moved_from, expect=r.digest)     # removed again if it differs
        except (OSError, RecursionError):
            continue


def _metadata_only(path: Path, meta: LayerMetadata) -> None:
    write_toml(path, {"metadata": meta.metadata} if meta.metadata else {})


def restore(group: tuple[GroupElement, ...], layers_dir: Path, previous: Path | None, cache: Cache | None,
            log: Logger, shown_layers: str | None = None) -> dict[tuple[str, str], Restored]:
    """Put back layer metadata (and cached contents) for the buildpacks of the group;
    `shown_layers` is the layers dir as the buildpacks see it (/layers in the namespace)."""
    restored: dict[tuple[str, str], Restored] = {}
    shown_layers = shown_layers or str(layers_dir)
    if cache and cache.layers.exists() and not cache.built_in():
        log.warn(f"ignoring the cache at {cache.path}: it was written by another cnbsim version")
        cache = None
    cache_index = cache.index() if cache else {}
    generation = cache.generation() if cache else ()
    for el in group:
        bp_dir = layers_dir / escape_id(el.id)
        # malformed layers are skipped: lifecycle MadeCached / MadeLaunch are false for them
        prev = read_layers_dir(previous, el.id) if previous else None
        cached = read_layers_dir(cache.layers, el.id) if cache else None
        if prev and (prev.path / "store.toml").is_file():
            bp_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(prev.path / "store.toml", bp_dir / "store.toml")
        for layer in cached.cached_layers() if cached else ():
            name, meta, src, key = layer.name, layer.metadata, layer.path, layer.identifier
            if not layer.has_contents:
                continue
            expect = cache_index.get(key)
            if not expect or src.is_symlink():     # not a layer the cache wrote: nothing to copy
                log.warn(f"Removing \"{key}\", wrong sha")
                continue
            bp_dir.mkdir(parents=True, exist_ok=True)
            built_in = cache.built_in() if cache else ""
            relocated = bool(built_in) and built_in != shown_layers
            moved = not relocated and _move(src, bp_dir / name, cache_index.get(STAMP_PREFIX + key, ""))
            if moved:
                digest = expect
            else:
                # a copy, never links: a buildpack may change a restored file in place, even in a build
                # that then fails, and the cache must not change with it; checked against the cache's
                # index on the way (a copy that differs is removed again), as the lifecycle checks a
                # cached layer's sha (cache/volume_cache.go)
                digest = copy_tree(src, bp_dir / name, expect=expect)
            if digest != expect:
                log.warn(f"Removing \"{key}\", wrong sha")
                continue
            _metadata_only(bp_dir / f"{name}.toml", meta)
            twin = (prev.path / name, cache_index[OUTPUT_PREFIX + key]) \
                if prev and cache_index.get(OUTPUT_PREFIX + key) else None
            if relocated:
                relocate(bp_dir / name, built_in, shown_layers)
                digest = tree_digest(bp_dir / name)[0]
            # a relocated copy is not the cached layer's bytes: no comparison with those (same_contents)
            restored[(el.id, name)] = Restored((el.id, name), "cache", digest, meta.metadata,
                                               dir_stamp(bp_dir / name), tree_stamp(bp_dir / name),
                                               report_digest(cache_index, key, digest),
                                               None if relocated or moved else src, generation,
                                               src if moved else None, twin if moved else None)
            log.debug(f"Restoring data for \"{key}\" from cache")
        for layer in prev.launch_layers() if prev else ():
            name, meta, t = layer.name, layer.metadata, layer.types
            if (el.id, name) in restored or (t.build and not t.cache) or t.cache:
                continue  # cache=true layers come back from the cache only
            bp_dir.mkdir(parents=True, exist_ok=True)
            _metadata_only(bp_dir / f"{name}.toml", meta)
            restored[(el.id, name)] = Restored((el.id, name), "previous", "", meta.metadata)
            log.debug(f"Restoring metadata for \"{el.id}:{name}\" from app image")
    # a buildpack's write to a restored file changes that file's ctime only in a later clock tick
    if not settle_clock(layers_dir, [r.tree for r in restored.values() if r.tree]):
        restored = {k: replace(r, tree=()) for k, r in restored.items()}     # the stamps tell nothing
    return restored
