"""`cnbsim serve`: the HTTP API of `planqk serve` (or of the platform's Service API), each job a process.

Every job is its own process, started like `cnbsim run` (runner.start: same launcher and sandbox),
at most `jobs` at a time; the others wait as PENDING. What differs from `planqk serve` on purpose:
* `GET /{id}` never blocks; cancel kills the process group (a PENDING job never starts); an
  `ErrorResponse` (exit 1 with a result block) is FAILED; jobs carry camelCase fields next to the
  snake_case ones;
* `GET /{id}/result` of a job that has not ended is 404 `{"detail": "Not found"}` (what the PlanQK
  SDK retries on) with a `reason`; a result that is a JSON object gets the platform's `_links`
  (one per file the job wrote to /var/runtime/output, served at `GET /{id}/result/{file}`) and
  `_embedded.status`, so the SDK's `result_files()` and `download_result_file()` work;
* `GET /{id}/log` is the platform's list of log entries (what the SDK's `logs()` reads),
  `GET /{id}/logs` (ours) the job's stdout, stderr and exit code;
* `--api platform`: `GET /` lists the executions, as the platform's Service API does;
* when a job's main process ends, what is left of its process group is killed, as a container's
  processes die with its pid 1.

Hostile clients: the listen backlog holds bursts, a bounded pool answers connections, every read
has a timeout and a whole request a deadline, a request is acted on only once all of it has
arrived, and bad lengths, bodies over the limit and invalid or too deeply nested JSON get a
4xx with a JSON `detail`.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import re
import signal
import socket
import socketserver
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from itertools import accumulate
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from cnbsim import sandbox
from cnbsim.errors import CnbsimError, ConfigError
from cnbsim.log import Logger
from cnbsim.output import BuiltOutput
from cnbsim.runner import OUTPUT_FILES, Job, RunRequest, parse_result, start, stub_hint

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"      # planqk serve's format, local time
INTERIM_PREFIX = "PlanQK:Job:InterimResult:"
NOT_FOUND = "Not found"
READER_GRACE = 5.0                     # seconds to wait for a pipe held open by an escaped process
LISTEN_BACKLOG = 512                   # socketserver's default of 5 resets a burst of connections
HANDLERS = 32                          # connections answered at once; more wait in the listen backlog
DEFAULT_JOBS = 4                       # job processes at once; more are PENDING
LINGER_BYTES, LINGER_SECONDS = 1 << 20, 2.0   # unread body drained before close, so the client sees the answer
FILE_CHUNK = 1 << 16
TRUE_WORDS, FALSE_WORDS = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
_LENGTH = re.compile(r"[0-9]{1,20}")


class Status(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def ended(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


class Api(str, Enum):
    """What `GET /` answers: planqk serve's health check, or the platform's list of executions."""

    SERVE = "serve"
    PLATFORM = "platform"


class Stream(str, Enum):
    STDOUT = "stdout"
    STDERR = "stderr"


@dataclass(frozen=True)
class Limits:
    """How much a client may send and how long it may take."""

    max_body: int = 10 * 1024 * 1024   # bytes of a POST body
    read_timeout: float = 10.0         # seconds one read from a connection may wait
    request_deadline: float = 60.0     # seconds to receive a whole request (line, headers, body)
    max_json_depth: int = 100          # nesting of arrays and objects in a POST body


def endpoints(api: Api) -> tuple[tuple[str, str, str], ...]:
    """(method, path, what) of every endpoint, for the banner and the README."""
    root = ("GET ", "/", "the list of executions") if api is Api.PLATFORM else ("GET ", "/", "health check")
    return (root,
            ("POST", "/", 'start a job: {"data": {...}, "params": {...}}; 201 PENDING'),
            ("GET ", "/{id}", "the job's status (never blocks)"),
            ("GET ", "/{id}/result", "its result, once it has ended, with _links to its files"),
            ("GET ", "/{id}/result/{file}", "a file it wrote to /var/runtime/output"),
            ("GET ", "/{id}/interim-results", "its interim results (?last=true: only the newest)"),
            ("GET ", "/{id}/log", "its log entries (the PlanQK SDK's logs())"),
            ("GET ", "/{id}/logs", "its stdout, stderr and exit code"),
            ("PUT ", "/{id}/cancel", "kill its process (a PENDING job never starts)"))


def _now() -> str:
    return datetime.now().strftime(TIME_FORMAT)


class RequestError(Exception):
    """An HTTP error answer: a status and the `detail` of its JSON body."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"detail": detail, **extra}
        self.headers = headers or {}


