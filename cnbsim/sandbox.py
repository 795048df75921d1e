"""The one namespace mechanism of builds and runs (bubblewrap): a container's view without Docker.

A `View` says what one process sees: the image's paths bound to host dirs (`/workspace`,
`/layers`, `/platform`, `/cnb/buildpacks/...`, `/var/input/...`), a root file system shaped
like a Paketo build image (the host's /usr, certificates, the interpreters the platform
passes) or run image (libraries and certificates, only base system executables), a
non-root user (uid/gid 1000, as Paketo's `cnb`) without capabilities, its own PID
namespace (every process it starts dies with it, `setsid` daemons included), and the
network asked for: the host's, none (only `lo`), or its own (pasta, like docker's bridge:
outbound works, the host's loopback services are not reachable).
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from cnbsim.errors import ConfigError
from cnbsim.fs import cache_home, process_start_time
from cnbsim.model.states import SandboxMode

MODES = SandboxMode.values()
DEFAULT_UID = 1000          # Paketo's `cnb` user (CNB_USER_ID / CNB_GROUP_ID change it)
DEFAULT_GID = 1000
HOME = "/home/cnb"
RUN_MAX_PROCESSES = 1024    # a run's process limit (ulimit -u), as a container's pids limit

# Files of /etc that are the host's own secrets or identity: never shown.
PRIVATE_ETC = frozenset({
    "shadow", "shadow-", "gshadow", "gshadow-", "passwd-", "group-", "subuid", "subuid-",
    "subgid", "subgid-", "sudoers", "sudoers.d", "ssh", "machine-id", "security", "krb5.keytab", "docker",
    "containers", "cron.d", "cron.daily", "cron.weekly", "logcheck", "polkit-1", "postgresql", "npmrc",
    "gitconfig", "pip.conf", "wgetrc", "netrc"})
# A Paketo run image's executables: Debian's essential packages (what the base image holds),
# never compilers, interpreters or package managers.
RUN_IMAGE_PACKAGES = ("bash", "bsdutils", "coreutils", "dash", "debianutils", "diffutils", "findutils", "grep",
                      "gzip", "hostname", "libc-bin", "login", "ncurses-bin", "sed", "sysvinit-utils", "tar",
                      "util-linux", "ca-certificates", "openssl", "tzdata", "netbase")
RUN_IMAGE_FALLBACK = ("sh", "bash", "dash", "cat", "ls", "cp", "mv", "rm", "mkdir", "rmdir", "ln", "chmod",
                      "touch", "echo", "printf", "env", "id", "sleep", "true", "false", "test", "[", "head",
                      "tail", "wc", "sort", "uniq", "cut", "tr", "tee", "date", "dirname", "basename", "readlink",
                      "realpath", "mktemp", "uname", "grep", "sed", "tar", "gzip", "find", "xargs", "kill",
                      "stat", "du", "df", "expr", "seq", "which", "hostname", "getent", "openssl")
MASK = "@mask"   # a data file with no content and mode 0000: present, unreadable, as on an image
EXEC_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/sbin")


class Network(str, enum.Enum):
    """A sandboxed process's network, as `docker run --network` / `pack build --network` name them."""

    HOST = "host"        # the host's interfaces (pack build's default)
    NONE = "none"        # only `lo`
    BRIDGE = "bridge"    # its own interface behind pasta: outbound works, host loopback does not (docker run's default)


class Root(str, enum.Enum):
    """Which image the root file system is shaped like."""

    BUILD = "build"      # the host's /usr and /etc (minus private files): compilers and tools a build image has
    RUN = "run"          # libraries, certificates and base executables only: what a Paketo run image holds


@dataclass(frozen=True)
class Bind:
    source: str          # host path
    target: str          # path inside
    writable: bool = False


@dataclass(frozen=True)
class View:
    """What one sandboxed process sees."""

    binds: tuple[Bind, ...]
    cwd: str
    root: Root = Root.BUILD
    network: Network = Network.HOST
    uid: int = DEFAULT_UID
    gid: int = DEFAULT_GID
    max_processes: int = 0                  # 0: no limit
    tmpfs: tuple[str, ...] = ()
    read_only: tuple[str, ...] = ()         # made read-only once everything is mounted (e.g. a tmpfs /layers)
    files: Mapping[str, bytes] = field(default_factory=dict, hash=False)   # image path -> content (read-only)
    ports: tuple[tuple[int, int], ...] = ()  # bridge network: (host port, port inside) published on 127.0.0.1
    as_pid_1: bool = False                  # the process is its PID namespace's init (not bwrap's own init)


