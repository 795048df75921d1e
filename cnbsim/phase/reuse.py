"""After the build: which layers the build kept, restored or rebuilt, and the launch layers it kept
without contents copied from the previous output, as the exporter reuses an image's layers
(lifecycle phase/exporter.go). Apart from cnbsim.phase.export so that every build does not import
the export's tar and OCI code (about 8 ms of a CLI build's start-up)."""

from __future__ import annotations

import shutil
from pathlib import Path

from cnbsim.cache import Cache
from cnbsim.errors import BuildError
from cnbsim.fs import TreeDigests, content_key, same_contents, tree_stamp
from cnbsim.log import Logger
from cnbsim.model.buildpack import escape_id
from cnbsim.model.states import LayerStatus
from cnbsim.phase.build import BuildOutcome
from cnbsim.phase.restore import Restored, dir_stamp

__all__ = ["reuse_layers"]


def reuse_layers(outcome: BuildOutcome, previous: Path | None, restored: dict[tuple[str, str], Restored],
                 log: Logger, digests: TreeDigests | None = None, cache: Cache | None = None,
                 host: tuple[str, str] | None = None) -> dict[tuple[str, str], LayerStatus]:
    """After the build: reuse kept launch layers from the previous output, as the exporter reuses an image's
    layers (lifecycle phase/exporter.go); say of each layer what became of it (LayerStatus). `digests`
    keeps the layers' digests for the report; with `host` (the host python's path and version, given
    where layers hold image paths only), a restored layer left as it was gets the report digest the
    cache recorded for it on that host."""
    status: dict[tuple[str, str], LayerStatus] = {}
    digests = digests or TreeDigests()
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
                status[key] = LayerStatus.REUSED
                log.info(f"Reusing layer '{bp.element.id}:{layer.name}'")
                continue
            before = restored.get(key)
            if before is None:
                status[key] = LayerStatus.NEW
            elif (before.digest and dict(layer.metadata.metadata) == dict(before.metadata)
                  and dir_stamp(layer.path) == before.stamp       # the layer dir kept, not made anew
                  and (_left_as_restored(layer.path, before, cache, digests, host)
                       or digests.raw(layer.path) == before.digest)):
                status[key] = LayerStatus.RESTORED
            else:
                status[key] = LayerStatus.REBUILT
    return status


def _left_as_restored(path: Path, before: Restored, cache: Cache | None, digests: TreeDigests,
                      host: tuple[str, str] | None) -> bool:
    """Whether a restored layer has the contents restore put back, without digesting it: every entry as
    restore left it, or (for a copy) those written since (after the clock settled) with the bytes of
    the cached layer they were copied from (which has not changed since: the same cache generation) or,
    for a moved one, of the previous output's copy of the same contents."""
    if not before.tree:
        return False
    if before.moved_from is not None:
        # moved, not copied: an entry written since is compared with the previous output's copy, if that
        # still has the contents restore moved in (its stamp then, as the cache recorded it)
        now = tree_stamp(path)
        twin = before.twin
        if now != before.tree and not (twin and content_key(tree_stamp(twin[0])) == twin[1]
                                       and same_contents(path, before.tree, twin[0], now)):
            return False
    elif before.copied_from and cache is not None and cache.generation() == before.generation:
        now = tree_stamp(path)
        if not same_contents(path, before.tree, before.copied_from, now):
            return False
    else:
        return False
    if host is not None and before.report and before.report[2:] == host:
        digests.seed(path, now, before.digest, before.report[0], before.report[1])
    return True