@dataclass(frozen=True)
class LogLine:
    """One line a job printed, when, and on which stream."""

    time: datetime
    stream: Stream
    text: str

    def to_entry(self) -> dict[str, Any]:
        """The platform's LogEntry: message, severity, timestamp."""
        return {"message": self.text.rstrip("\r\n"), "severity": "INFO" if self.stream is Stream.STDOUT else "ERROR",
                "timestamp": self.time.isoformat()}


@dataclass(frozen=True)
class JobView:
    """A consistent copy of a job, taken under the table's lock, for one response."""

    id: str
    status: Status
    created_at: str
    started_at: str | None
    ended_at: str | None
    exit_code: int | None
    has_result: bool
    result: Any
    interim: tuple[Any, ...]
    files: tuple[str, ...]
    output_dir: Path | None             # the host dir that was its /var/runtime/output
    lines: tuple[LogLine, ...] = ()   # only in a view taken with_output

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status.value, "type": "MANAGED",
                "createdAt": self.created_at, "startedAt": self.started_at, "endedAt": self.ended_at,
                "created_at": self.created_at, "started_at": self.started_at, "ended_at": self.ended_at}

    def output(self, stream: Stream) -> str:
        return "".join(line.text for line in self.lines if line.stream is stream)

    @property
    def result_available(self) -> bool:
        """A result block, or (for a job that succeeded) files to link to."""
        return self.status.ended and self.status is not Status.CANCELLED and (
            self.has_result or (self.status is Status.SUCCEEDED and bool(self.files)))

    def missing_result_reason(self) -> str:
        if self.status is Status.PENDING:
            return "the job has not started yet (all job slots are busy); poll GET /{id}"
        if self.status is Status.RUNNING:
            return "the job has not ended yet; poll GET /{id} until its status is SUCCEEDED or FAILED"
        if self.status is Status.CANCELLED:
            return "the job was cancelled"
        if self.status is Status.SUCCEEDED:
            return "the job printed no result (its run() returned None) and wrote no files"
        return f"the job failed without a result (exit code {self.exit_code}); see GET /{{id}}/log"


