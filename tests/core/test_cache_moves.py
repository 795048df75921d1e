"""Rebuilds move cached layers instead of copying them: the cache and the output never share a file,
a failed or interrupted build costs at most a cache miss, and a cache on another file system is copied."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import cnbsim
from cnbsim.cache import Cache

LAYER = '''L="$CNB_LAYERS_DIR/deps"
if [ -f "$L/data.txt" ]; then echo "restored: $(cat "$L/data.txt")"; else
  echo fresh; mkdir -p "$L/sub"; echo v1 > "$L/data.txt"; echo more > "$L/sub/more.txt"; fi
printf '[types]\\ncache = true\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/deps.toml"
'''


@pytest.fixture
def setup(bps, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    bp = bps("mover", build=LAYER)
    out, cache = tmp_path / "out", tmp_path / "cache"

    def build(**kw):
        return cnbsim.build(app, buildpacks=[kw.pop("bp", bp)], output=kw.pop("out", out),
                            cache_dir=kw.pop("cache", cache), **kw)
    return build, out / "layers" / "mover" / "deps", cache / "layers" / "mover" / "deps"


def inodes(tree: Path) -> set[int]:
    return {os.lstat(os.path.join(d, n)).st_ino for d, dirs, files in os.walk(tree) for n in dirs + files}


def test_an_unchanged_rebuild_moves_the_cached_layer_and_never_shares_a_file(setup):
    build, in_output, in_cache = setup
    assert "fresh" in build().output_of("mover")
    for _ in range(3):
        cached, shown = in_cache.stat().st_ino, in_output.stat().st_ino
        again = build()
        assert "restored: v1" in again.output_of("mover")
        assert again.layer_status[("mover", "deps")] == "restored"
        assert in_output.stat().st_ino == cached         # the cached dir itself, not a copy of it
        assert in_cache.stat().st_ino == shown           # the previous output's copy, now cached
        assert not inodes(in_output) & inodes(in_cache)
        assert (in_cache / "sub" / "more.txt").read_text() == "more\n"


def test_an_output_changed_after_its_build_never_reaches_the_cache(setup):
    build, in_output, in_cache = setup
    build()
    build()
    (in_output / "data.txt").write_text("edited\n")     # by hand, in the last output
    build()
    assert "restored: v1" in build().output_of("mover")
    assert (in_cache / "data.txt").read_text() == "v1\n"


def test_a_failed_build_puts_an_unchanged_layer_back(setup, bps):
    build, _, in_cache = setup
    build()
    cached = in_cache.stat().st_ino
    with pytest.raises(cnbsim.BuildError):
        build(bp=bps("mover", "2.0", build=LAYER + "exit 1"))
    assert in_cache.stat().st_ino == cached
    assert "restored: v1" in build().output_of("mover")


@pytest.mark.parametrize("keep_output", [True, False])
def test_a_failed_build_that_changed_a_moved_layer_leaves_no_change_in_the_cache(setup, bps, keep_output):
    build, in_output, _ = setup
    build()
    build()
    if not keep_output:          # nothing to copy the cached contents back from: the cache misses it
        cnbsim.fs.remove_tree(in_output.parents[2])
    with pytest.raises(cnbsim.BuildError):
        build(bp=bps("mover", "2.0", build=LAYER + 'echo changed >> "$CNB_LAYERS_DIR/deps/data.txt"; exit 1'))
    again = build()
    assert again.output_of("mover").strip() == ("restored: v1" if keep_output else "fresh")
    assert "wrong sha" not in again.log


def test_a_build_stopped_before_the_cache_took_its_layers_leaves_a_miss(setup, monkeypatch):
    build, in_output, _ = setup
    build()
    build()

    def stopped(*_args: object) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(Cache, "adopt", stopped)
    with pytest.raises(KeyboardInterrupt):
        build()
    assert (in_output / "data.txt").read_text() == "v1\n"      # the new output is complete
    monkeypatch.undo()
    again = build()
    assert again.output_of("mover").strip() == "fresh"
    assert "wrong sha" not in again.log and not again.warnings


def test_a_cache_on_another_file_system_is_copied(setup, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system here (/dev/shm) to hold the cache")
    build, in_output, _ = setup
    cache = Path(tempfile.mkdtemp(prefix="cnbsim-test-cache-", dir=shm))
    try:
        build(cache=cache / "c")
        for _ in range(2):
            again = build(cache=cache / "c")
            assert "restored: v1" in again.output_of("mover")
            assert again.layer_status[("mover", "deps")] == "restored"
        in_cache = cache / "c" / "layers" / "mover" / "deps"
        assert (in_cache / "data.txt").read_text() == "v1\n"
        assert not inodes(in_output) & inodes(in_cache)
    finally:
        cnbsim.fs.remove_tree(cache)


def test_a_read_only_layer_dir_that_cannot_be_moved_is_copied(bps, tmp_path, monkeypatch):
    # as a non-root user: a directory without write permission cannot be renamed into another parent
    # (its ".." entry must change); root can, so the kernel's rule is applied here by hand
    real = os.rename

    def rename(src, dest, *args, **kwargs):
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IWUSR \
                and os.path.dirname(os.path.abspath(src)) != os.path.dirname(os.path.abspath(dest)):
            raise PermissionError(errno.EACCES, "Permission denied", src)
        return real(src, dest, *args, **kwargs)
    monkeypatch.setattr(os, "rename", rename)
    app = tmp_path / "app"
    app.mkdir()
    bp = bps("mover", build=LAYER.replace('more.txt"; fi', 'more.txt"; chmod 555 "$L"; fi'))
    out, cache = tmp_path / "out", tmp_path / "cache"
    cnbsim.build(app, buildpacks=[bp], output=out, cache_dir=cache)
    for _ in range(3):
        again = cnbsim.build(app, buildpacks=[bp], output=out, cache_dir=cache)
        assert "restored: v1" in again.output_of("mover")
        assert again.layer_status[("mover", "deps")] == "restored"
        assert not again.warnings
    in_output, in_cache = out / "layers" / "mover" / "deps", cache / "layers" / "mover" / "deps"
    assert not in_cache.stat().st_mode & stat.S_IWUSR       # the case at hand: it could not be moved
    assert (in_cache / "sub" / "more.txt").read_text() == "more\n"
    assert not inodes(in_output) & inodes(in_cache)


def _killed_build(argv: list[str], out: Path | None = None, script: str | None = None) -> None:
    """A build in a process of its own, SIGKILLed once its bin/build has touched /workspace/.building
    (found in the work dir beside `out`), or ending itself by `script`."""
    if script is not None:
        done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120)
        assert done.returncode == 9, done.stderr
        return
    proc = subprocess.Popen([sys.executable, "-m", "cnbsim.cli", *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while out is not None and not list(out.parent.glob(f".{out.name}.cnbsim-*/new/workspace/.building")):
            assert proc.poll() is None and time.monotonic() < deadline, "the build did not get to its bin/build"
            time.sleep(0.02)
        proc.kill()
    finally:
        proc.wait(timeout=30)


def test_a_killed_build_gives_its_moved_layers_back_to_the_next_build(bps, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    slow = bps("mover", build=LAYER + '[ -n "${SLOW:-}" ] && { touch /workspace/.building; sleep 60; }; exit 0')
    out, cache = tmp_path / "out", tmp_path / "cache"
    cnbsim.build(app, buildpacks=[slow], output=out, cache_dir=cache)
    argv = ["build", str(app), "-b", str(slow), "-o", str(out), "--cache-dir", str(cache)]
    _killed_build([*argv, "-e", "SLOW=1"], out)                          # killed in its bin/build
    assert not (cache / "layers" / "mover" / "deps").exists()             # moved into the killed build
    again = cnbsim.build(app, buildpacks=[slow], output=out, cache_dir=cache)
    assert "restored: v1" in again.output_of("mover")
    assert again.layer_status[("mover", "deps")] == "restored"
    # killed after the cache was saved, before it took the previous output's copy (Cache.adopt)
    _killed_build(argv, script="import os, sys; from cnbsim.cli import main; from cnbsim.cache import Cache; "
                               "Cache.adopt = lambda *a: os._exit(9); sys.exit(main(sys.argv[1:]))")
    again = cnbsim.build(app, buildpacks=[slow], output=out, cache_dir=cache)
    assert "restored: v1" in again.output_of("mover")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "buildpacks", "cache", "out"]


def test_a_killed_build_that_changed_a_moved_layer_gives_nothing_back(bps, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    bp = bps("mover", build=LAYER + '''if [ -n "${SLOW:-}" ]; then
  echo changed >> "$CNB_LAYERS_DIR/deps/data.txt"; touch /workspace/.building; sleep 60; fi''')
    out, cache = tmp_path / "out", tmp_path / "cache"
    cnbsim.build(app, buildpacks=[bp], output=out, cache_dir=cache)
    _killed_build(["build", str(app), "-b", str(bp), "-o", str(out), "--cache-dir", str(cache), "-e", "SLOW=1"],
                  out)
    again = cnbsim.build(app, buildpacks=[bp], output=out, cache_dir=cache)
    assert again.output_of("mover").strip() == "fresh"
