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

from cnbsim.phase.build import BuildOutcome
from cnbsim.fs import special_files
from cnbsim.log import Logger
from cnbsim.model.buildpack import escape_id
from cnbsim.report import tree_digest

RESTORED, REUSED, REBUILT = "restored", "reused", "rebuilt"
INDEX = "index.json"
LAYERS_KEY = "layers-dir"     # in the index: where the cached layers were built


def default_cache_dir(app: Path) -> Path:
    """Per app under the user's cache dir: `$XDG_CACHE_HOME/cnbsim/<name>-<hash of its path>`."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(str(app.absolute()).encode()).hexdigest()[:12]
    return base / "cnbsim" / f"{app.absolute().name}-{key}"


class Cache:
    """A directory cache: `<dir>/layers/<escaped id>/<layer>/` + `<layer>.toml`, and an index."""

    def __init__(self, path: Path) -> None:
        self.path = path.absolute()

    def clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    @property
    def layers(self) -> Path:
        return self.path / "layers"

    def built_in(self) -> str:
        return self.index().get(LAYERS_KEY, "")

    def index(self) -> dict[str, str]:
        try:
            return json.loads((self.path / INDEX).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def save(self, outcome: BuildOutcome, layers_dir: Path, status: dict[tuple[str, str], str],
             log: Logger) -> None:
        """Write the new cache aside, then swap it in; on any failure the previous cache stays as it was
        (a warning, as the lifecycle gives: the build itself succeeded). A layer restored from the cache
        and left as it was keeps its cached files (the lifecycle's "Reusing cache layer")."""
        staging = self.path.with_name(self.path.name + ".staging")
        try:
            self._write(staging, outcome, layers_dir, status, log)
        except (OSError, shutil.Error) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            log.warn(f"failed to save the cache to {self.path}: {exc}; the previous cache is kept")
            return
        old = self.path.with_name(self.path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.path.exists():
            self.path.rename(old)
        staging.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def _write(self, staging: Path, outcome: BuildOutcome, layers_dir: Path, status: dict[tuple[str, str], str],
               log: Logger) -> None:
        shutil.rmtree(staging, ignore_errors=True)
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
