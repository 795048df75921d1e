"""One namespace for a whole build: its bin/detect and bin/build runs share one bubblewrap.

A bubblewrap costs about 5 ms here (its own start, a mount namespace, some 45 mounts), three times
what the processes it runs cost; a build runs 17 of them. A `Session` starts one, early, with the
view every run of the build has (the app at /workspace, /layers, /platform, the order's buildpacks
under /cnb/buildpacks as a builder image has them, one scratch dir under /tmp), and inside it a
small runner (cnbsim/session_runner.py) that starts each run when asked: the user, capabilities,
network and paths are the namespace's, as before; what each run starts still ends with it (the
runner's shim, a child subreaper, kills what it left, `setsid` daemons included). As in a pack
build's container, the runs of one build share /tmp, /home/cnb and the process list.

A run whose view the session does not hold (cnbsim's pip stub, which alone sees the dependency
cache) gets a bubblewrap of its own, as does any run once the session has ended.
"""

from __future__ import annotations

import array
import errno
import itertools
import marshal
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from cnbsim import sandbox

RUNNER = str(Path(__file__).resolve().parent / "session_runner.py")
START_TIMEOUT = 30.0     # seconds for the runner to start a run (it takes milliseconds)
KILL_GRACE = 5.0         # seconds for a killed run's shim to report


class SessionEnded(Exception):
    """The session's namespace is gone (or could not start): run the process on its own."""


class Session:
    """A started namespace that runs processes with `view`'s binds; close it when the build ends."""

    def __init__(self, view: sandbox.View, notice: Callable[[str], None] | None = None) -> None:
        self.view = view
        self._notice = notice       # told when the session gives up on its namespace
        self._binds = frozenset(b for b in view.binds if os.path.lexists(b.source))   # what it mounts
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._started: dict[str, tuple[str, int]] = {}     # run id -> ("s" | "e", errno)
        self._ended: dict[str, tuple[str, int]] = {}       # run id -> ("x" | "a", wait status)
        self._gone = False
        self._send_lock = threading.Lock()
        self._errors: IO[bytes] = tempfile.TemporaryFile()
        self._closer: threading.Thread | None = None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        binds = view.binds + tuple(sandbox.Bind(p, p) for p in sandbox.launcher_paths())
        # the runner is the namespace's init: the kernel keeps the namespace's own processes from
        # killing or stopping it, and, not dumpable, it cannot be traced (bwrap's init could be, and
        # made to fork a process no subreaper holds)
        runner_view = sandbox.View(binds=binds, cwd=view.cwd, root=view.root, network=view.network,
                                   uid=view.uid, gid=view.gid, as_pid_1=True)
        try:
            self._proc = sandbox.spawn(runner_view, [sys.executable, "-I", "-S", RUNNER, str(theirs.fileno())],
                                       env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=self._errors, pass_fds=(theirs.fileno(),))
        except BaseException:
            ours.close()
            self._errors.close()
            raise
        finally:
            theirs.close()
        self._reader = threading.Thread(target=self._read, name="cnbsim-session", daemon=True)
        self._reader.start()

    def covers(self, view: sandbox.View) -> bool:
        """Whether a run with `view` sees exactly what it would see in this session."""
        return (not self._gone and view.root is self.view.root and view.network is self.view.network
                and view.uid == self.view.uid and view.gid == self.view.gid and not view.max_processes
                and not view.tmpfs and not view.read_only and not view.files and not view.ports
                and all(bind in self._binds for bind in view.binds if os.path.lexists(bind.source)))

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> SessionProcess:
        """Start `argv` (paths inside the namespace) once it has started; its output (stdout and
        stderr) is the returned process's `stdout`. OSError when it cannot be executed; SessionEnded
        when the session cannot run it."""
        run_id = str(next(self._ids))
        message = marshal.dumps(("run", run_id, list(argv), dict(env), cwd))
        read_end, write_end = os.pipe()
        try:
            with self._send_lock:
                if self._gone:
                    raise SessionEnded()
                self._sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [write_end]))])
        except OSError as exc:   # EMSGSIZE (an env beyond the socket's buffer), EPIPE (the runner is gone)
            os.close(read_end)
            raise SessionEnded() from exc
        finally:
            os.close(write_end)
        with self._lock:
            self._lock.wait_for(lambda: run_id in self._started or run_id in self._ended or self._gone,
                                START_TIMEOUT)
            kind, value = self._started.pop(run_id, ("", 0))
            if not kind and run_id in self._ended:
                kind, value = "e", errno.EINVAL     # its shim ended without starting it
        if not kind and not self._gone:
            # the runner does not answer (a machine under extreme load; the buildpacks cannot stop it, their
            # namespace's init): end the namespace, whatever runs in it, and let this run and the later ones
            # have namespaces of their own
            self.abort(f"the build's namespace did not start a run within {START_TIMEOUT:g}s and was ended "
                       "(was its runner stopped?); the later runs each have a namespace of their own")
        if kind == "e":
            os.close(read_end)
            raise OSError(value, os.strerror(value))
        if kind != "s":
            os.close(read_end)
            raise SessionEnded()
        return SessionProcess(self, run_id, os.fdopen(read_end, "rb", buffering=0))

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                break
            try:
                run_id, kind, value = data.decode("ascii").split()
                number = int(value)
            except ValueError:
                continue
            with self._lock:
                if kind in ("s", "e"):
                    self._started[run_id] = (kind, number)
                    if kind == "e":
                        self._ended.setdefault(run_id, ("e", number))
                elif kind in ("x", "a"):
                    self._ended.setdefault(run_id, (kind, number))
                self._lock.notify_all()
        with self._lock:
            self._gone = True
            self._lock.notify_all()

    @property
    def gone(self) -> bool:
        return self._gone

    def result(self, run_id: str, timeout: float | None) -> tuple[int, bool] | None:
        """(the exit code of a run, as Popen.returncode: -N for a signal; whether it was lost: the
        namespace ended under it, killing everything in it, -9), None while it runs."""
        with self._lock:
            self._lock.wait_for(lambda: run_id in self._ended or self._gone, timeout)
            if run_id not in self._ended:
                return (-9, True) if self._gone else None
            kind, status = self._ended[run_id]
        if kind == "e":
            return -1, False
        return os.waitstatus_to_exitcode(status), False

    def abort(self, why: str = "") -> None:
        """Kill the namespace and everything in it now (its runs are lost); `why` is told to the
        session's `notice`."""
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if why and self._notice is not None:
            self._notice(why)

    def kill(self, run_id: str) -> None:
        with self._send_lock:
            if self._gone:
                return
            try:
                self._sock.send(marshal.dumps(("kill", run_id)))
            except OSError:
                pass

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._ended.pop(run_id, None)

    def close(self) -> None:
        """End the namespace and wait until it is gone: the runner sees its socket close and exits, and
        every process in it ends."""
        self.end()
        self.join()

    def end(self) -> None:
        """Start ending the namespace; `join()` waits until it is gone (its bubblewrap takes some ms to
        end, which the caller may spend on other work)."""
        if self._closer is not None:
            return
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._closer = threading.Thread(target=self._wait_gone, name="cnbsim-session-end", daemon=True)
        self._closer.start()

    def join(self) -> None:
        if self._closer is not None:
            self._closer.join()

    def _wait_gone(self) -> None:
        try:
            self._proc.wait(timeout=2)     # it takes ms; a runner that does not end is killed
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        sandbox.release(self._proc)
        self._reader.join()
        self._sock.close()
        self._errors.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()      # joined by whoever holds the session (cnbsim.api: before the build returns)