class _Record:
    """A job's mutable state; every access holds JobTable.lock."""

    def __init__(self, job_id: str, data: Any, params: Any) -> None:
        self.id = job_id
        self.inputs: tuple[Any, Any] | None = (data, params)   # dropped once the process has them
        self.launched: Job | None = None
        self.status = Status.PENDING
        self.created_at = _now()
        self.started_at: str | None = None
        self.ended_at: str | None = None
        self.exit_code: int | None = None
        self.has_result = False
        self.result: Any = None
        self.interim: list[Any] = []
        self.lines: list[LogLine] = []
        self.files: tuple[str, ...] = ()

    def view(self, with_output: bool = False) -> JobView:
        return JobView(self.id, self.status, self.created_at, self.started_at, self.ended_at, self.exit_code,
                       self.has_result, self.result, tuple(self.interim), self.files,
                       self.launched.output_dir if self.launched else None,
                       tuple(self.lines) if with_output else ())

    def end(self, status: Status) -> None:
        self.status, self.ended_at = status, _now()


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the job's process group (runner.start made the process a session leader)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class JobTable:
    """The jobs of one server: queued, started by a bounded pool, watched, cancelled; one lock around all."""

    def __init__(self, output: BuiltOutput, sandbox_mode: str, log: Logger, jobs: int = DEFAULT_JOBS,
                 network: str = "bridge") -> None:
        self.output = output
        self.sandbox_mode = sandbox_mode
        self.network = network
        self.log = log
        self.lock = threading.Lock()
        self.jobs: dict[str, _Record] = {}
        self.closed = False
        self.queue: queue.Queue[_Record | None] = queue.Queue()
        # Each worker starts its jobs' processes and waits for them, so the thread that forked a process
        # outlives it: bwrap's --die-with-parent (PR_SET_PDEATHSIG) fires when that *thread* ends.
        self.workers = [threading.Thread(target=self._work, name=f"cnbsim-serve-job-{n}", daemon=True)
                        for n in range(jobs)]
        for worker in self.workers:
            worker.start()

    def submit(self, data: Any, params: Any) -> JobView:
        """Queue a job with these inputs; it is PENDING until a worker starts its process."""
        job_id = str(uuid.uuid4())
        record = _Record(job_id, data, params)
        with self.lock:
            if self.closed:
                raise RequestError(503, "the server is stopping")
            self.jobs[job_id] = record
            self.queue.put(record)
            return record.view()

    def find(self, job_id: str, *, with_output: bool = False) -> JobView | None:
        with self.lock:
            record = self.jobs.get(job_id)
            return record.view(with_output) if record else None

    def all(self) -> list[JobView]:
        with self.lock:
            return [record.view() for record in self.jobs.values()]

    def cancel(self, job_id: str) -> JobView | None:
        """Kill a running job, or keep a pending one from starting; a job that has ended is left as it is."""
        with self.lock:
            record = self.jobs.get(job_id)
            if record is None:
                return None
            if not record.status.ended:
                if record.launched is not None:
                    # the watcher reaps the process only under this lock, so its group id is still the job's
                    _kill_group(record.launched.process)
                record.inputs = None
                record.end(Status.CANCELLED)
            return record.view()

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every job that has not ended, wait for the workers, remove every job's temp dir and files."""
        with self.lock:
            self.closed = True
            ids = [r.id for r in self.jobs.values() if not r.status.ended]
        for job_id in ids:
            self.cancel(job_id)
        for _ in self.workers:
            self.queue.put(None)
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            started = [r.launched for r in self.jobs.values() if r.launched is not None]
        for launched in started:
            launched.close()

    def _work(self) -> None:
        while (record := self.queue.get()) is not None:
            try:
                self._run(record)
            except Exception as exc:   # a worker must survive any job: the next ones still need it
                self.log.info(f"job {record.id}: internal error: {exc!r}")
                with self.lock:
                    if not record.status.ended:
                        record.end(Status.FAILED)

    def _run(self, record: _Record) -> None:
        with self.lock:
            if record.status is not Status.PENDING or record.inputs is None:
                return                                  # cancelled while it waited
            (data, params), record.inputs = record.inputs, None
            record.status, record.started_at = Status.RUNNING, _now()
        request = RunRequest(self.output, data=data, params=params, sandbox=self.sandbox_mode, network=self.network)
        try:
            launched = start(request, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except CnbsimError as exc:
            with self.lock:
                record.lines.append(LogLine(datetime.now(timezone.utc), Stream.STDERR,
                                            f"cannot start the job: {exc}\n"))
                if record.status is Status.RUNNING:
                    record.end(Status.FAILED)
            self.log.info(f"job {record.id} FAILED: cannot start: {exc}")
            return
        with self.lock:
            record.launched = launched
            if record.status is not Status.RUNNING:    # cancelled while it was starting
                _kill_group(launched.process)
        self.log.info(f"job {record.id} started (pid {launched.process.pid})")
        self._watch(record, launched)

    def _read(self, record: _Record, pipe: IO[bytes], stream: Stream) -> None:
        for raw in iter(pipe.readline, b""):
            text = raw.decode("utf-8", errors="replace")
            interim = _interim(text) if stream is Stream.STDOUT else None
            with self.lock:   # stamped under the lock: the entries' order is their times' order
                line = LogLine(datetime.now(timezone.utc), stream, text)
                record.lines.append(line)
                if interim is not None:
                    record.interim.append(interim[0])
            self.log.info(f"[{record.id[:8]}] {line.text.rstrip()}")
        pipe.close()

    def _watch(self, record: _Record, launched: Job) -> None:
        process = launched.process
        readers = [threading.Thread(target=self._read, args=(record, pipe, stream), daemon=True)
                   for pipe, stream in ((process.stdout, Stream.STDOUT), (process.stderr, Stream.STDERR))]
        for reader in readers:
            reader.start()
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)   # ended, not yet reaped
        _kill_group(process)
        for reader in readers:
            reader.join(READER_GRACE)
        files = _list_files(launched.output_dir)   # the process group is gone: the files are final
        with self.lock:
            stdout = "".join(line.text for line in record.lines if line.stream is Stream.STDOUT)
            output = "".join(line.text for line in record.lines)
        found = _job_result(launched, stdout)
        with self.lock:
            record.exit_code = process.wait()
            record.files = files
            if record.status is Status.RUNNING:
                record.has_result, record.result = found
                # the job-template runtime prints an ErrorResponse, then exits 1
                record.end(Status.SUCCEEDED if record.exit_code == 0 else Status.FAILED)
            status = record.status
        # the job's files stay until the server stops (JobTable.close closes every job)
        self.log.info(f"job {record.id} {status.value} (exit code {record.exit_code})")
        hint = stub_hint(self.output, output) if record.exit_code else None
        if hint:
            self.log.info(hint)


