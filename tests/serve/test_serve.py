"""`cnbsim serve` over a real socket, against a real build output whose process imitates the PlanQK runtime."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

import cnbsim
from cnbsim import sandbox
from cnbsim.errors import ConfigError
from cnbsim.output import BuiltOutput
from cnbsim.serve import serve

# What the job-template runtime does (planqk-commons planqk/commons/runtime), driven by fields of `data`.
RUNTIME = r'''import json, os, sys, time
root = os.environ.get("PLANQK_INPUT_ROOT", "/var/input")   # /var/input in the sandbox

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
time.sleep(data.get("sleep", 0))
if "raise" in data:
    print("Traceback (most recent call last):\nValueError: " + data["raise"], file=sys.stderr)
    sys.exit(1)
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
TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture
def output(bps, tmp_path) -> BuiltOutput:
    bp = bps("test/runtime", build='''
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
    cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out")
    return BuiltOutput.open(tmp_path / "out")


class Client:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=payload, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def submit(self, data: Any = None, params: Any = None) -> dict:
        status, job = self.call("POST", "/", {"data": data, "params": params})
        assert status == 201, job
        return job

    def wait(self, job_id: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, job = self.call("GET", f"/{job_id}")
            assert status == 200
            if job["status"] != "RUNNING" or time.monotonic() > deadline:
                return job
            time.sleep(0.05)


@contextmanager
def serving(output: BuiltOutput, sandbox_mode: str = "never") -> Iterator[Client]:
    """serve() in a thread on a free port; stopped (and checked to return 0) afterwards."""
    ports: list[int] = []
    started, stop, returned = threading.Event(), threading.Event(), []

    def ready(port: int) -> None:
        ports.append(port)
        started.set()

    thread = threading.Thread(target=lambda: returned.append(
        serve(output, port=0, sandbox_mode=sandbox_mode, ready=ready, stop=stop)), daemon=True)
    thread.start()
    assert started.wait(10), "the server did not start"
    try:
        yield Client(ports[0])
    finally:
        stop.set()
        thread.join(15)
    assert returned == [0]


@pytest.fixture
def client(output) -> Iterator[Client]:
    with serving(output) as c:
        yield c


def gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def read_pid(path: Path, timeout: float = 5) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError(f"the job never wrote {path}")


def test_health_check_says_the_service_is_up(client):
    assert client.call("GET", "/") == (200, {"status": "Service is up and running"})


def test_submitted_job_succeeds_and_its_result_is_served(client):
    job = client.submit({"values": [1, 2, 3.5]}, {"shots": 10})
    assert job["status"] in ("PENDING", "RUNNING")
    assert client.wait(job["id"])["status"] == "SUCCEEDED"
    assert client.call("GET", f"/{job['id']}/result") == (
        200, {"metadata": None, "result": {"params": {"shots": 10}, "sum": 6.5}})


def test_job_has_camel_case_and_snake_case_time_fields(client):
    job = client.submit({"values": [1]})
    assert TIME.match(job["created_at"]) and job["createdAt"] == job["created_at"]
    assert job["ended_at"] is None and job["endedAt"] is None
    done = client.wait(job["id"])
    assert done["id"] == job["id"]
    for snake, camel in (("created_at", "createdAt"), ("started_at", "startedAt"), ("ended_at", "endedAt")):
        assert TIME.match(done[snake]) and done[camel] == done[snake]


def test_status_right_after_submit_is_running_and_does_not_block(client):
    job = client.submit({"sleep": 30})
    status, now = client.call("GET", f"/{job['id']}")      # answered while the job still sleeps ...
    assert (status, now["status"]) == (200, "RUNNING")     # ... (a blocking status would say SUCCEEDED)
    status, body = client.call("GET", f"/{job['id']}/result")
    assert status == 404 and body["detail"] == "Not found" and "not ended" in body["reason"]
    client.call("PUT", f"/{job['id']}/cancel")


def test_cancel_kills_the_job_process_and_marks_it_cancelled(client, tmp_path):
    pidfile = tmp_path / "job.pid"
    job = client.submit({"sleep": 30, "pidfile": str(pidfile)})
    pid = read_pid(pidfile)
    status, cancelled = client.call("PUT", f"/{job['id']}/cancel")
    assert (status, cancelled["status"]) == (200, "CANCELLED") and TIME.match(cancelled["endedAt"])
    assert gone(pid), f"job process {pid} still exists after cancel"
    assert client.call("GET", f"/{job['id']}")[1]["status"] == "CANCELLED"
    assert client.call("GET", f"/{job['id']}/result")[0] == 404


def test_cancelling_a_finished_job_leaves_it_as_it_is(client):
    job = client.submit({"values": [2]})
    done = client.wait(job["id"])
    assert client.call("PUT", f"/{job['id']}/cancel") == (200, done)
    assert client.call("GET", f"/{job['id']}/result")[0] == 200


def test_error_response_is_failed_and_its_result_is_still_served(client):
    job = client.submit({"error": "bad input"})
    assert client.wait(job["id"])["status"] == "FAILED"
    assert client.call("GET", f"/{job['id']}/result") == (200, {"code": "E_TEST", "detail": "bad input"})


def test_exception_is_failed_without_a_result_and_the_logs_show_why(client):
    job = client.submit({"raise": "boom"})
    assert client.wait(job["id"])["status"] == "FAILED"
    status, body = client.call("GET", f"/{job['id']}/result")
    assert status == 404 and "exit code 1" in body["reason"]
    status, logs = client.call("GET", f"/{job['id']}/logs")
    assert status == 200 and logs["exitCode"] == 1 and "ValueError: boom" in logs["stderr"]
    assert "user output" in logs["stdout"]


def test_none_returned_is_succeeded_without_a_result(client):
    job = client.submit({"none": True})
    assert client.wait(job["id"])["status"] == "SUCCEEDED"
    status, body = client.call("GET", f"/{job['id']}/result")
    assert status == 404 and "None" in body["reason"]


def test_interim_results_are_listed_and_last_gives_only_the_newest(client):
    job = client.submit({"interim": [{"step": 1}, {"step": 2}]})
    client.wait(job["id"])
    assert client.call("GET", f"/{job['id']}/interim-results") == (200, [{"step": 1}, {"step": 2}])
    assert client.call("GET", f"/{job['id']}/interim-results?last=true") == (200, [{"step": 2}])
    quiet = client.submit({})
    client.wait(quiet["id"])
    assert client.call("GET", f"/{quiet['id']}/interim-results") == (200, [])


def test_interim_results_are_served_while_the_job_runs(client):
    job = client.submit({"interim": [{"progress": 0.5}], "sleep": 30})
    deadline = time.monotonic() + 5
    while (items := client.call("GET", f"/{job['id']}/interim-results")[1]) == [] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert items == [{"progress": 0.5}]
    assert client.call("GET", f"/{job['id']}")[1]["status"] == "RUNNING"
    client.call("PUT", f"/{job['id']}/cancel")


@pytest.mark.parametrize("path", ["/{id}", "/{id}/result", "/{id}/interim-results", "/{id}/logs"])
def test_unknown_job_id_is_not_found(client, path):
    assert client.call("GET", path.format(id="no-such-job")) == (404, {"detail": "Not found"})


def test_cancel_of_an_unknown_job_is_not_found(client):
    assert client.call("PUT", "/no-such-job/cancel") == (404, {"detail": "Not found"})


@pytest.mark.parametrize("raw, message", [
    (b'{"data": [1, 2]}', "'data' must be a JSON object or null, not a list"),
    (b'{"params": "x"}', "'params' must be a JSON object or null, not a string"),
    (b'[{"data": {}}]', "the request body must be a JSON object"),
    (b'{"data": {', "not valid JSON"),
])
def test_invalid_submission_is_rejected_with_422_and_starts_nothing(client, raw, message):
    status, body = client.call("POST", "/", raw=raw)
    assert status == 422 and message in body["detail"]


def test_unknown_path_is_404_and_wrong_method_is_405(client):
    assert client.call("GET", "/a/b/c") == (404, {"detail": "Not found"})
    status, body = client.call("DELETE", "/")
    assert status == 405 and body["allowed"] == "GET, POST"
    assert client.call("GET", "/some-id/cancel")[0] == 405


def test_port_already_in_use_is_a_config_error_naming_the_port(output):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is already in use.*--port"):
            serve(output, port=port, sandbox_mode="never")


def test_stopping_the_server_cancels_running_jobs(output, tmp_path):
    pidfile = tmp_path / "job.pid"
    with serving(output) as c:
        c.submit({"sleep": 30, "pidfile": str(pidfile)})
        pid = read_pid(pidfile)
    assert gone(pid)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_cli_server_stops_cleanly_on_a_signal_and_kills_its_jobs(output, tmp_path, signum):
    pidfile = tmp_path / "job.pid"
    proc = subprocess.Popen([sys.executable, "-m", "cnbsim.cli", "serve", str(output.path), "--port", "0",
                             "--sandbox", "never"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert select.select([proc.stdout], [], [], 10)[0], "no banner"
        banner = [proc.stdout.readline()]
        while not banner[-1].startswith("Press Ctrl-C"):
            banner.append(proc.stdout.readline())
        match = re.match(rf"Serving {re.escape(str(output.path))} on http://127\.0\.0\.1:(\d+)$", banner[0].strip())
        assert match, banner
        assert any("GET  /{id}/result" in line for line in banner)
        Client(int(match.group(1))).submit({"sleep": 30, "pidfile": str(pidfile)})
        pid = read_pid(pidfile)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert gone(pid)


@pytest.mark.bwrap
def test_jobs_run_in_the_sandbox_and_outlive_the_request_that_started_them(output):
    reason = sandbox.available()
    if reason:
        pytest.skip(reason)
    with serving(output, "always") as c:
        job = c.submit({"values": [4, 5], "sleep": 0.5})   # still running when the request's thread has ended
        assert c.wait(job["id"])["status"] == "SUCCEEDED"
        assert c.call("GET", f"/{job['id']}/result")[1]["result"]["sum"] == 9
        long = c.submit({"sleep": 30})
        assert c.call("PUT", f"/{long['id']}/cancel")[1]["status"] == "CANCELLED"
        deadline = time.monotonic() + 5
        while (code := c.call("GET", f"/{long['id']}/logs")[1]["exitCode"]) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert code == -signal.SIGKILL, "the sandboxed job was not killed"
