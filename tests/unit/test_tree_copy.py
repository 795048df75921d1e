"""The layer tree helpers: a copy that digests what it reads, hard-linked cache generations, and
digests read once per tree after a build."""

from __future__ import annotations

import errno
import functools
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cnbsim import fs


def _tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\necho /old/layers/x\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "lib" / "empty").mkdir(parents=True)
    (root / "lib" / "data.bin").write_bytes(b"\0" * 3 + os.urandom(3 << 20))     # more than one read
    os.symlink("../bin/tool", root / "lib" / "link")
    os.symlink("/nowhere", root / "dangling")
    os.mkfifo(root / "lib" / "fifo")
    os.utime(root / "bin" / "tool", ns=(1_000_000_000, 2_000_000_000))
    (root / "ro").mkdir()
    (root / "ro" / "f").write_text("read-only dir")
    (root / "ro").chmod(0o555)
    return root


def _listing(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            kind = "l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else \
                "f" if stat.S_ISREG(st.st_mode) else "o"
            out[os.path.relpath(p, root)] = (kind, stat.S_IMODE(st.st_mode) if kind != "l" else 0,
                                            st.st_mtime_ns if kind == "f" else 0,
                                            os.readlink(p) if kind == "l" else
                                            Path(p).read_bytes() if kind == "f" else b"")
    return out


def test_copy_tree_copies_what_a_layer_holds_and_returns_the_copy_s_digest(tmp_path):
    src = _tree(tmp_path / "src")
    digest = fs.copy_tree(src, tmp_path / "dst")
    want = {k: v for k, v in _listing(src).items() if k != "lib/fifo"}     # the tar writer skips FIFOs too
    assert _listing(tmp_path / "dst") == want
    assert digest == fs.tree_digest(tmp_path / "dst")[0]
    assert digest != fs.tree_digest(src)[0]          # which names the FIFO
    (src / "ro").chmod(0o755)
    (tmp_path / "dst" / "ro").chmod(0o755)


def test_copy_tree_takes_any_depth(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    for _ in range(600):                  # deeper than shutil.copytree's recursion goes
        d = d / "d"
        d.mkdir()
    (d / "f").write_text("deep")
    try:
        digest = fs.copy_tree(tmp_path / "src", tmp_path / "dst")
        assert digest == fs.tree_digest(tmp_path / "src")[0] == fs.tree_digest(tmp_path / "dst")[0]
        assert (tmp_path / "dst" / Path(*["d"] * 600) / "f").read_text() == "deep"
    finally:
        for top in ("src", "dst"):
            fs.remove_tree(tmp_path / top)


def test_tree_digests_reads_a_tree_again_only_when_it_changed(tmp_path, monkeypatch):
    src = _tree(tmp_path / "src")
    pairs = [("/old/layers", "/layers")]
    digests = fs.TreeDigests(pairs)
    reads = []
    real = fs._digest_tree
    # the reads of `digests` (tree_digest, the reference here, reads with pairs of its own)
    monkeypatch.setattr(fs, "_digest_tree", lambda *a, **k: (a[1] is digests._pairs and reads.append(a[0])) or real(*a, **k))
    assert digests.raw(src) == fs.tree_digest(src)[0]
    assert digests.normalized(src) == fs.tree_digest(src, pairs)
    assert len(reads) == 1
    with open(src / "bin" / "tool", "a") as fh:            # written in place
        fh.write("more\n")
    assert digests.raw(src) == fs.tree_digest(src)[0]
    shutil.copy(src / "bin" / "tool", tmp_path / "t")
    os.replace(tmp_path / "t", src / "bin" / "tool")       # the same bytes, a new file
    (src / "new").write_text("")
    assert digests.normalized(src) == fs.tree_digest(src, pairs)
    assert len(reads) == 3                 # once, then once after each change
    (src / "ro").chmod(0o755)


REPO = Path(__file__).resolve().parents[2]
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@functools.lru_cache(maxsize=1)
def _nobody_python() -> str:
    """An interpreter the user nobody can start and that finds cnbsim (a pyenv build under /root is
    not one: its libpython is unreadable to others); "" if there is none."""
    for exe in (sys.executable, "/usr/bin/python3"):
        probe = [*AS_NOBODY, exe, "-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); import cnbsim.fs"]
        try:
            if subprocess.run(probe, capture_output=True, timeout=30, cwd="/").returncode == 0:
                return exe
        except OSError:
            continue
    return ""


def _as_nobody(code: str, tmp: Path) -> subprocess.CompletedProcess:
    """Run `code` (with cnbsim importable) as the user nobody, in a dir nobody may write."""
    tmp.chmod(0o777)
    for parent in tmp.parents:          # nobody must reach it
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    return subprocess.run([*AS_NOBODY, _nobody_python(), "-c",
                           f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + code],
                          capture_output=True, text=True, cwd=tmp, timeout=60)


needs_nobody = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not _nobody_python(),
    reason="switches to the user nobody: needs root, setpriv (util-linux) and a Python (with cnbsim) nobody can run")


@needs_nobody
def test_a_copy_that_does_not_check_out_is_removed_even_with_read_only_dirs(tmp_path):
    # as a user whose read-only (0555) dirs cannot be emptied: the copy keeps 0700 dirs until checked
    work = tmp_path / "w"
    work.mkdir()
    done = _as_nobody(textwrap.dedent("""
        import os
        from pathlib import Path
        from cnbsim import fs
        src = Path("src"); (src / "ro").mkdir(parents=True); (src / "ro" / "f").write_text("x"); (src / "v").write_text("1")
        os.chmod(src / "ro", 0o555)
        good = fs.tree_digest(src)[0]
        assert fs.copy_tree(src, Path("bad"), expect="sha256:other") == good
        assert not os.path.lexists("bad"), os.listdir("bad")
        assert fs.copy_tree(src, Path("ok"), expect=good) == good
        assert oct(os.stat("ok/ro").st_mode & 0o777) == "0o555"
        os.chmod(src / "ro", 0o755); os.chmod("ok/ro", 0o755)
        print("ok")
        """), work)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@needs_nobody
def test_a_copy_of_a_tree_with_an_unreadable_dir_is_an_error(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    done = _as_nobody(textwrap.dedent("""
        import os
        from pathlib import Path
        from cnbsim import fs
        src = Path("src"); (src / "secret" / "inner").mkdir(parents=True); os.chmod(src / "secret", 0)
        try:
            fs.copy_tree(src, Path("dst"))
        except PermissionError as exc:
            print("error", exc.filename)
        os.chmod(src / "secret", 0o755)
        """), work)
    assert done.returncode == 0 and done.stdout.strip() == "error src/secret", (done.stdout, done.stderr)


def test_names_that_are_not_utf8_are_digested_and_copied(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "plain").write_text("a")
    with open(os.fsencode(src) + b"/n\xffame", "w") as fh:
        fh.write("b")
    os.symlink(b"t\xfe", os.fsencode(src) + b"/l\xfe")
    digest = fs.copy_tree(src, tmp_path / "dst")
    assert digest == fs.tree_digest(src)[0] == fs.tree_digest(tmp_path / "dst")[0]
    assert sorted(os.listdir(os.fsencode(tmp_path / "dst"))) == [b"l\xfe", b"n\xffame", b"plain"]
    fs.copy_tree(src, tmp_path / "fast", digest=False)
    assert fs.tree_digest(tmp_path / "fast") == fs.tree_digest(src)


def test_a_tree_deeper_than_its_paths_can_be_named_is_too_deep(tmp_path):
    _deeper_than_path_max(tmp_path)
    with pytest.raises(fs.TreeTooDeep):
        fs.tree_digest(tmp_path)
    with pytest.raises(RecursionError):     # what the build reports as "nests too deeply" (exit 52)
        fs.copy_tree(tmp_path, tmp_path.parent / f"{tmp_path.name}-copy")
    shutil.rmtree(tmp_path.parent / f"{tmp_path.name}-copy")


def test_a_write_error_names_the_file(tmp_path, monkeypatch):
    src = _tree(tmp_path / "src")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError) as raised:
        fs.copy_tree(src, tmp_path / "dst")
    assert raised.value.errno == errno.ENOSPC and str(tmp_path / "dst") in raised.value.filename
    (src / "ro").chmod(0o755)


def _deeper_than_path_max(top: Path) -> Path:
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(18):                 # 18 names of 250 characters: more than PATH_MAX
            os.mkdir("d" * 250, dir_fd=fd)
            nxt = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w") as fh:
            fh.write("x")
    finally:
        os.close(fd)
    return top


def test_remove_tree_removes_any_depth_and_follows_no_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "ro" / "sub").mkdir(parents=True)
    (tree / "ro" / "sub" / "f").write_text("x")
    (tree / "ro").chmod(0o555)
    os.symlink(outside, tree / "link")
    _deeper_than_path_max(tree / "ro" / "sub")
    fs.remove_tree(tree)
    assert not os.path.lexists(tree)
    assert (outside / "keep").read_text() == "keep"
    os.symlink(outside, tmp_path / "top-link")     # a link where the tree was: the link goes, not its target
    fs.remove_tree(tmp_path / "top-link")
    assert not os.path.lexists(tmp_path / "top-link") and (outside / "keep").is_file()


