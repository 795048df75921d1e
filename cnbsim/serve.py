"""`cnbsim serve`: the HTTP API of `planqk serve`, each job a process launched from a build output.

planqk-runtime.md §4.3 gives the endpoints and payloads; §4.4 what to do better than it:
every job is its own process (started like `cnbsim run`, same launcher and sandbox),
`GET /{id}` never blocks, cancel kills the process group, an `ErrorResponse` (exit 1 with a
result block) is FAILED, and jobs carry camelCase fields next to the snake_case ones.

Choices where planqk serve blocks or is vague:
* a job starts its process before the 201 is sent, so it is RUNNING from the start (never PENDING)
  and an immediate `GET /{id}` finds it;
* `GET /{id}/result` of a job that has not ended is 404 `{"detail": "Not found"}` (what the SDK
  retries on), with a `reason` saying why; the same for a cancelled job, a job that failed
  without a result block, or one whose run() returned None;
* `GET /{id}/interim-results?last=true` is a list of at most one item, the newest;
* `GET /{id}/logs` (ours) gives the job's stdout, stderr and exit code;
* when a job's main process ends, what is left of its process group is killed, as a container's
  processes die with its pid 1.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any, Callable, TextIO
from urllib.parse import parse_qs, urlsplit

from cnbsim import sandbox
from cnbsim.errors import CnbsimError, ConfigError
from cnbsim.output import BuiltOutput
from cnbsim.runner import Job, RunRequest, start, stub_hint

RUNNING, SUCCEEDED, FAILED, CANCELLED = "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"      # planqk serve's format, local time
INTERIM_PREFIX = "PlanQK:Job:InterimResult:"
NOT_FOUND = "Not found"
READER_GRACE = 5.0                     # seconds to wait for a pipe held open by an escaped process
ENDPOINTS = (
    ("GET ", "/", "health check"),
    ("POST", "/", 'start a job: {"data": {...}, "params": {...}}'),
    ("GET ", "/{id}", "the job's status (never blocks)"),
    ("GET ", "/{id}/result", "its result, once it has ended"),
    ("GET ", "/{id}/interim-results", "its interim results (?last=true: only the newest)"),
    ("GET ", "/{id}/logs", "its stdout, stderr and exit code"),
    ("PUT ", "/{id}/cancel", "kill its process"),
)
TRUE_WORDS, FALSE_WORDS = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _now() -> str:
    return datetime.now().strftime(TIME_FORMAT)


class _Log:
    """Whole lines to the server's log stream, from any thread."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        with self.lock:
            self.stream.write(text + "\n")
            self.stream.flush()


class RequestError(Exception):
    """An HTTP error answer: a status and the `detail` of its JSON body."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"detail": detail, **extra}
        self.headers = headers or {}


@dataclass(frozen=True)
class JobView:
    """A consistent copy of a job, taken under the table's lock, for one response."""

    id: str
    status: str
    created_at: str
    started_at: str | None
    ended_at: str | None
    exit_code: int | None
    has_result: bool
    result: Any
    interim: tuple[Any, ...]
    stdout: str = ""            # only in a view taken with_output (GET /{id}/logs)
    stderr: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status,
                "createdAt": self.created_at, "startedAt": self.started_at, "endedAt": self.ended_at,
                "created_at": self.created_at, "started_at": self.started_at, "ended_at": self.ended_at}

    def missing_result_reason(self) -> str:
        if self.status == RUNNING:
            return "the job has not ended yet; poll GET /{id} until its status is SUCCEEDED or FAILED"
        if self.status == CANCELLED:
            return "the job was cancelled"
        if self.status == SUCCEEDED:
            return "the job printed no result (its run() returned None)"
        return f"the job failed without a result (exit code {self.exit_code}); see GET /{{id}}/logs"


