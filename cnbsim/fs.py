"""Filesystem helpers shared by the phases: special files, ownership markers, the atomic directory swap.

cnbsim replaces or deletes only directories it marked as its own when it created them (an
output, a cache, an OCI layout): each holds `MARKER`, naming cnbsim, the marker's format and
the kind of directory. A new version of such a directory is written completely aside, in a
work dir next to it (same file system), then swapped in by `renameat2(RENAME_EXCHANGE)` (or,
where the file system lacks it, two renames), so the name always holds a complete directory,
and a later run finds and cleans whatever an interrupted one left.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import hashlib
import json
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from cnbsim.errors import ConfigError

MARKER = ".cnbsim-owned"
MARKER_FORMAT = 1
WORK_MODE = 0o700            # work dirs may hold the platform dir (secrets in env/ files)


class DirKind(str, enum.Enum):
    """What a cnbsim-owned directory is; the marker records it."""

    OUTPUT = "output"
    CACHE = "cache"
    OCI_LAYOUT = "oci-layout"
    WORK = "work"             # a work dir beside a target: its next version and scratch space


# How a directory written by cnbsim before ownership markers looks, per kind.
_LEGACY = {DirKind.OUTPUT: ("report.json", "layers"), DirKind.CACHE: ("index.json",),
           DirKind.OCI_LAYOUT: ("oci-layout",)}


class OwnershipError(ConfigError):
    """A directory cnbsim would replace or delete is not one it created."""


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


def target_path(path: Path | str, what: str) -> Path:
    """An absolute path with `..` resolved (and a final symlink followed), checked to have a name."""
    raw = str(path)
    if not raw or "\0" in raw:
        raise ConfigError(f"{what} path is empty or holds a NUL byte", file=repr(raw), hint=f"give a {what} directory")
    out = Path(os.path.abspath(raw))
    if out.is_symlink():
        out = Path(os.path.realpath(out))
    if out.parent == out:
        raise ConfigError(f"the {what} cannot be the root directory", file=out, hint=f"give a {what} directory")
    return out


def mark(path: Path, kind: DirKind) -> None:
    """Write the ownership marker into `path` (a directory cnbsim just created)."""
    data = {"owner": "cnbsim", "format": MARKER_FORMAT, "kind": kind.value}
    (path / MARKER).write_text(json.dumps(data, sort_keys=True) + "\n", encoding="utf-8")


def owner_kind(path: Path) -> DirKind | None:
    """The kind recorded in `path`'s marker; None when there is no valid cnbsim marker."""
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8")[:4096])
        if data.get("owner") != "cnbsim" or data.get("format") != MARKER_FORMAT:
            return None
        return DirKind(data.get("kind"))
    except (OSError, ValueError, AttributeError, UnicodeDecodeError):
        return None


