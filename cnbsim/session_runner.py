"""The process inside a build's namespace that starts each bin/detect and bin/build (cnbsim.session).

Run by bubblewrap as `python -I -S session_runner.py FD`, never imported by cnbsim: the standard
library only, and only the cheap parts of it (it starts in every build). FD is one end of a
SOCK_SEQPACKET socket pair; cnbsim holds the other.

cnbsim sends `marshal` tuples, one per message:
    ("run", ID, ARGV, ENV, CWD)   with the run's output pipe (its write end) as SCM_RIGHTS
    ("kill", ID)                  end that run now (its timeout, an interrupt)
and reads ASCII messages back, per run: `ID s 0` once it started or `ID e ERRNO` when it could not
be executed, then `ID x STATUS` (the wait status of the buildpack's process, once every process it
started has ended) or `ID a STATUS` (its shim ended without reporting: it was killed). The first
final message about a run counts.

Each run gets a shim: a fork of this process, a child subreaper, that spawns the executable in a
session of its own (stdin /dev/null, stdout and stderr the pipe) and, once it has ended, kills and
reaps whatever it left (a `setsid` daemon is reparented to the shim), then reports. This process is
the namespace's init (bwrap --as-pid-1): what a killed shim left is reparented here and killed at
once, and the kernel does not let the namespace's processes kill or stop it. Neither it nor the
shims are dumpable, so the buildpacks (same uid, no capabilities) cannot ptrace them or open their fds.
"""

import _signal
import _socket
import ctypes
import marshal
import os
import select
import sys

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
SIGTERM = _signal.SIGTERM
SIGKILL = _signal.SIGKILL
SIGCHLD = _signal.SIGCHLD


def children() -> list:
    """This process's children (Linux /proc/PID/task/TID/children)."""
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def kill_all(keep=()) -> None:
    """Kill and reap every child but those in `keep`, and what they leave, until none is left."""
    while True:
        left = [p for p in children() if p not in keep]
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
        for pid in left:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def shim(sock, prctl, run_id: str, argv: list, env: dict, cwd: str, out: int) -> None:
    """In the forked shim: run the executable, clean up after it, report; never returns."""
    code = 1
    try:
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        state = {"child": 0, "killed": False}

        def end_child() -> None:
            try:
                os.killpg(state["child"], SIGKILL)
            except ProcessLookupError:
                pass

        def on_term(_signum, _frame):
            state["killed"] = True
            if state["child"]:
                end_child()
        _signal.signal(SIGTERM, on_term)
        _signal.signal(SIGCHLD, _signal.SIG_DFL)
        try:
            os.chdir(cwd)
            child = state["child"] = os.posix_spawn(argv[0], argv, env, setsid=True, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, out, 2), (os.POSIX_SPAWN_CLOSE, out)])
        except Exception as exc:   # OSError from exec; cnbsim checks argv and env before (ValueError)
            os.close(out)
            sock.send(f"{run_id} e {getattr(exc, 'errno', None) or 22}".encode())
            os._exit(127)
        os.close(out)
        sock.send(f"{run_id} s 0".encode())
        if state["killed"]:
            end_child()
        try:
            _, status = os.waitpid(child, 0)      # retried after a signal's handler (PEP 475)
        except ChildProcessError:
            status = 0
        state["child"] = 0
        kill_all()
        sock.send(f"{run_id} x {status}".encode())
        code = 0
    finally:
        os._exit(code)


def main() -> None:
    sock = _socket.socket(fileno=int(sys.argv[1]))
    os.set_inheritable(sock.fileno(), False)
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    _signal.set_wakeup_fd(wake_w)
    _signal.signal(SIGCHLD, lambda *_: None)
    shims: dict = {}        # shim pid -> run id
    while True:
        ready, _, _ = select.select([sock.fileno(), wake_r], [], [])
        if sock.fileno() in ready:
            data, ancillary, _, _ = sock.recvmsg(1 << 20, _socket.CMSG_SPACE(4), _socket.MSG_CMSG_CLOEXEC)
            if not data:
                break       # cnbsim closed its end: the build is over
            fds = [int.from_bytes(d[:4], sys.byteorder) for lvl, kind, d in ancillary
                   if lvl == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(d) >= 4]
            request = marshal.loads(data)
            if request[0] == "run" and fds:
                _, run_id, argv, env, cwd = request
                pid = os.fork()
                if pid == 0:
                    _signal.set_wakeup_fd(-1)
                    os.close(wake_r)
                    os.close(wake_w)
                    shim(sock, prctl, run_id, argv, env, cwd, fds[0])
                shims[pid] = run_id
                os.close(fds[0])
            elif request[0] == "kill":
                for pid, run_id in list(shims.items()):
                    if run_id == request[1]:
                        try:
                            os.kill(pid, _signal.SIGCONT)   # a shim the run stopped: it must handle this
                            os.kill(pid, SIGTERM)
                        except ProcessLookupError:
                            pass
        if wake_r in ready:
            os.read(wake_r, 4096)
            ended = []
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid in shims:
                    ended.append((shims.pop(pid), status))
            kill_all(keep=shims)     # what a killed shim left: ended before its run is reported
            for run_id, status in ended:
                sock.send(f"{run_id} a {status}".encode())


if __name__ == "__main__":
    main()
