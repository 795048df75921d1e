"""The layer tree helpers: a copy that digests what it reads, hard-linked cache generations, and
digests read once per tree after a build."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

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


def test_link_tree_shares_files_and_copies_directories(tmp_path):
    src = _tree(tmp_path / "src")
    fs.link_tree(src, tmp_path / "dst")
    assert os.stat(tmp_path / "dst" / "bin" / "tool").st_ino == os.stat(src / "bin" / "tool").st_ino
    assert os.stat(tmp_path / "dst" / "bin").st_ino != os.stat(src / "bin").st_ino
    assert fs.tree_digest(tmp_path / "dst") == fs.tree_digest(src / ".." / "dst")
    (src / "ro").chmod(0o755)
    (tmp_path / "dst" / "ro").chmod(0o755)


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