def _is_empty_dir(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except OSError:
        return False


def check_replaceable(path: Path, kind: DirKind, what: str) -> bool:
    """True when `path` holds a `kind` cnbsim made, False when it is absent or an empty directory;
    else refuse (OwnershipError) saying why, with a hint for directories of older cnbsim versions."""
    if not os.path.lexists(path):
        return False
    if path.is_symlink() or not path.is_dir():
        raise OwnershipError(f"{what} exists and is not a directory; refusing to replace it", file=path,
                             hint=f"choose another {what} path")
    found = owner_kind(path)
    if found is kind:
        return True
    if found is not None:
        raise OwnershipError(f"{what} is a cnbsim {found.value}, not a {kind.value}; refusing to replace it",
                             file=path, hint=f"choose another {what} path")
    if _is_empty_dir(path):
        return False
    if all((path / name).exists() for name in _LEGACY.get(kind, ("\0",))):
        raise OwnershipError(
            f"{what} looks like a {kind.value} written by an older cnbsim, which marked none as its own; "
            "refusing to replace it", file=path,
            hint=f"if nothing in it is yours to keep, remove it by hand (rm -rf '{path}') and run again")
    raise OwnershipError(f"{what} exists and was not created by cnbsim (no {MARKER} marker); "
                         "refusing to replace it", file=path,
                         hint=f"choose another {what} path (a new or empty directory)")


def remove_owned(path: Path, kind: DirKind, what: str) -> None:
    """Delete `path` if cnbsim made it as a `kind` (or it is empty); refuse anything else."""
    if check_replaceable(path, kind, what):
        remove_tree(path)
    elif path.is_dir():
        path.rmdir()


def remove_tree(path: Path) -> None:
    """Delete a directory tree of any depth (deeper than a path can name too: each directory is
    opened relative to its parent, one at a time, without recursion); symlinks are removed, never
    followed (nor is `path` itself if it is one); what cannot be removed is left (cleanup must not fail)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return
    except OSError:
        try:
            os.unlink(path)           # a file or a symlink where the tree was
        except OSError:
            pass
        return
    # one frame per directory from the top down to the current one: its name, its subdirectories
    # still to remove, and whether something in it could not be removed
    frames: list[tuple[str, list[str], list[bool]]] = [("", *_empty_dir(fd))]
    while True:
        _, pending, blocked = frames[-1]
        if pending:
            name = pending.pop()
            try:
                child = os.open(name, flags, dir_fd=fd)
            except FileNotFoundError:
                continue
            except OSError:
                blocked[0] = True
                continue
            os.close(fd)
            fd = child
            frames.append((name, *_empty_dir(fd)))
            continue
        name, _, blocked = frames.pop()
        if not frames:
            os.close(fd)
            if not blocked[0]:
                try:
                    os.rmdir(path)
                except OSError:
                    pass
            return
        parent = os.open("..", flags & ~os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = parent
        try:
            if blocked[0]:
                raise OSError(errno.ENOTEMPTY, "holds what cannot be removed")
            os.rmdir(name, dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError:
            frames[-1][2][0] = True


def _empty_dir(fd: int) -> tuple[list[str], list[bool]]:
    """Unlink every entry of the directory `fd` but its subdirectories; those, and whether something
    could not be unlinked or listed."""
    subdirs: list[str] = []
    blocked = False
    try:
        with os.scandir(fd) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                    continue
                try:
                    os.unlink(entry.name, dir_fd=fd)
                except FileNotFoundError:
                    pass
                except OSError:
                    blocked = True
    except OSError:
        blocked = True
    return subdirs, [blocked]


def is_inside(path: Path, other: Path) -> bool:
    """True when `path` is `other` or lies below it (both absolute, compared as resolved)."""
    a, b = os.path.realpath(path), os.path.realpath(other)
    return a == b or a.startswith(b.rstrip("/") + "/")


# ---------------------------------------------------------------------------------------------
# Swapping a directory in


def _libc_renameat2() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


_RENAMEAT2 = _libc_renameat2()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AtomicDir:
    """Write the next version of `target` aside, then swap it in: `target` always names a complete one.

    Use as a context manager: `path` is the new directory to fill (already marked as `kind`),
    `work` a 0700 scratch dir beside it, removed on every exit; `commit()` swaps `path` in.
    `current` is the version being replaced (None if there is none). Entering first recovers
    from an interrupted run (`notice` says what it cleaned) and refuses a `target` cnbsim did not make.
    """

    def __init__(self, target: Path | str, kind: DirKind, what: str,
                 notice: Callable[[str], None] | None = None) -> None:
        self.target = target_path(target, what)
        self.kind = kind
        self.what = what
        self.notice = notice or (lambda _message: None)
        self.work = self.target.with_name(f".{self.target.name}.cnbsim-{os.getpid()}-{secrets.token_hex(2)}")
        self.path = self.work / "new"
        self.current: Path | None = None
        self.committed = False
        self.replaced: Path | None = None     # after commit(): where the replaced version waits for __exit__

    def __enter__(self) -> AtomicDir:
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the {self.what}'s parent directory: {exc.strerror}",
                              file=self.target.parent, hint=f"choose a writable {self.what} location") from None
        recover(self.target, self.kind, self.what, self.notice)
        if check_replaceable(self.target, self.kind, self.what):
            self.current = self.target
        try:
            self.work.mkdir(mode=WORK_MODE)
            mark(self.work, DirKind.WORK)
            self.path.mkdir()
            mark(self.path, self.kind)
        except OSError as exc:
            remove_tree(self.work)
            raise ConfigError(f"cannot write the {self.what} here: {exc.strerror}", file=self.target,
                              hint=f"choose a writable {self.what} location") from None
        return self

    def commit(self) -> None:
        """Swap the new directory in; the replaced one is removed with the work dir."""
        try:
            if os.path.lexists(self.target):
                if exchange(self.path, self.target):
                    self.replaced = self.path
                else:
                    os.rename(self.target, self.work / "old")    # a crash here: recover() moves it back
                    os.rename(self.path, self.target)
                    self.replaced = self.work / "old"
            else:
                os.rename(self.path, self.target)
        except OSError as exc:
            raise ConfigError(f"cannot put the new {self.what} in place: {exc.strerror}", file=self.target,
                              hint=f"the previous {self.what} is kept; check the location is writable and "
                                   "not a mount point") from None
        self.committed = True

    def __exit__(self, *exc: Any) -> None:
        remove_tree(self.work)


_WORK_NAME = re.compile(r"^\.(?P<name>.+)\.cnbsim-(?P<pid>[0-9]+)-[0-9a-f]{4}$")


def stale_work_dirs(target: Path) -> list[Path]:
    """The work dirs beside `target` that an interrupted run left (its process is gone), cnbsim's only."""
    try:
        siblings = list(os.scandir(target.parent))
    except OSError:
        return []
    stale = []
    for entry in siblings:
        m = _WORK_NAME.match(entry.name)
        if not m or m.group("name") != target.name or _pid_alive(int(m.group("pid"))):
            continue
        if entry.is_symlink() or owner_kind(Path(entry.path)) is not DirKind.WORK:
            continue                  # not ours: left alone
        stale.append(Path(entry.path))
    return stale


def recover(target: Path, kind: DirKind, what: str, notice: Callable[[str], None]) -> None:
    """Clean the work dirs an interrupted run left beside `target`, putting its last good version back."""
    for work in stale_work_dirs(target):
        old = work / "old"
        if not os.path.lexists(target) and owner_kind(old) is kind:
            os.rename(old, target)
            notice(f"an interrupted run left the last good {what} aside: put it back at {target}")
        else:
            notice(f"removed {work.name}, left beside the {what} by an interrupted run")
        remove_tree(work)


def relocate(root: Path, old: str, new: str) -> None:
    """Replace the path `old` by `new` in the text files and link targets under `root` (or in `root`
    itself, when it is a file).

    Files holding a NUL byte (compiled `.pyc`, executables) are left as they are: a path of
    another length would corrupt them. A changed file is written anew (a new inode), never in place.
    """
    old_b, new_b = os.fsencode(old), os.fsencode(new)
    if not os.path.isdir(root) or os.path.islink(root):
        _relocate_entry(str(root), old, new, old_b, new_b)
        return
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            _relocate_entry(os.path.join(dirpath, name), old, new, old_b, new_b)


def _relocate_entry(path: str, old: str, new: str, old_b: bytes, new_b: bytes) -> None:
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        link = os.readlink(path)
        if old in link:
            os.unlink(path)
            os.symlink(link.replace(old, new), path)
    elif stat.S_ISREG(st.st_mode):
        with open(path, "rb") as fh:
            data = fh.read()
        if old_b in data and b"\0" not in data:
            mode = stat.S_IMODE(st.st_mode)
            os.unlink(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.replace(old_b, new_b))
            os.chmod(path, mode)


def tree_state(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Each entry under `root` (relative path) with its mode, size, mtime and link target: what tells
    that a tree was written to, without reading the files."""
    state: dict[str, tuple[int, int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            state[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns, link)
    return state


def tree_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """`added a`, `changed b`, `removed c`, one per entry, in path order."""
    return [f"added {p}" if p not in before else f"removed {p}" if p not in after else f"changed {p}"
            for p in sorted(set(before) | set(after)) if before.get(p) != after.get(p)]


class Neutral(Protocol):
    """What makes a digest host-independent (report.HostPython): the host interpreter's names as placeholders."""

    def neutral(self, text: str) -> str: ...

    def neutral_bytes(self, data: bytes, name: str = "") -> bytes: ...


class TreeTooDeep(RecursionError):
    """A directory tree nests deeper than its paths can be named (ENAMETOOLONG): as deep as recursion
    goes wrong, and reported as such (a build error, not a warning or a crash)."""


def _walk(root: str, strict: bool = False) -> Iterable[tuple[str, str, list[os.DirEntry[str]]]]:
    """Each directory under `root` (not following symlinks) as (path, path relative to root, its
    entries other than directories, by name), in the order of `os.walk` with sorted dirnames: top
    down, depth first, by name. A directory that cannot be listed is skipped, as os.walk skips it
    (for a digest, as tree_digest always did); with `strict` (for a copy) it is an error."""
    stack = [(root, ".")]
    while stack:
        path, rel = stack.pop()
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise TreeTooDeep(f"{root}: a directory nests too deeply ({rel.count('/') + 1} levels)") from None
            if strict:
                raise
            continue
        dirs = [e for e in entries if _is_dir(e)]
        yield path, rel, [e for e in entries if not _is_dir(e)]
        stack.extend((d.path, d.name if rel == "." else f"{rel}/{d.name}") for d in reversed(dirs))


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


_CHUNK = 1 << 20


def _digest_tree(root: Path, pairs: list[tuple[bytes, bytes]], host: Neutral | None,
                 copy_to: Path | None = None, digest: bool = True,
                 expect: str | None = None) -> tuple[str, str, int, bool]:
    """One pass over `root`: its raw digest, the digest with `pairs` and `host` applied (the raw one
    again without them), its file count and whether a pair replaced anything (if not, the fixed
    digest depends on the contents and `host` only); with `copy_to`, a copy made on the way (see
    copy_tree). Without `digest` nothing is hashed and the digests are "". With `expect`, a copy whose raw digest differs is removed
    (before its directories get their modes: a read-only one could not be emptied)."""
    raw = hashlib.sha256() if digest else None
    fixed = hashlib.sha256() if digest and (pairs or host) else None
    # every host path of `pairs` starts with this: a text without it has none of them (one search, not one each)
    common = os.path.commonprefix([h for h, _ in pairs]) if len(pairs) > 1 else b""  # noqa: RUF071 (a byte prefix is meant)
    replaced = False

    def update(data: bytes, name: str | None = None) -> None:
        """Feed `data`; with `name` (of the file it is read from, "" for a link target) it is content,
        read with the pairs and the host's names replaced for the fixed digest."""
        nonlocal replaced
        if raw is None:
            return
        raw.update(data)
        if fixed is not None:
            if name is not None:
                for host_path, image in pairs if not common or common in data else ():
                    if host_path in data:
                        data = data.replace(host_path, image)
                        replaced = True
                data = host.neutral_bytes(data, name) if host else data
            fixed.update(data)

    def update_name(kind: str, rel: str, tail: bytes = b"") -> None:
        # os.fsencode: a name that is not UTF-8 is its own bytes (a UTF-8 one encodes as it always did)
        if raw is None:
            return
        raw.update(f"{kind} ".encode() + os.fsencode(rel) + tail)
        if fixed is not None:
            fixed.update(f"{kind} ".encode() + os.fsencode(host.neutral(rel) if host else rel) + tail)

    count = 0
    if not root.is_dir():
        return "", "", 0, False
    dirs: list[tuple[str, os.stat_result]] = []
    try:
        for path, rel_dir, entries in _walk(str(root), strict=copy_to is not None):
            update_name("d", rel_dir, b"\n")
            target_dir = "" if copy_to is None else str(copy_to) if rel_dir == "." else os.path.join(copy_to, rel_dir)
            if copy_to is not None:
                st = os.lstat(path)
                os.mkdir(target_dir, 0o700)
                dirs.append((target_dir, st))
            for entry in entries:
                rel = entry.name if rel_dir == "." else f"{rel_dir}/{entry.name}"
                count += 1
                dest = os.path.join(target_dir, entry.name) if copy_to is not None else ""
                if entry.is_symlink():
                    link_target = os.readlink(entry.path)
                    update_name("l", rel, b" ")
                    update(os.fsencode(link_target), "")
                    update(b"\n")
                    if copy_to is not None:
                        st = entry.stat(follow_symlinks=False)
                        os.symlink(link_target, dest)
                        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
                    continue
                st = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):     # a socket or FIFO: named, never opened (it could block), not copied
                    if copy_to is None:
                        update_name("o", rel, b"\n")
                    else:
                        count -= 1
                    continue
                update_name("f", rel, f" {'x' if st.st_mode & 0o111 else '-'} ".encode())
                if raw is None:
                    _file_contents(entry.path, dest, st, None)
                elif fixed is None:
                    _file_contents(entry.path, dest, st, raw.update)     # streamed: any size
                else:
                    chunks: list[bytes] = []        # whole: a path replaced in it must not be cut in two
                    _file_contents(entry.path, dest, st, chunks.append)
                    update(b"".join(chunks), entry.name)
                update(b"\n")
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:       # a path of the copy (or of the tree) is longer than PATH_MAX
            raise TreeTooDeep(f"{root}: a directory nests too deeply to be copied") from None
        raise
    result = "sha256:" + raw.hexdigest() if raw is not None else ""
    if copy_to is not None and expect is not None and result != expect:
        remove_tree(copy_to)
        if os.path.lexists(copy_to):
            raise OSError(errno.ENOTEMPTY, "cannot remove a copy that did not check out", str(copy_to))
        return result, result, count, replaced
    for target_dir, st in reversed(dirs):       # after their entries: a read-only dir is filled first
        os.chmod(target_dir, stat.S_IMODE(st.st_mode))
        os.utime(target_dir, ns=(st.st_atime_ns, st.st_mtime_ns))
    return result, ("sha256:" + fixed.hexdigest() if fixed is not None else result), count, replaced


def _file_contents(src: str, dest: str, st: os.stat_result, sink: Callable[[bytes], object] | None) -> None:
    """Give a regular file's contents to `sink`, chunk by chunk; with `dest`, copy it there too
    (contents, mode, times). Without `sink` the copy is made in the kernel (sendfile), as shutil's is."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600) if dest else -1
        try:
            try:
                if sink is None and out >= 0:
                    while os.sendfile(out, fd, None, _CHUNK * 64):
                        pass
                else:
                    while chunk := os.read(fd, _CHUNK):
                        if sink is not None:
                            sink(chunk)
                        if out >= 0:
                            view = memoryview(chunk)
                            while view:
                                view = view[os.write(out, view):]
            except OSError as exc:          # name the file (a full disk, an I/O error)
                if exc.filename is None:
                    raise OSError(exc.errno, exc.strerror, dest or src) from None
                raise
            if out >= 0:
                os.fchmod(out, stat.S_IMODE(st.st_mode))
                os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            if out >= 0:
                os.close(out)
    finally:
        os.close(fd)


def _pairs(replace: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(h.encode(), i.encode()) for h, i in sorted(replace, key=lambda p: -len(p[0])) if h]


def tree_digest(root: Path, replace: Iterable[tuple[str, str]] = (),
                host: Neutral | None = None) -> tuple[str, int]:
    """A content digest of a directory (names, types, modes' x bit, contents, link targets) and its file count.

    `replace` maps host paths to image paths in contents and link targets first, so the digest is
    that of the layer as built at `/layers` (where a real build writes it), not of this host's path;
    with `host`, names, link targets and contents are read `host.neutral`, so that it does not
    depend on the host's interpreter either.
    """
    _, digest, count, _ = _digest_tree(root, _pairs(replace), host)
    return digest, count


def copy_tree(src: Path, dest: Path, expect: str | None = None, digest: bool = True) -> str:
    """Copy the directory `src` to `dest` (which must not exist): directories, regular files (contents,
    mode, times) and symlinks, not sockets, FIFOs or devices (as the lifecycle's tar writer skips them);
    a directory that cannot be read is an error. Returns the tree_digest of the copy, from the bytes
    read while copying: each file is read once (shutil.copytree and a separate tree_digest took
    1.3-1.5x as long). With `expect`, a copy of another digest is removed again (the digest is still
    returned); without `digest`, none is made ("") and file contents are copied in the kernel."""
    return _digest_tree(src, [], None, copy_to=dest, digest=digest, expect=expect)[0]


class TreeDigests:
    """The digests of a finished build's layers, each tree read once however many ask: the export's
    reuse check wants the raw digest, the report the normalized one (`replace`, `host` as
    tree_digest has them). One pass computes both; they are given again while no entry of the tree
    changed its inode, size, mode, times or link (a new file, a rewrite or a relocation changes those;
    meant for after the build, when no buildpack process runs). `seed` gives digests known from
    elsewhere (a restored layer's, from the cache) for a tree in a known state."""

    def __init__(self, replace: Iterable[tuple[str, str]] = (), host: Neutral | None = None) -> None:
        self._pairs, self._host = _pairs(replace), host
        self._known: dict[str, tuple[tuple[Any, ...], tuple[str, str, int, bool]]] = {}

    def _digests(self, root: Path) -> tuple[str, str, int, bool]:
        state = tree_stamp(root)
        known = self._known.get(str(root))
        if known and known[0] == state:
            return known[1]
        result = _digest_tree(root, self._pairs, self._host)
        if tree_stamp(root) == state:      # not changed while it was read
            self._known[str(root)] = (state, result)
        return result

    def seed(self, root: Path, state: tuple[Any, ...], raw: str, normalized: str, count: int) -> None:
        """What `root` digests to while it is in `state` (tree_stamp), no pair replacing anything in it."""
        self._known[str(root)] = (state, (raw, normalized, count, False))

    def raw(self, root: Path) -> str:
        return self._digests(root)[0]

    def normalized(self, root: Path) -> tuple[str, int]:
        _, digest, count, _ = self._digests(root)
        return digest, count

    def reusable(self, root: Path) -> tuple[str, str, int] | None:
        """(raw, normalized, count) when the normalized digest depends on the contents and the host
        only (no host path of `replace` was in them): what a later build with the same contents and
        host may take as it is."""
        raw, normalized, count, replaced = self._digests(root)
        return None if replaced or not raw else (raw, normalized, count)


def settle_clock(directory: Path, stamped: Iterable[tuple[Any, ...]]) -> bool:
    """Wait (a clock tick at most: a few ms, a second where a file system keeps whole seconds) until
    a change made in `directory`'s file system from now on gets a ctime later than any in the
    `stamped` tree_stamps: the kernel keeps ctimes in coarse ticks, so a write in the tick a stamp
    was taken would otherwise leave the same ctime behind. False if it did not get there (then a
    stamp does not tell a change)."""
    newest = max((_newest_ctime(state) for state in stamped), default=0)
    if not newest:
        return True
    probe = directory / f".cnbsim-clock-{os.getpid()}"
    deadline = time.monotonic() + 1.5
    try:
        probe.touch()
        while os.stat(probe).st_ctime_ns <= newest:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
            os.utime(probe)
        return True
    except OSError:
        return False
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


def _newest_ctime(state: tuple[Any, ...]) -> int:
    """The latest ctime in a tree_stamp."""
    times = [state[0][4]] if state else []
    times += [one[4] for _, one in state[1:] if one is not None]
    return max(times, default=0)


def tree_stamp(root: Path) -> tuple[Any, ...]:
    """Every entry's inode, mode, size, mtime and ctime, without reading it: any write, replacement,
    addition or removal in the tree changes it, once the file system's clock has passed the stamped
    ctimes (settle_clock)."""
    def one(st: os.stat_result) -> tuple[int, ...]:
        return st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns
    try:
        state: list[Any] = [one(os.lstat(root))]
    except OSError:
        return ()
    for _, rel, entries in _walk(str(root)):
        try:
            state.append((rel, one(os.lstat(os.path.join(root, rel)))))
        except OSError:
            state.append((rel, None))
        for entry in entries:
            name = entry.name if rel == "." else f"{rel}/{entry.name}"
            try:
                state.append((name, one(entry.stat(follow_symlinks=False))))
            except OSError:
                state.append((name, None))
    return tuple(state)


def content_key(stamp: tuple[Any, ...]) -> str:
    """A tree_stamp in a few bytes, leaving out the top directory's times: renaming a tree (which sets the
    moved directory's ctime) keeps its key; any change inside it, once the clock has settled, changes it.
    "" for no stamp."""
    if not stamp:
        return ""
    items = [stamp[0][:3], *((rel, one[:3] if rel == "." and one else one) for rel, one in stamp[1:])]
    return hashlib.sha256(repr(items).encode()).hexdigest()


def same_contents(tree: Path, stamp: tuple[Any, ...], original: Path, now: tuple[Any, ...] | None = None) -> bool:
    """Whether `tree`, stamped `stamp` (tree_stamp) when it was a copy of `original`, still has the
    contents that copy had (the same tree_digest), reading only what changed since: the same entries,
    and each entry whose stamp changed of the same kind with the same bytes (a file, with the same x
    bit) or target (a link) as in `original`. `original` must not have changed since. `now`: the
    tree's stamp, if the caller has just taken it."""
    now = tree_stamp(tree) if now is None else now
    if now == stamp:
        return True
    if not now or not stamp:
        return False
    before, after = dict(stamp[1:]), dict(now[1:])
    if before.keys() != after.keys() or len(before) != len(stamp) - 1 or len(after) != len(now) - 1:
        return False
    for rel, old in before.items():
        new = after[rel]
        if old == new:
            continue
        if old is None or new is None or stat.S_IFMT(old[1]) != stat.S_IFMT(new[1]):
            return False
        mode = new[1]
        here, there = os.path.join(tree, rel), os.path.join(original, rel)
        try:
            if stat.S_ISDIR(mode):
                continue          # its entries are compared one by one
            if stat.S_ISLNK(mode):
                if os.readlink(here) != os.readlink(there):
                    return False
                continue
            if not stat.S_ISREG(mode) or bool(mode & 0o111) != bool(old[1] & 0o111):
                return False
            if not stat.S_ISREG(os.lstat(there).st_mode) or not _same_bytes(here, there):
                return False
        except OSError:
            return False
    return True


def _same_bytes(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        if os.fstat(fa.fileno()).st_size != os.fstat(fb.fileno()).st_size:
            return False
        while True:
            x, y = fa.read(_CHUNK), fb.read(_CHUNK)
            if x != y:
                return False
            if not x:
                return True


# Temp dirs of one cnbsim process (a buildpack's plan, a run's workspace copy, a detect's platform
# dir with its env files) are named after that process: cnbsim-KIND-PID-STARTTIME-xxxx. A process
# killed with SIGKILL cannot remove them; the next cnbsim process removes those whose process no
# longer runs, and only those (a name of that shape, owned by the same user, its process gone).
_TEMP_NAME = re.compile(r"^cnbsim-[a-z]+-(\d+)-(\d+)-")
_SWEPT: list[bool] = []


def process_start_time(pid: int) -> str:
    """A process's start time (/proc/PID/stat field 22): with the pid it names one process, not a
    reused pid; '' when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace").rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def cache_home() -> Path:
    """cnbsim's dir under the user's cache dir: `$XDG_CACHE_HOME/cnbsim`, else `~/.cache/cnbsim`. A
    relative XDG_CACHE_HOME is ignored, as the XDG Base Directory Specification says (a relative
    path bound into a build would resolve under /workspace there)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "cnbsim"


def temp_dir(kind: str, parent: Path | None = None) -> tempfile.TemporaryDirectory:
    """A temp dir of this process (as tempfile.TemporaryDirectory; in `parent`, else the system's
    temp dir), after removing the temp dirs that killed cnbsim processes left (once per process)."""
    if not _SWEPT:
        _SWEPT.append(True)
        sweep_temp_dirs()
    return tempfile.TemporaryDirectory(prefix=f"cnbsim-{kind}-{os.getpid()}-{process_start_time(os.getpid())}-",
                                       dir=parent)


def sweep_temp_dirs(top: Path | None = None) -> list[Path]:
    """Remove the temp dirs of cnbsim processes that no longer run; the ones removed."""
    top = Path(top or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(top))
    except OSError:
        return removed
    for entry in entries:
        found = _TEMP_NAME.match(entry.name)
        if not found:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        pid, started = int(found.group(1)), found.group(2)
        if process_start_time(pid) == started:
            continue                  # its process still runs
        remove_tree(Path(entry.path))
        removed.append(Path(entry.path))
    return removed