def _interim(line: str) -> tuple[Any] | None:
    """(value,) for a `PlanQK:Job:InterimResult: <json>` line, else None."""
    text = line.strip()
    if not text.startswith(INTERIM_PREFIX):
        return None
    try:
        return (json.loads(text[len(INTERIM_PREFIX):]),)
    except (ValueError, RecursionError):
        return None


def _job_result(launched: Job, stdout: str) -> tuple[bool, Any]:
    """The runner's result (the v2 output file, else the result block), never read through a symlink
    the job left in its output dir (it would be resolved on the host)."""
    if any((launched.output_dir / name).is_symlink() for name in OUTPUT_FILES):
        return parse_result(stdout)
    try:
        return launched.result(stdout)
    except (OSError, ValueError, RecursionError):
        return False, None


def _list_files(root: Path) -> tuple[str, ...]:
    """The regular files under `root` (relative, '/'-separated, sorted); symlinks are not followed."""
    found = []
    for top, dirs, names in os.walk(root, followlinks=False):
        rel = Path(top).relative_to(root)
        for name in names:
            if stat.S_ISREG(os.lstat(os.path.join(top, name)).st_mode):
                found.append((rel / name).as_posix())
        dirs.sort()
    return tuple(sorted(found))


def _open_file(root: Path, name: str) -> IO[bytes]:
    """Open root/name for reading without following any symlink on the way (the job wrote that tree)."""
    parts = name.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise IsADirectoryError(errno.EISDIR, "not a regular file", name)
    return os.fdopen(file_fd, "rb")


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_DEPTH_STEP = [0] * 256
for _byte, _step in ((b"[", 1), (b"{", 1), (b"]", -1), (b"}", -1)):
    _DEPTH_STEP[_byte[0]] = _step


