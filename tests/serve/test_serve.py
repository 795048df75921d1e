"""`cnbsim serve` over a real socket, against a real build output whose process imitates the PlanQK runtime."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from servekit import cli_serving, gone, read_pid, serving, without_links

from cnbsim import sandbox
from cnbsim.errors import ConfigError
from cnbsim.serve import serve

TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def test_health_check_says_the_service_is_up(client):
    assert client.call("GET", "/") == (200, {"status": "Service is up and running"})


def test_submitted_job_is_pending_at_once_then_succeeds_and_its_result_is_served(client):
    job = client.submit({"values": [1, 2, 3.5]}, {"shots": 10})
    assert (job["status"], job["startedAt"], job["started_at"]) == ("PENDING", None, None)   # as planqk serve
    done = client.wait(job["id"])
    assert done["status"] == "SUCCEEDED"
    status, result = client.call("GET", f"/{job['id']}/result")
    links, embedded = result.pop("_links"), result.pop("_embedded")
    assert (status, result) == (200, {"metadata": None, "result": {"params": {"shots": 10}, "sum": 6.5}})
    assert links == {"self": {"href": f"{client.base}/{job['id']}/result"},
                     "status": {"href": f"{client.base}/{job['id']}"}}
    assert embedded == {"status": done}


def test_job_has_camel_case_and_snake_case_time_fields(client):
    job = client.submit({"values": [1]})
    assert TIME.match(job["created_at"]) and job["createdAt"] == job["created_at"]
    assert job["ended_at"] is None and job["endedAt"] is None and job["startedAt"] is None
    done = client.wait(job["id"])
    assert done["id"] == job["id"]
    for snake, camel in (("created_at", "createdAt"), ("started_at", "startedAt"), ("ended_at", "endedAt")):
        assert TIME.match(done[snake]) and done[camel] == done[snake]


def test_status_while_the_job_runs_is_running_and_does_not_block(client):
    job = client.submit({"sleep": 30})
    now = client.wait_started(job["id"])                     # answered while the job still sleeps ...
    assert now["status"] == "RUNNING" and TIME.match(now["startedAt"])   # ... (a blocking one: SUCCEEDED)
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
    status, result = client.call("GET", f"/{job['id']}/result")
    assert (status, without_links(result)) == (200, {"code": "E_TEST", "detail": "bad input"})


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
    with cli_serving(output, tmp_path / "serve.log", "--sandbox", "never") as (client, proc):
        client.submit({"sleep": 30, "pidfile": str(pidfile)})
        pid = read_pid(pidfile)
        proc.send_signal(signum)
        proc.wait(10)
    err = (tmp_path / "serve.log").read_text()
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert gone(pid)


@pytest.mark.bwrap
def test_jobs_run_in_the_sandbox_write_their_result_files_and_are_killed_on_cancel(output):
    reason = sandbox.available()
    if reason:
        pytest.skip(reason)
    with serving(output, "always") as c:
        job = c.submit({"values": [4, 5], "sleep": 0.5, "files": {"out.txt": "written in the sandbox"}})
        assert c.wait(job["id"])["status"] == "SUCCEEDED"  # it ran on after the request's thread had ended
        result = c.call("GET", f"/{job['id']}/result")[1]
        assert result["result"]["sum"] == 9 and "out.txt" in result["_links"]
        assert c.fetch("GET", f"/{job['id']}/result/out.txt") == (200, b"written in the sandbox")
        long = c.submit({"sleep": 30})
        c.wait_started(long["id"])
        assert c.call("PUT", f"/{long['id']}/cancel")[1]["status"] == "CANCELLED"
        deadline = time.monotonic() + 5
        while (code := c.call("GET", f"/{long['id']}/logs")[1]["exitCode"]) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert code == -signal.SIGKILL, "the sandboxed job was not killed"


def test_cli_max_body_and_api_options_reach_the_server(output, tmp_path):
    options = ("--sandbox", "never", "--max-body", "1k", "--api", "platform", "--jobs", "2")
    with cli_serving(output, tmp_path / "serve.log", *options) as (client, _proc):
        status, body = client.call("POST", "/", raw=b'{"data": {"x": "' + b"a" * 2000 + b'"}}')
        assert status == 413 and "over the limit of 1024 bytes" in body["detail"]
        assert client.call("GET", "/") == (200, [])


@pytest.mark.parametrize("args, message", [
    (["--max-body", "10X"], "argument --max-body: '10X' is not a size"),
    (["--max-body", "0"], "argument --max-body: '0' is not a size"),
    (["--jobs", "0"], "--jobs must be at least 1"),
])
def test_cli_rejects_bad_serve_options_with_one_line(output, args, message):
    run = subprocess.run([sys.executable, "-m", "cnbsim.cli", "serve", str(output.path), "--port", "0", *args],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and message in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_serve_help_documents_the_api_jobs_and_body_limit():
    run = subprocess.run([sys.executable, "-m", "cnbsim.cli", "serve", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0
    for words in ("--api {serve,platform}", "--jobs N", "--max-body SIZE", "201 PENDING", "/var/runtime/output"):
        assert words in run.stdout
