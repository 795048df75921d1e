"""The layer cache between builds: `<dir>/layers/<escaped id>/<layer>/` + `<layer>.toml`, and an index.

After the build, every `cache = true` layer is saved to the cache (written aside, then swapped in);
phase/restore.py puts them back before the next build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from cnbsim.errors import ConfigError
from cnbsim.fs import (
    AtomicDir,
    DirKind,
    TreeDigests,
    cache_home,
    check_replaceable,
    content_key,
    copy_tree,
    remove_owned,
    remove_tree,
    stale_work_dirs,
    target_path,
    tree_stamp,
)
from cnbsim.log import Logger
from cnbsim.model.buildpack import escape_id
from cnbsim.model.states import LayerStatus
from cnbsim.phase.build import BuildOutcome

INDEX = "index.json"
LAYERS_KEY = "layers-dir"     # in the index: where the cached layers were built
REPORT_PREFIX = "report:"     # in the index: "report:<layer>" -> a layer's report digest (report_digest)
STAMP_PREFIX = "stamp:"       # "stamp:<layer>" -> fs.content_key of the cached copy as saved
OUTPUT_PREFIX = "output:"     # "output:<layer>" -> fs.content_key of the output's copy as the build left it


def report_digest(index: dict[str, str], name: str, digest: str) -> tuple[str, int, str, str] | None:
    """The report digest the index records for layer `name` with contents of `digest`: (normalized
    digest, file count, host python, its version), or None (none recorded, another contents, malformed)."""
    try:
        raw, normalized, files, python, version = json.loads(index.get(REPORT_PREFIX + name, "[]"))
    except (ValueError, TypeError, RecursionError):     # none recorded, not JSON, not five values
        return None
    if raw != digest or not all(isinstance(v, str) for v in (normalized, python, version)) \
            or not isinstance(files, int) or isinstance(files, bool):
        return None
    return normalized, files, python, version


def _rename(src: Path, dest: Path) -> bool:
    """Rename a layer dir; False where it cannot be (a read-only directory cannot change its parent
    but as root; another file system): the caller copies then."""
    try:
        os.rename(src, dest)
    except OSError:
        return False
    return True


def default_cache_dir(app: Path) -> Path:
    """Per app under the user's cache dir: `$XDG_CACHE_HOME/cnbsim/<name>-<hash of its path>`."""
    key = hashlib.sha256(str(app.absolute()).encode()).hexdigest()[:12]
    return cache_home() / f"{app.absolute().name}-{key}"