@lru_cache(maxsize=1)
def available() -> str:
    """'' when bwrap can make the namespaces here, else the reason it cannot."""
    if os.environ.get("CNBSIM_NO_BWRAP"):   # tests simulate a machine without bubblewrap
        return "bubblewrap is disabled (CNBSIM_NO_BWRAP is set)"
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bwrap (bubblewrap) is not installed"
    try:
        probe = subprocess.run([bwrap, "--unshare-user", "--uid", str(DEFAULT_UID), "--unshare-pid",
                                "--unshare-net", "--ro-bind", "/", "/", "--proc", "/proc", "true"],
                               capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not run here: {exc}"
    if probe.returncode != 0:
        return f"bwrap does not run here: {probe.stderr.decode(errors='replace').strip()}"
    return ""


@lru_cache(maxsize=1)
def pasta_available() -> str:
    """'' when pasta (Debian package passt) is installed, else why a bridge network cannot be made."""
    return "" if shutil.which("pasta") else "pasta (package passt) is not installed"


def use_sandbox(mode: SandboxMode | str) -> bool:
    """Whether to use the namespace for `--sandbox MODE`; `always` without bwrap is an error."""
    if mode not in MODES:
        raise ConfigError(f"unknown sandbox mode '{mode}'", field="--sandbox", hint="use auto, always or never")
    if mode == SandboxMode.NEVER:
        return False
    reason = available()
    if mode == SandboxMode.ALWAYS and reason:
        raise ConfigError(f"--sandbox always, but {reason}",
                          hint="install bubblewrap (apt-get install bubblewrap) or use --sandbox never")
    return not reason


def parse_network(value: str, allowed: Sequence[Network]) -> Network:
    try:
        net = Network(value)
    except ValueError:
        net = None
    if net is None or net not in allowed:
        raise ConfigError(f"unknown network '{value}'", field="--network",
                          hint="use " + " or ".join(n.value for n in allowed))
    return net


def user_ids(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """The build user: CNB_USER_ID / CNB_GROUP_ID (platform.md), else Paketo's cnb user 1000:1000."""
    environ = os.environ if environ is None else environ
    out = []
    for name, default in (("CNB_USER_ID", DEFAULT_UID), ("CNB_GROUP_ID", DEFAULT_GID)):
        text = environ.get(name, "")
        if not text:
            out.append(default)
            continue
        if not text.isdigit() or not 0 < int(text) < 65534:
            raise ConfigError(f"{name}={text!r} is not a user id", field=name,
                              hint="give a number between 1 and 65533 (the build never runs as root)")
        out.append(int(text))
    return out[0], out[1]


def interpreter_paths(executables: Sequence[str]) -> list[str]:
    """The host dirs that make these interpreters work: the prefix of each (`<prefix>/bin/python`)
    and of what it links to, or the file alone when it lives in /usr (which both roots show)."""
    out: list[str] = []
    for exe in executables:
        if not exe or not os.path.isabs(exe) or not os.path.exists(exe):
            continue
        for path in _link_chain(exe):
            parent = Path(path).parent
            prefix = parent.parent if parent.name in ("bin", "sbin") else parent
            if str(prefix) in ("/", "/usr", "/usr/local") or str(prefix).startswith("/usr/"):
                out.append(path)
            else:
                out.append(str(prefix))
                if (prefix / "pyvenv.cfg").is_file():   # a venv: its base interpreter too
                    out += interpreter_paths([os.path.realpath(prefix / "bin" / "python")])
    return list(dict.fromkeys(out))


def _link_chain(path: str) -> list[str]:
    """`path`, each symlink hop it goes through and where it ends: a venv made from another venv
    links to that venv's python, which links on (each hop must exist in the sandbox)."""
    hops = [path]
    while os.path.islink(hops[-1]) and len(hops) < 40:
        hops.append(os.path.join(os.path.dirname(hops[-1]), os.readlink(hops[-1])))
    hops.append(os.path.realpath(path))
    return list(dict.fromkeys(os.path.normpath(h) for h in hops))


def launcher_paths() -> list[str]:
    """What `python -m cnbsim.cli lifecycle launcher` needs inside a run: this interpreter, its
    venv and base installation, and cnbsim itself (the stand-in of /cnb/lifecycle/launcher)."""
    package_root = str(Path(__file__).resolve().parent.parent)
    paths = interpreter_paths([sys.executable, os.path.realpath(getattr(sys, "_base_executable", sys.executable))])
    paths += [os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), package_root]
    return [p for p in dict.fromkeys(paths) if not _under(p, "/usr")]


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _passwd(uid: int, gid: int) -> dict[str, bytes]:
    """The image's users: root and cnb, as Paketo images have them; never the host's accounts."""
    passwd = (f"root:x:0:0:root:/root:/usr/sbin/nologin\ncnb:x:{uid}:{gid}:cnb:{HOME}:/bin/bash\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    group = f"root:x:0:\ncnb:x:{gid}:\nnogroup:x:65534:\n"
    return {"/etc/passwd": passwd.encode(), "/etc/group": group.encode()}


@lru_cache(maxsize=16)
def _root_args(root: Root, executables: frozenset[tuple[str, str]] = frozenset()) -> tuple[str, ...]:
    """The bwrap arguments of a root file system (computed once per process and set of extra
    executables: (exec dir, name) pairs a run image's exec dirs also show)."""
    args: list[str] = []
    for entry in sorted(os.listdir("/")):
        path = "/" + entry
        if os.path.islink(path) and entry in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            args += ["--symlink", os.readlink(path), path]
    if root is Root.BUILD:
        args += ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.isdir(top) and not os.path.islink(top):
                args += ["--ro-bind", top, top]
    else:
        args += _run_usr_args(executables)
    # /etc whole (one mount: every bind costs bwrap a mount table scan), its private files masked
    args += ["--ro-bind", "/etc", "/etc"]
    for entry in sorted(PRIVATE_ETC):
        path = "/etc/" + entry
        if os.path.islink(path) or not os.path.exists(path):
            continue
        if os.path.isdir(path):
            args += ["--tmpfs", path]
        else:
            args += ["--perms", "0000", "--ro-bind-data", MASK, path]
    if os.path.isdir("/etc/ssl/private"):
        args += ["--tmpfs", "/etc/ssl/private"]
    return tuple(args)


def _run_usr_args(executables: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    """/usr of a run image: the host's libraries and shared data, no host executable beyond the
    base system's and `executables` (so a runtime the image does not provide is "command not found")."""
    args: list[str] = ["--dir", "/usr"]
    for entry in sorted(os.listdir("/usr")):
        path = "/usr/" + entry
        if entry in ("bin", "sbin", "local", "games", "src", "include") or not os.path.isdir(path):
            continue
        args += ["--ro-bind", path, path]
    keep = {d: set(names) for d, names in _run_image_executables().items()}
    for exec_dir, name in executables:
        keep.setdefault(exec_dir, set()).add(name)
    for exec_dir in EXEC_DIRS:
        if not os.path.isdir(exec_dir) or os.path.islink(exec_dir) or exec_dir.startswith("/usr/local"):
            continue
        staged = _staged_exec_dir(exec_dir, keep.get(exec_dir, set()))
        if staged:
            args += ["--ro-bind", staged, exec_dir]
        else:
            args += ["--dir", exec_dir]
    return args


def _staged_exec_dir(exec_dir: str, names: set[str]) -> str:
    """A dir holding only the run image's executables of `exec_dir` (hard links, else copies),
    made once per host state under the user's cache dir: one mount instead of one per file."""
    entries = []
    for name in sorted(names):
        path = f"{exec_dir}/{name}"
        try:
            st = os.lstat(path)
        except OSError:
            continue
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
        if link or stat.S_ISREG(st.st_mode):
            entries.append((name, link, st.st_size, st.st_mtime_ns, st.st_mode))
    key = hashlib.sha256(repr((exec_dir, entries)).encode()).hexdigest()[:16]
    base = cache_home() / "run-root"
    final = base / f"{exec_dir.strip('/').replace('/', '-')}-{key}"
    if final.is_dir():
        return str(final)
    try:
        base.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
        for name, link, _, _, _ in entries:
            if link:
                os.symlink(link, work / name)
                continue
            try:
                os.link(f"{exec_dir}/{name}", work / name)
            except OSError:
                shutil.copy2(f"{exec_dir}/{name}", work / name)
        work.chmod(0o755)
        try:
            work.rename(final)
        except OSError:             # another process made it first
            shutil.rmtree(work, ignore_errors=True)
    except OSError:
        return ""
    return str(final) if final.is_dir() else ""


def _run_image_executables() -> dict[str, set[str]]:
    """Per exec dir, the names a run image has: the files of the base packages (dpkg's lists),
    else a fixed list of base commands."""
    found: dict[str, set[str]] = {}
    info = Path("/var/lib/dpkg/info")
    for pkg in RUN_IMAGE_PACKAGES:
        for list_file in (info / f"{pkg}.list", info / f"{pkg}:amd64.list", info / f"{pkg}:arm64.list"):
            try:
                lines = list_file.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                parent, _, name = line.rpartition("/")
                for exec_dir in EXEC_DIRS:
                    # usr-merged hosts list /bin/x where the file is /usr/bin/x
                    if parent == exec_dir or "/usr" + parent == exec_dir:
                        found.setdefault(exec_dir, set()).add(name)
    if not found:
        for exec_dir in EXEC_DIRS:
            found[exec_dir] = set(RUN_IMAGE_FALLBACK)
    return found


def command(view: View, argv: Sequence[str]) -> tuple[list[str], list[bytes]]:
    """The bwrap command line for `argv` in `view`, and the contents of the data files it reads
    from fds (pass them with `spawn`). Sources that do not exist are left out."""
    uid, gid = view.uid, view.gid
    args = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--unshare-user", "--uid", str(uid),
            "--gid", str(gid), "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "cnbsim", "--cap-drop", "ALL", "--disable-userns"]
    if view.network is not Network.HOST:
        args.append("--unshare-net")
    if view.as_pid_1:
        args.append("--as-pid-1")
    data: list[bytes] = []
    # a host executable a launch layer links to (e.g. /usr/bin/python3) cannot be mounted into a run
    # image's exec dir (a read-only staged copy): that dir shows it instead
    shown: set[tuple[str, str]] = set()
    binds = []
    for bind in view.binds:
        parent = os.path.realpath(os.path.dirname(bind.target))
        if view.root is Root.RUN and bind.source == bind.target and parent in EXEC_DIRS:
            shown.add((parent, os.path.basename(bind.target)))
        else:
            binds.append(bind)
    for arg in _root_args(view.root, frozenset(shown)):
        if arg == MASK:
            data.append(b"")
            arg = f"@{len(data) - 1}"
        args.append(arg)
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/var", "--tmpfs", "/run",
             "--dir", "/var/tmp", "--tmpfs", HOME]
    for path in view.tmpfs:
        args += ["--tmpfs", path]
    seen: set[str] = set()
    for bind in binds:
        if bind.target in seen or not os.path.lexists(bind.source):
            continue
        seen.add(bind.target)
        args += ["--bind" if bind.writable else "--ro-bind", bind.source, bind.target]
    files = {**_passwd(uid, gid), **view.files}
    for target in sorted(files):
        data.append(files[target])
        args += ["--perms", "0444", "--ro-bind-data", f"@{len(data) - 1}", target]
    for path in view.read_only:
        args += ["--remount-ro", path]
    args += ["--chdir", view.cwd, "--"]
    return args + list(argv), data


def spawn(view: View, argv: Sequence[str], *, env: Mapping[str, str], stdin: Any = None,
          stdout: Any = None, stderr: Any = None, pass_fds: Sequence[int] = ()) -> subprocess.Popen:
    """Start `argv` in `view`, in its own session; with a bridge network, once the network is up.
    `pass_fds` stay open in it (bwrap passes its own open fds on). Call `release(proc)` after it ended."""
    # bwrap may end while the network is being attached (seen rarely on a loaded machine, with
    # nothing of the command run yet): once more, then say so
    code = 0
    for _ in range(2):
        try:
            return _spawn(view, argv, env=env, stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=pass_fds)
        except _EndedEarly as ended:
            code = ended.code
    raise ConfigError(f"the sandbox (bwrap) ended with exit status {code} before the process started",
                      field="--network", hint="its message, if any, is above; try --network host or --network none")


class _EndedEarly(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _spawn(view: View, argv: Sequence[str], *, env: Mapping[str, str], stdin: Any,
           stdout: Any, stderr: Any, pass_fds: Sequence[int] = ()) -> subprocess.Popen:
    args, data = command(view, argv)
    fds: list[int] = []
    block_w = info_r = -1
    try:
        for i, content in enumerate(data):   # each data file from a pipe: nothing written to disk
            r, w = os.pipe()
            fds.append(r)
            with os.fdopen(w, "wb") as fh:   # small files (< the pipe buffer): written before bwrap runs
                fh.write(content)
            args[args.index(f"@{i}")] = str(r)
        # bwrap reports the host pid of the sandbox's first process (its PID namespace's init) on
        # --info-fd: pasta joins that one's network, release() waits until that namespace is gone
        info_r, info_w = os.pipe()
        fds.append(info_w)
        args[1:1] = ["--info-fd", str(info_w)]
        if view.network is Network.BRIDGE:
            block_r, block_w = os.pipe()
            fds.append(block_r)
            args[1:1] = ["--block-fd", str(block_r)]
        cgroup = _pids_cgroup(view.max_processes) if view.max_processes else None
        proc = subprocess.Popen(args, env=dict(env), stdin=stdin, stdout=stdout, stderr=stderr,
                                pass_fds=(*fds, *pass_fds), start_new_session=True,
                                preexec_fn=_limit_processes(view.max_processes, cgroup) if view.max_processes else None)
        proc.cnbsim_cgroup = cgroup  # type: ignore[attr-defined]
        proc.cnbsim_info = info_r if view.network is not Network.BRIDGE else -1  # type: ignore[attr-defined]
    except BaseException:
        for fd in (block_w, info_r):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        for fd in fds:
            os.close(fd)
    if view.network is Network.BRIDGE:
        problem, ended = "interrupted", False
        try:
            problem, child = _attach_pasta(info_r, view.ports)
            proc.cnbsim_child = proc.cnbsim_init = child  # type: ignore[attr-defined]
        finally:
            os.close(info_r)
            if problem:
                os.killpg(proc.pid, signal.SIGKILL)     # never start it with a network it was not given
            else:
                try:
                    os.write(block_w, b"1")
                except BrokenPipeError:
                    ended = True
            os.close(block_w)
        if ended:
            code = proc.wait()
            release(proc)
            raise _EndedEarly(code)
        if problem:
            proc.wait()
            release(proc)
            raise ConfigError(f"cannot give the run its own network: {problem}", field="--network",
                              hint="use --network host or --network none")
    return proc


def listening(port: int, pid: int = 0) -> bool:
    """Whether a TCP socket listens on `port` in the network namespace of process `pid` (0: cnbsim's
    own), as /proc/PID/net/tcp and tcp6 list them (state 0A)."""
    base = f"/proc/{pid}/net" if pid else "/proc/self/net"
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(base, name).read_text(encoding="ascii", errors="replace").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                return True
    return False


def release(proc: subprocess.Popen) -> None:
    """Remove what `spawn` made for an ended process (its network's pasta, its pids cgroup), once
    every process of its PID namespace is gone."""
    init = getattr(proc, "cnbsim_init", 0)
    info = getattr(proc, "cnbsim_info", -1)
    if info >= 0:
        proc.cnbsim_info = -1  # type: ignore[attr-defined]
        try:
            init = _child_pid(info)
        finally:
            os.close(info)
    _await_namespace_end(init)
    _end_pasta(getattr(proc, "cnbsim_child", 0))
    cgroup = getattr(proc, "cnbsim_cgroup", None)
    if cgroup:
        try:
            os.rmdir(cgroup)
        except OSError:
            pass


def _child_pid(info_fd: int) -> int:
    """The "child-pid" bwrap wrote on --info-fd (0 if it ended before writing it)."""
    data = b""
    while True:
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError, TypeError):
            pass
        chunk = os.read(info_fd, 4096)
        if not chunk:
            return 0
        data += chunk


def _await_namespace_end(init: int) -> None:
    """Wait (briefly) until the init of a sandbox's PID namespace, whose bwrap has ended, has ended too.

    Killing bwrap ends its init by a death signal, and the kernel kills every other process of the
    namespace before that init's exit completes (a setsid daemon included), but not before bwrap's
    exit is reported: without this wait a daemon of the phase could still be seen after it."""
    if not init:
        return
    try:
        own = os.readlink("/proc/self/ns/pid")
    except OSError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{init}/stat").read_text(encoding="ascii", errors="replace").rpartition(")")[2].split()[0]
            if state in ("Z", "X") or os.readlink(f"/proc/{init}/ns/pid") == own:
                return      # exited, or the pid is now some other process of our own namespace
        except (OSError, IndexError):
            return          # gone (reaped)
        time.sleep(0.002)


def _pids_cgroup(limit: int) -> str | None:
    """A pids cgroup holding the sandbox, where cnbsim may make one (root on cgroup v1 or v2):
    RLIMIT_NPROC alone does not bind processes of the host's root user."""
    if os.geteuid() != 0:
        return None
    for line in Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines():
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            base = Path("/sys/fs/cgroup/pids") / path.lstrip("/")
        elif controllers == "":
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            try:
                if "pids" not in (base / "cgroup.subtree_control").read_text().split():
                    continue
            except OSError:
                continue
        else:
            continue
        group = base / f"cnbsim-{os.getpid()}-{next(_COUNTER)}"
        try:
            group.mkdir()
            (group / "pids.max").write_text(str(limit))
        except OSError:
            try:
                group.rmdir()
            except OSError:
                pass
            continue
        return str(group)
    return None


_COUNTER = itertools.count()


def _limit_processes(limit: int, cgroup: str | None):
    """In the child before exec: RLIMIT_NPROC, and the pids cgroup when there is one."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
        if cgroup:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
    return apply


def _attach_pasta(info_fd: int, ports: Sequence[tuple[int, int]] = ()) -> tuple[str, int]:
    """Give the blocked sandbox its own network: pasta joins its user and network namespaces,
    configures an interface like the host's and NATs outbound traffic; the host's loopback is
    not mapped in (`--no-map-gw`); only the published `ports` are forwarded, from 127.0.0.1 on
    the host (as `docker run -p 127.0.0.1:HOST:PORT`). pasta exits with the namespace.
    Returns ('' or why the sandbox has no network, the pid of the sandbox's first process)."""
    data = b""
    pid = 0
    while not pid:
        chunk = os.read(info_fd, 4096)
        if not chunk:
            return "bwrap did not report the sandbox's process", 0
        data += chunk
        try:
            pid = int(json.loads(data)["child-pid"])
        except (ValueError, KeyError):
            continue
    published = ",".join(f"{host}:{inside}" for host, inside in ports)
    argv = ["pasta", "--config-net", "--no-map-gw", "--quiet",
            "--tcp-ports", f"127.0.0.1/{published}" if published else "none", "--udp-ports", "none",
            "--tcp-ns", "none", "--udp-ns", "none"]
    if os.geteuid() == 0:
        # root may enter any network namespace: only that one, not the sandbox's user namespaces
        # (with --disable-userns bwrap nests a second one, from which the first's netns is out of reach)
        argv += ["--runas", "0", "--netns", f"/proc/{pid}/ns/net", "--netns-only"]
    else:
        argv += ["--userns", f"/proc/{pid}/ns/user", "--netns", f"/proc/{pid}/ns/net"]
    error = ""
    # pasta does not notice that a namespace it joined through /proc/PID/ns/net is gone (only one bound
    # to a file): its pid file lets release() end it, else each run would leave a pasta behind
    with tempfile.TemporaryDirectory(prefix="cnbsim-pasta-") as tmp:
        pid_file = os.path.join(tmp, "pid")
        for attempt in range(5):
            # pasta cannot enter the namespace before bwrap has written its uid map: try again shortly
            done = subprocess.run([*argv, "--pid", pid_file], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=30, check=False)
            if done.returncode == 0:
                try:
                    pasta = int(Path(pid_file).read_text(encoding="ascii").strip())
                    _PASTA[pid] = (pasta, process_start_time(pasta))
                except (OSError, ValueError):
                    pass
                return "", pid
            error = " ".join(line for line in done.stderr.decode(errors="replace").splitlines()
                             if "syslog" not in line)
            time.sleep(0.01 * (attempt + 1))
    return f"pasta failed: {error}", pid


_PASTA: dict[int, tuple[int, str]] = {}   # sandbox's first process -> (its pasta's pid, that one's start time)


def _end_pasta(child: int) -> None:
    """End the pasta serving the sandbox whose first process was `child` (if that pasta still runs)."""
    pasta, started = _PASTA.pop(child, (0, ""))
    if not pasta:
        return
    try:
        if process_start_time(pasta) != started:
            return
        os.kill(pasta, signal.SIGTERM)
        # it is not our child: wait (briefly) until it is gone or a zombie, its published ports closed
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            state = Path(f"/proc/{pasta}/stat").read_text(encoding="ascii", errors="replace").rpartition(")")[2].split()[0]
            if state in ("Z", "X") or process_start_time(pasta) != started:
                return
            time.sleep(0.005)
    except (OSError, IndexError):
        pass