def json_depth(text: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text, found without recursion (strings skipped)."""
    brackets = _JSON_STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def parse_submission(body: bytes, max_depth: int = Limits.max_json_depth) -> tuple[Any, Any]:
    """(data, params) of a `POST /` body; each a JSON object or None, as planqk serve takes them."""
    if not body.strip():
        return None, None
    if body.count(b"[") + body.count(b"{") > max_depth and json_depth(body) > max_depth:
        raise RequestError(422, f"the request body nests arrays and objects deeper than {max_depth} levels")
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError(422, "the request body is not UTF-8 text")
    except json.JSONDecodeError as exc:
        raise RequestError(422, f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                                f"column {exc.colno}")
    except ValueError as exc:   # e.g. an integer longer than Python's int_max_str_digits
        raise RequestError(422, f"the request body is not usable JSON: {exc}")
    if not isinstance(payload, dict):
        raise RequestError(422, f"the request body must be a JSON object like "
                                f'{{"data": {{...}}, "params": {{...}}}}, not {_json_type(payload)}')
    values = []
    for name in ("data", "params"):
        value = payload.get(name)
        if value is not None and not isinstance(value, dict):
            raise RequestError(422, f"'{name}' must be a JSON object or null, not {_json_type(value)}")
        values.append(value)
    return values[0], values[1]


def _json_type(value: Any) -> str:
    names = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), "null" if value is None else type(value).__name__)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    words = query.get(name)
    if not words:
        return False
    word = words[-1].lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise RequestError(422, f"query parameter '{name}' must be true or false, not '{words[-1]}'")
    return word in TRUE_WORDS


def body_length(headers: Any, max_body: int) -> int:
    """The Content-Length of a POST, checked: 411 without one (or chunked), 400 if not a number, 413 over the limit."""
    if headers.get("Transfer-Encoding") is not None:
        raise RequestError(411, "send the body with a Content-Length header; Transfer-Encoding is not supported")
    values = {v.strip() for v in headers.get_all("Content-Length") or []}
    if not values:
        raise RequestError(411, "a POST needs a Content-Length header (0 for an empty body)")
    if len(values) > 1:
        raise RequestError(400, f"the request has conflicting Content-Length headers: {', '.join(sorted(values))}")
    text = values.pop()
    if not _LENGTH.fullmatch(text):
        raise RequestError(400, f"the Content-Length header must be a number of bytes, not '{text[:40]}'")
    length = int(text)
    if length > max_body:
        raise RequestError(413, f"the request body of {length} bytes is over the limit of {max_body} bytes "
                                f"(send less, or start the server with a larger --max-body)")
    return length


class _Late(Exception):
    """A request (or a read of it) did not arrive in time."""


class _RequestReader:
    """The connection's input, buffered here so that every read waits at most the read timeout and the
    whole request at most the request deadline; notes whether the header block ended with its blank line."""

    def __init__(self, conn: socket.socket, limits: Limits) -> None:
        self.conn, self.limits = conn, limits
        self.deadline = time.monotonic() + limits.request_deadline
        self.buffer = bytearray()
        self.eof = False
        self.late: str | None = None       # why the request stopped arriving in time, if it did
        self.last_line = b""

    def _fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.late = f"the request did not arrive in time (within {self.limits.request_deadline:g} s)"
            raise _Late(self.late)
        self.conn.settimeout(min(self.limits.read_timeout, remaining))
        try:
            chunk = self.conn.recv(FILE_CHUNK)
        except TimeoutError:
            self.late = (f"the request did not arrive in time (no data for {self.limits.read_timeout:g} s)"
                         if remaining > self.limits.read_timeout else
                         f"the request did not arrive in time (within {self.limits.request_deadline:g} s)")
            raise _Late(self.late)
        finally:
            self.conn.settimeout(self.limits.read_timeout)   # what writing the answer may wait
        if chunk:
            self.buffer += chunk
        else:
            self.eof = True

    def readline(self, size: int = -1) -> bytes:
        """A line for http.server; a late one ends the input (the answer is a 408)."""
        limit = size if size >= 0 else sys.maxsize
        try:
            while (end := self.buffer.find(b"\n", 0, limit)) < 0 and len(self.buffer) < limit and not self.eof:
                self._fill()
        except _Late:
            self.eof, self.last_line = True, b""
            return b""
        cut = end + 1 if end >= 0 else min(limit, len(self.buffer))
        self.last_line = bytes(self.buffer[:cut])
        del self.buffer[:cut]
        return self.last_line

    def read(self, size: int) -> bytes:
        """Up to `size` bytes: fewer only at the end of the input; raises _Late."""
        while len(self.buffer) < size and not self.eof:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def close(self) -> None:
        """The socket is the server's to close."""

    @property
    def headers_complete(self) -> bool:
        return self.last_line in (b"\r\n", b"\n")


class _Server(HTTPServer):
    """An HTTP server whose connections are answered by a fixed pool of threads."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, host: str, port: int, table: JobTable, api: Api, limits: Limits) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.table, self.api, self.limits = table, api, limits
        self.stopping = threading.Event()
        self.connections: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(maxsize=HANDLERS)
        self.handlers: list[threading.Thread] = []   # server_close runs if the bind below fails
        super().__init__((host, port), _Handler)
        self.handlers = [threading.Thread(target=self._answer, name=f"cnbsim-serve-http-{n}", daemon=True)
                         for n in range(HANDLERS)]
        for handler in self.handlers:
            handler.start()

    def server_bind(self) -> None:
        # HTTPServer.server_bind would also do a reverse DNS lookup of the host, which can hang
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to the pool; while all are busy, the accept loop waits (the backlog holds the rest)."""
        while not self.stopping.is_set():
            try:
                self.connections.put((request, client_address), timeout=0.1)
                return
            except queue.Full:
                continue
        self.shutdown_request(request)

    def _answer(self) -> None:
        while (item := self.connections.get()) is not None:
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.table.log.info(f"error while answering {client_address[0]}: {sys.exc_info()[1]!r}")

    def server_close(self) -> None:
        self.stopping.set()
        super().server_close()
        for _ in self.handlers:
            try:
                self.connections.put_nowait(None)
            except queue.Full:
                break     # all handlers busy: they are daemon threads, bounded by the read timeouts


class _Handler(BaseHTTPRequestHandler):
    """Routes a request to a method of this class by path pattern and HTTP method."""

    server: _Server
    rfile: _RequestReader   # type: ignore[assignment]
    routes: tuple[tuple[tuple[str, ...], dict[str, str]], ...] = (
        ((), {"GET": "root", "POST": "submit"}),
        (("{id}",), {"GET": "status"}),
        (("{id}", "result"), {"GET": "result"}),
        (("{id}", "result", "{file}"), {"GET": "result_file"}),
        (("{id}", "interim-results"), {"GET": "interim_results"}),
        (("{id}", "log"), {"GET": "log"}),
        (("{id}", "logs"), {"GET": "logs"}),
        (("{id}", "cancel"), {"PUT": "cancel"}),
    )

    def setup(self) -> None:
        self.request.settimeout(self.server.limits.read_timeout)  # what StreamRequestHandler.timeout would set
        self.unread_body = False
        super().setup()
        self.rfile.close()
        self.rfile = _RequestReader(self.connection, self.server.limits)

    def finish(self) -> None:
        try:
            super().finish()
            if self.unread_body:
                self._linger()
        except OSError:
            pass

    def _linger(self) -> None:
        """Read what the client still sends, briefly, so closing does not reset the connection before it
        has read the error answer (a close with unread input sends a TCP reset)."""
        self.connection.shutdown(socket.SHUT_WR)
        self.connection.settimeout(0.2)
        deadline, drained = time.monotonic() + LINGER_SECONDS, 0
        while drained < LINGER_BYTES and time.monotonic() < deadline:
            try:
                chunk = self.connection.recv(FILE_CHUNK)
            except (TimeoutError, BlockingIOError):
                continue
            if not chunk:
                return
            drained += len(chunk)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        if not self.rfile.headers_complete:          # the connection ended inside the header block
            self.close_connection = True
            if self.rfile.late:
                self.unread_body = True
                self._send(408, {"detail": self.rfile.late})
            return
        if self.command != "POST" and (self.headers.get("Content-Length", "0").strip() != "0"
                                       or self.headers.get("Transfer-Encoding") is not None):
            self.unread_body = True                  # a body we do not read: drain it before closing
        url = urlsplit(self.path)
        parts = tuple(unquote(p) for p in url.path.split("/") if p)
        headers: dict[str, str] = {}
        try:
            try:
                name, args = self._route(parts)
                status, body = getattr(self, f"_{name}")(*args, parse_qs(url.query))
            except RequestError as exc:
                status, body, headers = exc.status, exc.body, exc.headers
                if self.command == "POST" and exc.status in (400, 408, 411, 413):
                    self.unread_body = True
            except _Aborted as exc:
                self.close_connection = True
                self.server.table.log.info(f"{self.command} {self.path}: {exc}; nothing was started")
                return
            except Exception as exc:   # always an answer, never a traceback
                self.server.table.log.info(f"internal error answering {self.command} {self.path}: {exc!r}")
                status, body = 500, {"detail": f"internal error: {exc.__class__.__name__}: {exc}"}
            if isinstance(body, _FileBody):
                self._send_file(body)
            else:
                self._send(status, body, headers)
        except OSError as exc:   # the client went away while we answered
            self.close_connection = True
            self.server.table.log.info(f"{self.command} {self.path}: the answer was not delivered: {exc}")

    def _route(self, parts: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        for pattern, methods in self.routes:
            segments = parts
            if pattern[-1:] == ("{file}",) and len(parts) > len(pattern):   # a file path may have several parts
                segments = (*parts[:len(pattern) - 1], "/".join(parts[len(pattern) - 1:]))
            if len(pattern) == len(segments) and all(p.startswith("{") or p == s for p, s in zip(pattern, segments)):
                name = methods.get(self.command)
                if name is None:
                    allowed = ", ".join(sorted(methods))
                    raise RequestError(405, "Method Not Allowed", headers={"Allow": allowed}, allowed=allowed)
                return name, tuple(s for p, s in zip(pattern, segments) if p.startswith("{"))
        raise RequestError(404, NOT_FOUND)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = (json.dumps(body, indent=2) + "\n").encode("utf-8")
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_file(self, body: _FileBody) -> None:
        with body.file:
            size = os.fstat(body.file.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(body.name.split('/')[-1])}")
            self.end_headers()
            sent = 0
            while sent < size and (chunk := body.file.read(min(FILE_CHUNK, size - sent))):
                self.wfile.write(chunk)
                sent += len(chunk)

    def _view(self, job_id: str, *, with_output: bool = False) -> JobView:
        view = self.server.table.find(job_id, with_output=with_output)
        if view is None:
            raise RequestError(404, NOT_FOUND)
        return view

    def _base_url(self) -> str:
        host = self.headers.get("Host") or f"{self.server.server_name}:{self.server.server_port}"
        return f"http://{host}"

    def _root(self, _query: dict) -> tuple[int, Any]:
        if self.server.api is Api.PLATFORM:
            return 200, [view.to_json() for view in self.server.table.all()]
        return 200, {"status": "Service is up and running"}

    def _submit(self, _query: dict) -> tuple[int, Any]:
        body = self._read_body(body_length(self.headers, self.server.limits.max_body))
        data, params = parse_submission(body, self.server.limits.max_json_depth)
        job = self.server.table.submit(data, params)
        self.server.table.log.info(f"job {job.id} PENDING")
        return 201, job.to_json()

    def _read_body(self, length: int) -> bytes:
        """Exactly `length` bytes, or _Aborted when the client closes first, or 408 when they are late."""
        try:
            body = self.rfile.read(length)
        except _Late as exc:
            raise RequestError(408, f"{exc}; nothing was started")
        if len(body) < length:
            raise _Aborted(f"the connection closed after {len(body)} of {length} body bytes")
        return body

    def _status(self, job_id: str, _query: dict) -> tuple[int, Any]:
        return 200, self._view(job_id).to_json()

    def _result(self, job_id: str, _query: dict) -> tuple[int, Any]:
        view = self._view(job_id)
        if not view.result_available:
            raise RequestError(404, NOT_FOUND, reason=view.missing_result_reason())
        result = view.result if view.has_result else {}
        if not isinstance(result, dict):
            return 200, result                 # a list or a scalar has no place for links
        base = f"{self._base_url()}/{view.id}"
        links = {"self": {"href": f"{base}/result"}, "status": {"href": base}}
        links.update({name: {"href": f"{base}/result/{quote(name)}"} for name in view.files})
        return 200, {**result, "_links": links, "_embedded": {"status": view.to_json()}}

    def _result_file(self, job_id: str, name: str, _query: dict) -> tuple[int, Any]:
        view = self._view(job_id)
        if not view.status.ended or name not in view.files or view.output_dir is None:
            raise RequestError(404, NOT_FOUND, reason="no such result file" if view.status.ended
                               else "the job has not ended yet")
        try:
            return 200, _FileBody(name, _open_file(view.output_dir, name))
        except OSError:
            raise RequestError(404, NOT_FOUND, reason="the file is gone or not a regular file")

    def _interim_results(self, job_id: str, query: dict) -> tuple[int, Any]:
        items = list(self._view(job_id).interim)
        return 200, items[-1:] if _flag(query, "last") else items

    def _log(self, job_id: str, _query: dict) -> tuple[int, Any]:
        return 200, [line.to_entry() for line in self._view(job_id, with_output=True).lines]

    def _logs(self, job_id: str, _query: dict) -> tuple[int, Any]:
        view = self._view(job_id, with_output=True)
        return 200, {"id": view.id, "status": view.status.value, "exitCode": view.exit_code,
                     "exit_code": view.exit_code, "stdout": view.output(Stream.STDOUT),
                     "stderr": view.output(Stream.STDERR)}

    def _cancel(self, job_id: str, _query: dict) -> tuple[int, Any]:
        view = self.server.table.cancel(job_id)
        if view is None:
            raise RequestError(404, NOT_FOUND)
        return 200, view.to_json()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line, headers too long, ...) as JSON too."""
        self.close_connection = True
        if self.rfile.late:     # the request line or headers were cut short by the deadline
            code, message = 408, self.rfile.late
        if self.request_version == "HTTP/0.9":   # http.server's guess for a garbled line: no status line then
            self.request_version = "HTTP/1.0"
        self._send(code, {"detail": message or HTTPStatus(code).phrase})

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # http.server's own errors can come before the request line is parsed: no path then
        self.server.table.log.info(f"{self.command or '-'} {getattr(self, 'path', '-')} {int(code)}")

    def log_message(self, format: str, *args: Any) -> None:
        self.server.table.log.info(format % args)


class _Aborted(Exception):
    """The client closed the connection before its request had fully arrived."""


@dataclass(frozen=True)
class _FileBody:
    """A result file to stream as the answer."""

    name: str
    file: IO[bytes] = field(compare=False)


def _bind(host: str, port: int, table: JobTable, api: Api, limits: Limits) -> _Server:
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range", field="--port", hint="use 1-65535, or 0 for a free port")
    try:
        return _Server(host, port, table, api, limits)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host '{host}': {exc.strerror}", field="--host",
                          hint="use an address such as 127.0.0.1")
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use", field="--port",
                              hint="pick another with --port, or --port 0 for any free one")
        if exc.errno == errno.EACCES:
            raise ConfigError(f"no permission to listen on port {port}", field="--port",
                              hint="ports below 1024 need root; pick another with --port")
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}", field="--host")


def serve(output: BuiltOutput, *, host: str = "127.0.0.1", port: int = 8081, sandbox_mode: str = "auto",
          api: Api = Api.SERVE, jobs: int = DEFAULT_JOBS, limits: Limits = Limits(),
          ready: Callable[[int], None] | None = None, stop: threading.Event | None = None,
          network: str = "bridge") -> int:
    """Serve `output`'s default process as `planqk serve` would, until Ctrl-C, SIGTERM or `stop`; returns 0.

    `ready(port)` is called once the socket listens (with the real port when `port` is 0).
    """
    if not output.default_process:
        known = ", ".join(p.type for p in output.metadata.processes) or "none"
        raise ConfigError("this build has no default process to run for each job", file=output.path,
                          hint=f"its process types: {known}; the job-template buildpack sets one")
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {jobs}", field="--jobs")
    sandboxed = sandbox.use_sandbox(sandbox_mode)   # `--sandbox always` without bwrap fails here, not per job
    log = Logger(stream=sys.stderr, keep=False)   # whole lines, from any thread
    table = JobTable(output, sandbox_mode, log, jobs, network)
    try:
        server = _bind(host, port, table, api, limits)
    except BaseException:
        table.close()
        raise
    port = server.server_port
    url_host = f"[{host}]" if ":" in host else host
    lines = [f"Serving {output.path} on http://{url_host}:{port}",
             f"  process: {output.default_process}, sandbox: {'bubblewrap' if sandboxed else 'none'}, "
             + (f"network: {network}, " if sandboxed else "") + f"jobs at once: {jobs}, API: {api.value}"]
    lines += [f"  {method} {path:<24} {what}" for method, path, what in endpoints(api)]
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.info(f"warning: listening on {host}: anyone who can reach it can run jobs (there is no auth)")
    stop = stop or threading.Event()

    def shutdown_when_stopped() -> None:
        stop.wait()
        server.stopping.set()
        server.shutdown()

    threading.Thread(target=shutdown_when_stopped, daemon=True).start()
    on_main_thread = threading.current_thread() is threading.main_thread()   # signal handlers live there
    if on_main_thread:
        previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    if ready is not None:
        ready(port)
    try:
        server.serve_forever(poll_interval=0.1)   # how soon `stop` takes effect
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        log.info("stopping: cancelling pending and running jobs")
        server.server_close()
        table.close()
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0
