"""Reproducible layer tars: headers normalized as the lifecycle writes them, hashed as they are written.

Follows lifecycle archive/writer.go, archive/archive.go and layers/dir.go, so that an unchanged layer keeps
its diffID from one export to the next (buildpacks/spec platform.md#build-reproducibility).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

from cnbsim.errors import ExportError

NORMALIZED_TIME = dt.datetime(1980, 1, 1, 0, 0, 1, tzinfo=dt.timezone.utc)  # lifecycle archive/writer.go
CNB_USER_ID = 1000     # owner of layer and app entries, as CNB_USER_ID/CNB_GROUP_ID of a builder
CNB_GROUP_ID = 1000
CHUNK = 1 << 20


class TarWriter:
    """One uncompressed layer tar, hashed as it is written (the diffID); headers normalized as lc does.

    Entry names are absolute (`/layers/<bp>/<layer>/...`), as lifecycle archive writes them: OCI tools
    take them relative to the rootfs (umoci unpack and skopeo accept them; the tests check both).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "wb")
        self._sha = hashlib.sha256()

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._sha.update(data)

    def add(self, info: tarfile.TarInfo, content: Path | bytes | None = None) -> None:
        info.mtime = int(NORMALIZED_TIME.timestamp())
        info.uname = info.gname = ""
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if not info.isreg():
            return
        written = 0
        if isinstance(content, bytes):
            self._write(content)
            written = len(content)
        elif content is not None:
            try:
                with open(content, "rb") as fh:
                    while chunk := fh.read(CHUNK):
                        self._write(chunk)
                        written += len(chunk)
            except OSError as exc:
                raise ExportError(f"cannot read a file of the image: {exc.strerror}", file=content) from None
        if written != info.size:
            raise ExportError("file changed while it was exported", file=str(content), hint="export again")
        self._write(b"\0" * (-written % tarfile.BLOCKSIZE))

    def close(self) -> str:
        self._write(b"\0" * (2 * tarfile.BLOCKSIZE))   # end of archive, without tarfile's record padding
        self._fh.close()
        return "sha256:" + self._sha.hexdigest()

    def abort(self) -> None:
        self._fh.close()


def dir_header(name: str, uid: int, gid: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, uid, gid
    return info


def host_header(host: Path, name: str) -> tarfile.TarInfo | None:
    """lifecycle archive AddFileToArchive: the file's type and mode bits, owned by the CNB user; sockets skipped."""
    try:
        st = os.lstat(host)
        target = os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""
    except OSError as exc:
        raise ExportError(f"cannot read a file of the image: {exc.strerror}", file=host) from None
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), CNB_USER_ID, CNB_GROUP_ID
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, target
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return None
    return info


def walk(host: Path, name: str) -> Iterator[tuple[Path, str]]:
    """filepath.Walk order: a directory, then its entries by name (bytes), depth first; symlinks not followed."""
    yield host, name
    if host.is_dir() and not host.is_symlink():
        try:
            children = sorted(os.listdir(host), key=os.fsencode)
        except OSError as exc:
            raise ExportError(f"cannot list a directory of the image: {exc.strerror}", file=host) from None
        for child in children:
            yield from walk(host / child, f"{name}/{child}")


def parent_dirs(name: str) -> list[str]:
    """`/layers/bp/layer` -> [`/layers`, `/layers/bp`] (lifecycle layers/factory.go parents)."""
    parts = name.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def write_files(tw: TarWriter, files: list[tuple[Path, str]], root: str) -> None:
    """Parents of `root` (0755, CNB user: what a builder's /layers and /workspace are), then the files."""
    if not files:
        return   # lc: an empty slice is an empty tar, without parents
    for parent in parent_dirs(root):
        tw.add(dir_header(parent, CNB_USER_ID, CNB_GROUP_ID))
    for host, name in files:
        info = host_header(host, name)
        if info is not None:
            tw.add(info, host if info.isreg() else None)


def files_layer(files: list[tuple[Path, str]], root: str) -> Callable[[TarWriter], None]:
    return lambda tw: write_files(tw, files, root)


def dir_layer(host: Path, name: str) -> Callable[[TarWriter], None]:
    """lifecycle layers/dir.go DirLayer: parents, then the directory in walk order."""
    return lambda tw: write_files(tw, list(walk(host, name)), name)
