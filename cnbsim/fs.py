"""Small filesystem helpers shared by the phases."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Iterable, Protocol


def special_files(dirpath: str, names: list[str]) -> list[str]:
    """The entries of `names` that are neither regular files, directories nor symlinks (sockets,
    FIFOs, devices): reading one could block, and the lifecycle's tar writer skips them.
    Usable as the `ignore` of `shutil.copytree`."""
    out = []
    for name in names:
        try:
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
        except OSError:
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            out.append(name)
    return out


def is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class Neutral(Protocol):
    """What makes a digest host-independent (report.HostPython): the host interpreter's names as placeholders."""

    def neutral(self, text: str) -> str: ...

    def neutral_bytes(self, data: bytes, name: str = "") -> bytes: ...


def tree_digest(root: Path, replace: Iterable[tuple[str, str]] = (),
                host: Neutral | None = None) -> tuple[str, int]:
    """A content digest of a directory (names, types, modes' x bit, contents, link targets) and its file count.

    `replace` maps host paths to image paths in contents and link targets first, so the digest is
    that of the layer as built at `/layers` (where a real build writes it), not of this host's path;
    with `host`, names, link targets and contents are read `host.neutral`, so that it does not
    depend on the host's interpreter either.
    """
    pairs = [(h.encode(), i.encode()) for h, i in sorted(replace, key=lambda p: -len(p[0])) if h]

    def fix(data: bytes, name: str = "") -> bytes:
        for host_path, image in pairs:
            if host_path in data:
                data = data.replace(host_path, image)
        return host.neutral_bytes(data, name) if host else data

    def fix_name(rel: str) -> str:
        return host.neutral(rel) if host else rel
    h = hashlib.sha256()
    count = 0
    if not root.is_dir():
        return "", 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        h.update(f"d {fix_name(rel_dir)}\n".encode())
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            path = os.path.join(dirpath, name)
            rel = fix_name(os.path.normpath(os.path.join(rel_dir, name)))
            count += 1
            if os.path.islink(path):
                h.update(f"l {rel} ".encode() + fix(os.readlink(path).encode()) + b"\n")
                continue
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):     # a socket or FIFO: named, never opened (it could block)
                h.update(f"o {rel}\n".encode())
                continue
            h.update(f"f {rel} {'x' if st.st_mode & 0o111 else '-'} ".encode())
            with open(path, "rb") as fh:
                h.update(fix(fh.read(), name) if pairs or host else fh.read())
            h.update(b"\n")
    return "sha256:" + h.hexdigest(), count