class Cache:
    """A directory cache: `<dir>/layers/<escaped id>/<layer>/` + `<layer>.toml`, and an index."""

    def __init__(self, path: Path) -> None:
        self.path = target_path(path, "cache dir")

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

    def generation(self) -> tuple[int, ...]:
        """Which cache this is: each save writes a new one (a new index file), so while this stays
        the same, nothing in the cache has changed."""
        try:
            st = os.stat(self.path / INDEX)
        except OSError:
            return ()
        return st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns

    def index(self) -> dict[str, str]:
        """The cache's index (layer -> digest); an unreadable or malformed one is an empty cache."""
        try:
            data = json.loads((self.path / INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def save(self, outcome: BuildOutcome, layers_dir: Path, status: dict[tuple[str, str], LayerStatus],
             log: Logger, digests: TreeDigests | None = None, host: tuple[str, str] | None = None,
             previous: Path | None = None) -> list[Path]:
        """Write the new cache aside, then swap it in; on any failure the previous cache stays as it was
        (a warning, as the lifecycle gives: the build itself succeeded). A layer restored from the cache
        and left as it was keeps its cached files (the lifecycle's "Reusing cache layer"). `layers_dir`
        is where the buildpacks' layers are seen (/layers in the namespace), recorded for restore.
        With `digests` and `host` (the report's, and the host python's path and version), a layer's
        report digest is recorded too where it depends on its contents and that host only, so that a
        later build that restores the same contents need not read them again for its report.

        A layer restore moved out of the cache (phase/restore.py) and the build left as it was is not
        copied: the new cache takes the previous output's copy of it (`previous`, its layers dir), which
        has the same contents, once the new output has replaced it (`adopt`). Returns those layers, as
        paths relative to an output's layers dir, for `adopt`; the index already names them, so a build
        killed before `adopt` leaves a cache that misses them until the next build takes them back
        (`reclaim`)."""
        taken: list[tuple[Path, Path]] = []     # (where in the staged cache, where in the previous one)
        try:
            with AtomicDir(self.path, DirKind.CACHE, "cache dir", notice=log.warn) as staging:
                try:
                    pending = self._write(staging.path, outcome, layers_dir, status, log, digests, host,
                                          previous, taken)
                    staging.commit()
                except BaseException:
                    for now, then in reversed(taken):     # the previous cache gets its layers back
                        try:
                            os.rename(now, then)
                        except OSError:
                            pass
                    raise
        except (OSError, shutil.Error, ConfigError) as exc:
            log.warn(f"failed to save the cache to {self.path}: {exc}; the previous cache is kept")
            return []
        return pending

    def reclaim(self, output: Path, log: Logger) -> None:
        """Before a build cleans what an interrupted one left: take back into the cache the cached layers
        that build had moved out (restore) or not yet moved in (adopt), from the work dirs it left beside
        `output` and beside the cache, each only if it has the stamp the index recorded (unchanged since
        the cache had it). Not from a work dir's `old` while its target is missing: that is the last
        good version, which recovery puts back."""
        index = self.index()
        missing = {}
        for key, stamp in index.items():
            if key.startswith(STAMP_PREFIX) and ":" in key[len(STAMP_PREFIX):]:
                bp, name = key[len(STAMP_PREFIX):].rsplit(":", 1)
                rel = Path(escape_id(bp), name)
                if not os.path.lexists(self.layers / rel) and (self.layers / rel.parent).is_dir():
                    missing[rel] = stamp
        if not missing:
            return
        for target in (output, self.path):
            for work in stale_work_dirs(target):
                for part in ("new", "old") if os.path.lexists(target) else ("new",):
                    for rel, stamp in list(missing.items()):
                        left = work / part / "layers" / rel
                        if left.is_dir() and not left.is_symlink() and content_key(tree_stamp(left)) == stamp \
                                and _rename(left, self.layers / rel):
                            del missing[rel]
                            log.debug(f"cache layer {rel} taken back from {work.name}, left by an interrupted build")

    def adopt(self, pending: list[Path], replaced: Path | None, output: Path, log: Logger) -> None:
        """Move the layers `save` left pending from the replaced output (`replaced`, after the new output's
        commit: removed with its work dir) into the cache; where one cannot be moved (a read-only layer
        dir of a build not run as root), the new output's copy (`output`) is copied; failing that, the
        cache misses it."""
        for rel in pending:
            if replaced is not None and _rename(replaced / "layers" / rel, self.layers / rel):
                continue
            try:
                copy_tree(output / "layers" / rel, self.layers / rel, digest=False)
            except (OSError, RecursionError) as exc:
                remove_tree(self.layers / rel)
                log.debug(f"cache layer {rel} not kept ({exc}): the next build rebuilds it")

    def _write(self, staging: Path, outcome: BuildOutcome, layers_dir: Path,
               status: dict[tuple[str, str], LayerStatus],
               log: Logger, digests: TreeDigests | None, host: tuple[str, str] | None,
               previous: Path | None, taken: list[tuple[Path, Path]]) -> list[Path]:
        (staging / "layers").mkdir(parents=True)
        before = self.index()
        index = {LAYERS_KEY: str(layers_dir)}
        pending: list[Path] = []
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
                rel = Path(escape_id(bp.element.id), layer.name)
                unchanged = status.get((bp.element.id, layer.name)) == LayerStatus.RESTORED and name in before \
                    and before.get(LAYERS_KEY) == str(layers_dir)
                if unchanged and cached.is_dir() and _rename(cached, dest / layer.name):
                    # restore copied it: the new cache takes the cached dir itself (put back on failure)
                    taken.append((dest / layer.name, cached))
                    index[name] = before[name]
                    index[STAMP_PREFIX + name] = content_key(tree_stamp(dest / layer.name))
                    log.debug(f"Reusing cache layer '{name}'")
                elif unchanged and previous is not None and before.get(OUTPUT_PREFIX + name) \
                        and content_key(tree_stamp(previous / rel)) == before[OUTPUT_PREFIX + name]:
                    # restore moved it into this build: the previous output's copy, as that build left it
                    # (the same contents), becomes the cached one (adopt), never the new output's own
                    pending.append(rel)
                    index[name] = before[name]
                    index[STAMP_PREFIX + name] = before[OUTPUT_PREFIX + name]
                    log.debug(f"Reusing cache layer '{name}'")
                else:
                    index[name] = copy_tree(layer.path, dest / layer.name)   # of what is cached (no sockets, FIFOs)
                    index[STAMP_PREFIX + name] = content_key(tree_stamp(dest / layer.name))
                    log.debug(f"Adding cache layer '{name}'")
                index[OUTPUT_PREFIX + name] = content_key(tree_stamp(layer.path))
                known = digests.reusable(layer.path) if digests is not None and host is not None else None
                if known and host is not None and known[0] == index[name]:   # these very contents (no FIFO left out)
                    index[REPORT_PREFIX + name] = json.dumps([*known, *host])
                shutil.copy2(layer.path.with_name(layer.name + ".toml"), dest / f"{layer.name}.toml")
        (staging / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True), encoding="utf-8")
        return pending
