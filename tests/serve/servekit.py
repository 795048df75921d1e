"""What the serve tests share: a service imitating the PlanQK runtime, a build of it, a client, a server."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cnbsim
from cnbsim.output import BuiltOutput
from cnbsim.serve import serve

# What the job-template runtime does (inputs, interim results, the result block, exit codes),
# driven by fields of `data`; `files` are written where PlanQK's runtime puts result files.
RUNTIME = r'''import json, os, sys, time
root = os.environ.get("PLANQK_INPUT_ROOT", "/var/input")   # /var/input in the sandbox
out = os.environ.get("OUTPUT_DIRECTORY", "/var/runtime/output")

def load(name):
    try:
        with open(os.path.join(root, name, name + ".json")) as fh:
            return json.load(fh)
    except OSError:
        return {}

data, params = load("data"), load("params")
if "pidfile" in data:
    with open(data["pidfile"], "w") as fh:
        fh.write(str(os.getpid()))
for item in data.get("interim", []):
    print("PlanQK:Job:InterimResult: " + json.dumps(item), flush=True)
print("user output", flush=True)
for line in data.get("stderr", []):
    print(line, file=sys.stderr, flush=True)
for name, text in data.get("files", {}).items():
    os.makedirs(os.path.dirname(os.path.join(out, name)), exist_ok=True)
    with open(os.path.join(out, name), "w") as fh:
        fh.write(text)
for name, target in data.get("symlinks", {}).items():
    os.symlink(target, os.path.join(out, name))
time.sleep(data.get("sleep", 0))
if "raise" in data:
    print("Traceback (most recent call last):\nValueError: " + data["raise"], file=sys.stderr)
    sys.exit(1)
if "output_json" in data:             # the v2 runtime: the result in output.json, no block on stdout
    with open(os.path.join(out, "output.json"), "w") as fh:
        json.dump(data["output_json"], fh)
    sys.exit(0)
if data.get("none"):
    print()
    sys.exit(0)
if "error" in data:
    value, code = {"code": "E_TEST", "detail": data["error"]}, 1
else:
    value, code = {"metadata": None, "result": {"params": params, "sum": sum(data.get("values", []))}}, 0
print()
print("PlanQK:Job:MultilineResult")
print(json.dumps(value, indent=2, sort_keys=True))
print("PlanQK:Job:MultilineResult")
sys.exit(code)
'''
ENDED = ("SUCCEEDED", "FAILED", "CANCELLED")


def build_service(bps: Callable[..., Path], tmp_path: Path) -> BuiltOutput:
    """Build the RUNTIME service with a buildpack that makes it the default process."""
    bp = bps("test/runtime", build='''
mkdir -p "$CNB_LAYERS_DIR/py/bin"   # the interpreter from a launch layer, as on a run image
ln -s "$(cat "$CNB_PLATFORM_DIR/env/CNBSIM_BASE_PYTHON")" "$CNB_LAYERS_DIR/py/bin/python3"
printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/py.toml"
cat > "$CNB_LAYERS_DIR/launch.toml" <<'TOML'
[[processes]]
type = "web"
command = ["python3", "job.py"]
default = true
TOML
''')
    app = tmp_path / "svc"
    app.mkdir()
    (app / "job.py").write_text(RUNTIME)
    # host paths, so that most tests serve it without the sandbox; the sandbox test serves it in one
    cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out", sandbox="never")
    return BuiltOutput.open(tmp_path / "out")


class Client:
    """JSON over HTTP to a server on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
             timeout: float = 30) -> tuple[int, Any]:
        status, payload = self.fetch(method, path, body, raw, timeout)
        return status, json.loads(payload)

    def fetch(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
              timeout: float = 30) -> tuple[int, bytes]:
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=payload, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def submit(self, data: Any = None, params: Any = None) -> dict:
        status, job = self.call("POST", "/", {"data": data, "params": params})
        assert status == 201, job
        return job

    def wait(self, job_id: str, timeout: float = 30) -> dict:
        """The job once it has ended (or as it is when `timeout` bounds the wait)."""
        deadline = time.monotonic() + timeout
        while True:
            status, job = self.call("GET", f"/{job_id}")
            assert status == 200
            if job["status"] in ENDED or time.monotonic() > deadline:
                return job
            time.sleep(0.05)

    def wait_started(self, job_id: str, timeout: float = 30) -> dict:
        """The job once it is no longer PENDING."""
        deadline = time.monotonic() + timeout
        while True:
            status, job = self.call("GET", f"/{job_id}")
            assert status == 200
            if job["status"] != "PENDING" or time.monotonic() > deadline:
                return job
            time.sleep(0.02)

    def raw(self, data: bytes, *, read_timeout: float = 30, close_write: bool = False) -> tuple[int | None, Any]:
        """Send bytes on a fresh connection; (status, JSON body) of the answer, (None, None) if there is none."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=read_timeout) as conn:
            conn.sendall(data)
            if close_write:
                conn.shutdown(socket.SHUT_WR)
            return parse_response(receive_all(conn))


def without_links(result: dict) -> dict:
    """A result as the service returned it, without the _links and _embedded the server adds."""
    return {k: v for k, v in result.items() if k not in ("_links", "_embedded")}


def receive_all(conn: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def parse_response(answer: bytes) -> tuple[int | None, Any]:
    if not answer:
        return None, None
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else None


@contextmanager
def serving(output: BuiltOutput, sandbox_mode: str = "never", **options: Any) -> Iterator[Client]:
    """serve() in a thread on a free port; stopped (and checked to return 0) afterwards."""
    ports: list[int] = []
    started, stop, returned = threading.Event(), threading.Event(), []

    def ready(port: int) -> None:
        ports.append(port)
        started.set()

    thread = threading.Thread(target=lambda: returned.append(
        serve(output, port=0, sandbox_mode=sandbox_mode, ready=ready, stop=stop, **options)), daemon=True)
    thread.start()
    assert started.wait(30), "the server did not start"
    try:
        yield Client(ports[0])
    finally:
        stop.set()
        thread.join(30)
    assert returned == [0]


@contextmanager
def cli_serving(output: BuiltOutput, log: Path, *options: str) -> Iterator[tuple[Client, subprocess.Popen]]:
    """`cnbsim serve OUTPUT --port 0 OPTIONS` as a process (its log in `log`); stopped with SIGTERM after."""
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "cnbsim.cli", "serve", str(output.path), "--port", "0",
                                 *options], stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            assert select.select([proc.stdout], [], [], 30)[0], "no banner"
            banner = [proc.stdout.readline()]
            while banner[-1] and not banner[-1].startswith("Press Ctrl-C"):
                banner.append(proc.stdout.readline())
            match = re.match(rf"Serving {re.escape(str(output.path))} on http://127\.0\.0\.1:(\d+)$",
                             banner[0].strip())
            assert match, banner
            yield Client(int(match.group(1))), proc
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(30)
            finally:
                proc.kill()
                proc.stdout.close()


def gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def read_pid(path: Path, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError(f"the job never wrote {path}")