class _Record:
    """A job's mutable state; every access holds JobTable.lock."""

    def __init__(self, job_id: str, launched: Job) -> None:
        self.id = job_id
        self.launched = launched
        self.status = RUNNING
        self.created_at = self.started_at = _now()   # the process starts at submission
        self.ended_at: str | None = None
        self.exit_code: int | None = None
        self.has_result = False
        self.result: Any = None
        self.interim: list[Any] = []
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.watcher: threading.Thread | None = None

    def view(self, with_output: bool = False) -> JobView:
        output = ("".join(self.stdout), "".join(self.stderr)) if with_output else ("", "")
        return JobView(self.id, self.status, self.created_at, self.started_at, self.ended_at, self.exit_code,
                       self.has_result, self.result, tuple(self.interim), *output)


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the job's process group (runner.start made the process a session leader)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class JobTable:
    """The jobs of one server: started, watched, cancelled; one lock around all of them."""

    def __init__(self, output: BuiltOutput, sandbox_mode: str, log: _Log) -> None:
        self.output = output
        self.sandbox_mode = sandbox_mode
        self.log = log
        self.lock = threading.Lock()
        self.jobs: dict[str, _Record] = {}
        self.closed = False
        # Processes are started from this one long-lived thread, not from the short-lived request
        # threads: bwrap's --die-with-parent (PR_SET_PDEATHSIG) fires when the *thread* that forked it ends.
        self.spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnbsim-serve-spawner")

    def submit(self, data: Any, params: Any) -> JobView:
        """Start the default process with these inputs; raises CnbsimError if it cannot start."""
        request = RunRequest(self.output, data=data, params=params, sandbox=self.sandbox_mode)
        with self.lock:
            if self.closed:
                raise RequestError(503, "the server is stopping")
            starting = self.spawner.submit(start, request, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        record = _Record(str(uuid.uuid4()), starting.result())
        record.watcher = threading.Thread(target=self._watch, args=(record,), name=f"job-{record.id[:8]}",
                                          daemon=True)
        with self.lock:
            self.jobs[record.id] = record
            if self.closed:   # close() ran while this job was starting
                _kill_group(record.launched.process)
                record.status, record.ended_at = CANCELLED, _now()
            view = record.view()
        record.watcher.start()
        self.log.line(f"job {record.id} started (pid {record.launched.process.pid})")
        return view

    def find(self, job_id: str, *, with_output: bool = False) -> JobView | None:
        with self.lock:
            record = self.jobs.get(job_id)
            return record.view(with_output) if record else None

    def cancel(self, job_id: str) -> JobView | None:
        """Kill a running job; a job that has ended is left as it is."""
        with self.lock:
            record = self.jobs.get(job_id)
            if record is None:
                return None
            if record.status == RUNNING:
                # the watcher reaps the process only under this lock, so its group id is still the job's
                _kill_group(record.launched.process)
                record.status, record.ended_at = CANCELLED, _now()
            return record.view()

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every running job, wait for its watcher to clean up, and end the spawner thread."""
        with self.lock:
            self.closed = True
            ids = [r.id for r in self.jobs.values() if r.status == RUNNING]
            watchers = [r.watcher for r in self.jobs.values() if r.watcher is not None]
        for job_id in ids:
            self.cancel(job_id)
        for watcher in watchers:
            watcher.join(timeout)
        self.spawner.shutdown()

    def _read(self, record: _Record, stream: IO[bytes], is_stdout: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            interim = _interim(line) if is_stdout else None
            with self.lock:
                (record.stdout if is_stdout else record.stderr).append(line)
                if interim is not None:
                    record.interim.append(interim[0])
            self.log.line(f"[{record.id[:8]}] {line.rstrip()}")
        stream.close()

    def _watch(self, record: _Record) -> None:
        process = record.launched.process
        readers = [threading.Thread(target=self._read, args=(record, stream, is_stdout), daemon=True)
                   for stream, is_stdout in ((process.stdout, True), (process.stderr, False))]
        for reader in readers:
            reader.start()
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)   # ended, not yet reaped
        _kill_group(process)
        for reader in readers:
            reader.join(READER_GRACE)
        with self.lock:
            record.exit_code = process.wait()
            if record.status == RUNNING:
                record.has_result, record.result = record.launched.result("".join(record.stdout))
                # planqk-runtime.md §1.9: an ErrorResponse is printed, then the runtime exits 1
                record.status = SUCCEEDED if record.exit_code == 0 else FAILED
                record.ended_at = _now()
            status = record.status
        record.launched.close()
        self.log.line(f"job {record.id} {status} (exit code {record.exit_code})")
        hint = stub_hint(self.output, "".join(record.stderr + record.stdout)) if record.exit_code else None
        if hint:
            self.log.line(hint)


def _interim(line: str) -> tuple[Any] | None:
    """(value,) for a `PlanQK:Job:InterimResult: <json>` line, else None."""
    text = line.strip()
    if not text.startswith(INTERIM_PREFIX):
        return None
    try:
        return (json.loads(text[len(INTERIM_PREFIX):]),)
    except json.JSONDecodeError:
        return None


def parse_submission(body: bytes) -> tuple[Any, Any]:
    """(data, params) of a `POST /` body; each a JSON object or None (planqk-runtime.md §4.3)."""
    if not body.strip():
        return None, None
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError(422, "the request body is not UTF-8 text")
    except json.JSONDecodeError as exc:
        raise RequestError(422, f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                                f"column {exc.colno}")
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, port: int, table: JobTable) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.table = table
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would also do a reverse DNS lookup of the host, which can hang
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.table.log.line(f"error while answering {client_address[0]}: {sys.exc_info()[1]!r}")


class _Handler(BaseHTTPRequestHandler):
    """Routes a request to a method of this class by path pattern and HTTP method."""

    server: _Server
    routes: tuple[tuple[tuple[str, ...], dict[str, str]], ...] = (
        ((), {"GET": "health", "POST": "submit"}),
        (("{id}",), {"GET": "status"}),
        (("{id}", "result"), {"GET": "result"}),
        (("{id}", "interim-results"), {"GET": "interim_results"}),
        (("{id}", "logs"), {"GET": "logs"}),
        (("{id}", "cancel"), {"PUT": "cancel"}),
    )

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        parts = tuple(p for p in url.path.split("/") if p)
        headers: dict[str, str] = {}
        try:
            for pattern, methods in self.routes:
                if len(pattern) == len(parts) and all(p == "{id}" or p == s for p, s in zip(pattern, parts)):
                    name = methods.get(self.command)
                    if name is None:
                        allowed = ", ".join(sorted(methods))
                        raise RequestError(405, "Method Not Allowed", headers={"Allow": allowed}, allowed=allowed)
                    job_id = parts[0] if parts else None
                    status, body = getattr(self, f"_{name}")(job_id, parse_qs(url.query))
                    break
            else:
                raise RequestError(404, NOT_FOUND)
        except RequestError as exc:
            status, body, headers = exc.status, exc.body, exc.headers
        except CnbsimError as exc:
            status, body = 500, {"detail": f"cannot start the job: {exc}"}
        self._send(status, body, headers)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = (json.dumps(body, indent=2) + "\n").encode("utf-8")
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _view(self, job_id: str, *, with_output: bool = False) -> JobView:
        view = self.server.table.find(job_id, with_output=with_output)
        if view is None:
            raise RequestError(404, NOT_FOUND)
        return view

    def _health(self, _job_id: None, _query: dict) -> tuple[int, Any]:
        return 200, {"status": "Service is up and running"}

    def _submit(self, _job_id: None, _query: dict) -> tuple[int, Any]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError(411, "send the body with a Content-Length, not chunked")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise RequestError(400, "the Content-Length header is not a number")
        data, params = parse_submission(self.rfile.read(length))
        return 201, self.server.table.submit(data, params).to_json()

    def _status(self, job_id: str, _query: dict) -> tuple[int, Any]:
        return 200, self._view(job_id).to_json()

    def _result(self, job_id: str, _query: dict) -> tuple[int, Any]:
        view = self._view(job_id)
        if view.status in (SUCCEEDED, FAILED) and view.has_result:
            return 200, view.result
        raise RequestError(404, NOT_FOUND, reason=view.missing_result_reason())

    def _interim_results(self, job_id: str, query: dict) -> tuple[int, Any]:
        items = list(self._view(job_id).interim)
        return 200, items[-1:] if _flag(query, "last") else items

    def _logs(self, job_id: str, _query: dict) -> tuple[int, Any]:
        view = self._view(job_id, with_output=True)
        return 200, {"id": view.id, "status": view.status, "exitCode": view.exit_code, "exit_code": view.exit_code,
                     "stdout": view.stdout, "stderr": view.stderr}

    def _cancel(self, job_id: str, _query: dict) -> tuple[int, Any]:
        view = self.server.table.cancel(job_id)
        if view is None:
            raise RequestError(404, NOT_FOUND)
        return 200, view.to_json()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line, ...) as JSON too."""
        self.close_connection = True
        self._send(code, {"detail": message or HTTPStatus(code).phrase})

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # http.server's own errors can come before the request line is parsed: no path then
        self.server.table.log.line(f"{self.command or '-'} {getattr(self, 'path', '-')} {int(code)}")

    def log_message(self, format: str, *args: Any) -> None:
        self.server.table.log.line(format % args)


def _bind(host: str, port: int, table: JobTable) -> _Server:
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range", field="--port", hint="use 1-65535, or 0 for a free port")
    try:
        return _Server(host, port, table)
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
          ready: Callable[[int], None] | None = None, stop: threading.Event | None = None) -> int:
    """Serve `output`'s default process as `planqk serve` would, until Ctrl-C, SIGTERM or `stop`; returns 0.

    `ready(port)` is called once the socket listens (with the real port when `port` is 0).
    """
    if not output.metadata.default_process:
        known = ", ".join(p.type for p in output.metadata.processes) or "none"
        raise ConfigError("this build has no default process to run for each job", file=output.path,
                          hint=f"its process types: {known}; the job-template buildpack sets one")
    sandboxed = sandbox.use_sandbox(sandbox_mode)   # `--sandbox always` without bwrap fails here, not per job
    log = _Log(sys.stderr)
    table = JobTable(output, sandbox_mode, log)
    server = _bind(host, port, table)
    port = server.server_port
    url_host = f"[{host}]" if ":" in host else host
    lines = [f"Serving {output.path} on http://{url_host}:{port}",
             f"  process: {output.metadata.default_process}, sandbox: {'bubblewrap' if sandboxed else 'none'}"]
    lines += [f"  {method} {path:<24} {what}" for method, path, what in ENDPOINTS]
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.line(f"warning: listening on {host}: anyone who can reach it can run jobs (there is no auth)")
    stop = stop or threading.Event()

    def shutdown_when_stopped() -> None:
        stop.wait()
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
        log.line("interrupted")
    finally:
        log.line("stopping: cancelling running jobs")
        table.close()
        server.server_close()
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0