def test_same_contents_reads_only_what_changed_and_sees_every_change(tmp_path):
    original = tmp_path / "cached"
    (original / "env").mkdir(parents=True)
    (original / "env" / "PATH.prepend").write_text("/layers/x/bin")
    (original / "tool").write_text("#!/bin/sh\n")
    os.symlink("tool", original / "link")

    def fresh() -> tuple[Path, tuple]:
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        fs.copy_tree(original, copy)
        stamp = fs.tree_stamp(copy)
        fs.settle_clock(tmp_path, [stamp])
        return copy, stamp

    copy, stamp = fresh()
    assert fs.same_contents(copy, stamp, original)
    (copy / "env" / "PATH.prepend").write_text("/layers/x/bin")      # written anew, the same bytes
    assert fs.same_contents(copy, stamp, original)
    changes = [lambda c: (c / "env" / "PATH.prepend").write_text("/layers/y/bin"),   # same size, other bytes
               lambda c: (c / "new").write_text(""),
               lambda c: (c / "tool").chmod(0o755),
               lambda c: (os.unlink(c / "link"), os.symlink("env", c / "link")),
               lambda c: (os.unlink(c / "tool"), (c / "tool").mkdir())]
    for change in changes:
        copy, stamp = fresh()
        change(copy)
        assert not fs.same_contents(copy, stamp, original)
        assert fs.tree_digest(copy) != fs.tree_digest(original)      # what the check stands for
