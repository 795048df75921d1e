"""Running a buildpack executable: explicit argv, env and cwd, a timeout, the output captured.

With a sandbox view the executable runs in the build's session (cnbsim.session) when that holds
the view, else in namespaces of its own (cnbsim.sandbox): when it ends, times out or is
interrupted, every process it started is gone, `setsid` daemons included (the session's shim
kills them; a PID namespace of its own dies with it). Without one, its process group is killed on every exit path, but
a process that left the group (`setsid`) can survive.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnbsim import sandbox
from cnbsim.session import Session, SessionEnded, SessionProcess


@dataclass(frozen=True)
class Completed:
    code: int            # the exit code; -1 when it could not run or timed out (as lc reports spawn errors)
    output: str          # stdout and stderr, interleaved as written
    error: str = ""      # why it could not run, or that it timed out


def check_executable(path: Path) -> str:
    """'' when `path` can be executed, else a message that says what to do."""
    if not path.exists():
        return f"{path} does not exist (a buildpack needs an executable bin/{path.name})"
    if not path.is_file():
        return f"{path} is not a file"
    if not os.access(path, os.X_OK):
        return f"{path} is not executable (run: chmod +x {path})"
    return ""


_SIGNALS = {int(sig): sig.name for sig in signal.Signals}


def _env_problem(env: Mapping[str, str], name: str) -> str:
    """'' when `env` can be a process's environment, else why not: no process can be given a NUL
    byte, and a name holds no '=' (the lifecycle's exec fails on them too)."""
    for key, value in env.items():
        if not key or "=" in key or "\0" in key:
            return (f"cannot start {name} with the environment variable {key!r}: a name must be non-empty, without "
                    "'=' or NUL (check the env file names in the layers' env dirs, --env and --env-file)")
        if "\0" in value:
            return (f"cannot start {name}: the environment variable {key} holds a NUL byte, which no process can be "
                    "given (check the layers' env files, --env and --env-file)")
    return ""


class Tracker:
    """The processes of runs made side by side from several threads: `cancel()` (from the thread
    that was interrupted) kills every one running and any started after it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen | SessionProcess] = set()
        self._cancelled = False

    def add(self, proc: subprocess.Popen | SessionProcess) -> None:
        with self._lock:
            self._live.add(proc)
            if self._cancelled:
                _kill(proc)

    def discard(self, proc: subprocess.Popen | SessionProcess) -> None:
        with self._lock:
            self._live.discard(proc)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            for proc in self._live:
                _kill(proc)


def run(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float,
        on_line: Callable[[str], None] | None = None, view: sandbox.View | None = None,
        executable: Path | None = None, shown: str | None = None, tracker: Tracker | None = None,
        session: Session | None = None) -> Completed:
    """Run argv[0] with stdout+stderr merged; kill its whole process tree when it ends, on
    timeout and on any exception (KeyboardInterrupt included).

    With `view`, argv holds the paths inside the sandbox; `executable` is argv[0]'s host path
    (checked before the run) and `shown` the name messages use for it; with `session` too, it runs
    in that namespace when the session holds `view` (else in one of its own). With `tracker`, the
    process is known to it while it runs."""
    host_exe = executable or Path(argv[0])
    name = shown or argv[0]
    problem = check_executable(host_exe) or _env_problem(env, name)
    if problem:
        return Completed(-1, "", problem)
    proc: subprocess.Popen | SessionProcess | None = None
    try:
        if view is not None and session is not None and session.covers(view):
            with contextlib.suppress(SessionEnded):     # then in a namespace of its own
                proc = session.spawn(argv, env, view.cwd)
        if proc is None and view is not None:
            proc = sandbox.spawn(view, argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
        if proc is None:
            proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:  # e.g. a bad #! line
        return Completed(-1, "", f"cannot execute {name}: {exc.strerror} (check its #! line)")
    if tracker is not None:
        tracker.add(proc)
    lines = _Lines(on_line)
    timed_out = False
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    try:
        # Read the merged output until EOF or the deadline, in this thread: no timer thread per run.
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if not sel.select(min(left, 0.5)):
                    if proc.poll() is not None:
                        break   # it exited, but a child it left behind holds the output open
                    continue
                data = os.read(fd, 1 << 20)
                if not data:
                    break
                lines.feed(data)
        lines.close()
        if not timed_out:
            # its output ended; the phase ends when the process does (as the lifecycle's cmd.Wait):
            # one that closed its stdout and works on is not cut short
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        _kill(proc)        # whatever is left of the tree: the phase is over
        proc.wait()
        proc.stdout.close()
        if isinstance(proc, subprocess.Popen):
            sandbox.release(proc)
        if tracker is not None:
            tracker.discard(proc)
    output = lines.text()
    if timed_out:
        return Completed(-1, output, f"{name} timed out after {timeout:g}s and was killed "
                         "(raise the limit with --timeout if it needs longer)")
    code = proc.returncode
    assert code is not None    # it was waited for
    if isinstance(proc, SessionProcess) and proc.lost:
        return Completed(code, output, f"{name} was killed: the build's namespace ended while it ran")
    if code < 0:
        return Completed(code, output, f"{name} was killed by signal {-code}")
    if view is not None and code > 128 and code - 128 in _SIGNALS:
        # bwrap's init reports a child killed by signal N as exit status 128+N, as a shell does
        return Completed(code, output, f"exit status {code} ({name} was killed by signal {code - 128}, "
                         f"{_SIGNALS[code - 128]}, or exited with that status)")
    return Completed(code, output)


class _Lines:
    """Splits output into lines in linear time: each byte is scanned once, however long the line."""

    def __init__(self, on_line: Callable[[str], None] | None) -> None:
        self.on_line = on_line
        self.partial: list[bytes] = []     # the pieces of the line not yet ended
        self.chunks: list[str] = []

    def feed(self, data: bytes) -> None:
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                if start < len(data):
                    self.partial.append(data[start:])
                return
            piece = data[start:end + 1]
            if self.partial:
                self.partial.append(piece)
                piece = b"".join(self.partial)
                self.partial = []
            self._emit(piece)
            start = end + 1

    def close(self) -> None:
        if self.partial:
            self._emit(b"".join(self.partial))
            self.partial = []

    def _emit(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace")
        self.chunks.append(line)
        if self.on_line is not None:
            self.on_line(line)

    def text(self) -> str:
        return "".join(self.chunks)


def _kill(proc: subprocess.Popen | SessionProcess) -> None:
    """Kill the whole process group (with a sandbox: bwrap, whose PID namespace dies with it; in a
    session: the run and whatever it started)."""
    if isinstance(proc, SessionProcess):
        proc.kill()
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
