"""Running a buildpack executable: explicit argv, env and cwd, a timeout, the output captured."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence


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


def run(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float,
        on_line: Callable[[str], None] | None = None) -> Completed:
    """Run argv[0] with stdout+stderr merged; kill its whole process group on timeout."""
    problem = check_executable(Path(argv[0]))
    if problem:
        return Completed(-1, "", problem)
    try:
        proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    except OSError as exc:  # e.g. a bad #! line
        return Completed(-1, "", f"cannot execute {argv[0]}: {exc.strerror} (check its #! line)")
    # Read the merged output until EOF or the deadline, in this thread: no timer thread per run.
    deadline = time.monotonic() + timeout
    chunks: list[str] = []
    pending = b""
    timed_out = False
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if not sel.select(min(left, 0.5)):
                    if proc.poll() is not None:
                        _kill(proc)   # it exited, but a child it left behind holds the output open
                        break
                    continue
                data = os.read(fd, 65536)
                if not data:
                    break
                pending += data
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    _emit(raw + b"\n", chunks, on_line)
        if pending:
            _emit(pending, chunks, on_line)
        if timed_out:
            _kill(proc)
        proc.wait()
    except BaseException:
        _kill(proc)
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    output = "".join(chunks)
    if timed_out:
        return Completed(-1, output, f"{argv[0]} timed out after {timeout:g}s and was killed "
                         "(raise the limit with --timeout if it needs longer)")
    code = proc.returncode
    if code < 0:
        return Completed(code, output, f"{argv[0]} was killed by signal {-code}")
    return Completed(code, output)


def _emit(raw: bytes, chunks: list[str], on_line: Callable[[str], None] | None) -> None:
    line = raw.decode("utf-8", errors="replace")
    chunks.append(line)
    if on_line is not None:
        on_line(line)


def _kill(proc: subprocess.Popen) -> None:
    """Kill the whole process group: a buildpack's children must not outlive it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