class SessionProcess:
    """A run in a session, with what cnbsim.proc uses of a Popen."""

    def __init__(self, session: Session, run_id: str, stdout: IO[bytes]) -> None:
        self.session = session
        self.run_id = run_id
        self.stdout = stdout
        self.returncode: int | None = None
        self.lost = False        # the namespace ended under it (its returncode is then -9)
        self._killed = False

    def poll(self) -> int | None:
        if self.returncode is None:
            self._take(self.session.result(self.run_id, 0))
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if timeout is None and self._killed:
                # killed: its shim reports once it and what it started are gone; a shim that does not (the
                # run stopped it) must not hang the build: the namespace ends instead
                if not self._take(self.session.result(self.run_id, KILL_GRACE)):
                    self.session.abort(f"a killed run did not end within {KILL_GRACE:g}s: the build's namespace "
                                       "was ended with it; the later runs each have one of their own")
            if not self._take(self.session.result(self.run_id, timeout)):
                raise subprocess.TimeoutExpired(self.run_id, timeout or 0)
            self.session.forget(self.run_id)
        assert self.returncode is not None
        return self.returncode

    def _take(self, result: tuple[int, bool] | None) -> bool:
        """Record a result of Session.result; whether there is one (now or from before)."""
        if self.returncode is None and result is not None:
            self.returncode, self.lost = result
        return self.returncode is not None

    def kill(self) -> None:
        """End it and everything it started (its result follows once they are gone)."""
        if self.returncode is None:
            self._killed = True
            self.session.kill(self.run_id)
