"""The endpoints the PlanQK service SDK calls (`/log`, result `_links`, result files, the list of
executions, cancel of a queued job), driven here with a plain HTTP client."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from servekit import read_pid, serving, without_links

from cnbsim.serve import Api


def test_log_lists_stdout_and_stderr_lines_as_log_entries_each_stream_in_order(client):
    job = client.submit({"stderr": ["careful"], "values": [1]})
    client.wait(job["id"])
    status, entries = client.call("GET", f"/{job['id']}/log")
    assert status == 200
    messages = [(e["severity"], e["message"]) for e in entries]
    stdout = [m for severity, m in messages if severity == "INFO"]
    assert stdout[0] == "user output" and stdout[-1] == "PlanQK:Job:MultilineResult"
    # stderr lines: their order among stdout's is not kept (two pipes, as with `docker logs`)
    assert [m for severity, m in messages if severity == "ERROR"] == ["careful"]
    times = [datetime.fromisoformat(e["timestamp"]) for e in entries]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)


def test_log_and_logs_of_an_unknown_job_are_404(client):
    assert client.call("GET", "/nope/log") == (404, {"detail": "Not found"})


def test_result_links_name_each_file_the_job_wrote_and_each_is_served(client):
    files = {"report.txt": "hello\n", "plots/a b.csv": "1,2\n"}
    job = client.submit({"values": [3], "files": files})
    client.wait(job["id"])
    status, result = client.call("GET", f"/{job['id']}/result")
    assert status == 200 and without_links(result)["result"]["sum"] == 3
    links = result["_links"]
    assert sorted(links) == ["plots/a b.csv", "report.txt", "self", "status"]
    for name, text in files.items():
        href = urlsplit(links[name]["href"])
        assert href.path.startswith(f"/{job['id']}/result/")
        assert client.fetch("GET", href.path) == (200, text.encode())
    assert client.call("GET", f"/{job['id']}/result/missing.txt")[0] == 404
    assert client.call("GET", f"/{job['id']}/result/../../etc/passwd")[0] == 404


def test_a_symlink_the_job_left_in_its_output_is_neither_listed_nor_followed(client, tmp_path):
    private = tmp_path / "private.txt"
    private.write_text("not for clients")
    job = client.submit({"values": [1], "symlinks": {"leak.txt": str(private), "output.json": str(private)}})
    client.wait(job["id"])
    status, result = client.call("GET", f"/{job['id']}/result")
    assert status == 200 and without_links(result)["result"]["sum"] == 1   # the block, not the link's target
    assert "leak.txt" not in result["_links"] and "output.json" not in result["_links"]
    status, body = client.fetch("GET", f"/{job['id']}/result/leak.txt")
    assert status == 404 and b"not for clients" not in body


def test_the_v2_runtimes_output_json_is_the_result(client):
    job = client.submit({"output_json": {"answer": 42}})
    assert client.wait(job["id"])["status"] == "SUCCEEDED"
    status, result = client.call("GET", f"/{job['id']}/result")
    assert (status, without_links(result)) == (200, {"answer": 42})
    assert "output.json" in result["_links"]


def test_a_job_with_files_but_no_result_block_still_has_a_result_with_its_links(client):
    job = client.submit({"none": True, "files": {"counts.json": "{}"}})
    client.wait(job["id"])
    status, result = client.call("GET", f"/{job['id']}/result")
    assert status == 200 and without_links(result) == {} and "counts.json" in result["_links"]


def test_the_embedded_status_is_the_jobs_final_state(client):
    job = client.submit({"error": "bad"})
    done = client.wait(job["id"])
    assert client.call("GET", f"/{job['id']}/result")[1]["_embedded"] == {"status": done}


def test_root_is_the_health_check_by_default_and_the_list_of_executions_with_api_platform(output):
    with serving(output) as c:
        assert c.call("GET", "/") == (200, {"status": "Service is up and running"})
    with serving(output, api=Api.PLATFORM) as c:
        assert c.call("GET", "/") == (200, [])
        first, second = c.submit({"values": [1]}), c.submit({"values": [2]})
        c.wait(first["id"]), c.wait(second["id"])
        listed = c.call("GET", "/")[1]
        assert [(j["id"], j["status"]) for j in listed] == [(first["id"], "SUCCEEDED"), (second["id"], "SUCCEEDED")]
        assert all(j["createdAt"] and j["startedAt"] and j["endedAt"] for j in listed)


def test_jobs_beyond_the_pool_wait_as_pending_and_a_cancelled_pending_job_never_starts(output, tmp_path):
    with serving(output, jobs=1) as c:
        first = c.submit({"sleep": 30, "pidfile": str(tmp_path / "first.pid")})
        read_pid(tmp_path / "first.pid")                 # the one slot is taken
        queued = c.submit({"values": [1], "pidfile": str(tmp_path / "queued.pid")})
        assert c.call("GET", f"/{queued['id']}")[1]["status"] == "PENDING"
        status, body = c.call("GET", f"/{queued['id']}/result")
        assert status == 404 and "not started" in body["reason"]
        cancelled = c.call("PUT", f"/{queued['id']}/cancel")[1]
        assert (cancelled["status"], cancelled["startedAt"]) == ("CANCELLED", None)
        c.call("PUT", f"/{first['id']}/cancel")         # frees the slot ...
        last = c.submit({"values": [5]})
        assert c.wait(last["id"])["status"] == "SUCCEEDED"   # ... the next job runs, the cancelled one did not
        assert not (tmp_path / "queued.pid").exists()
        assert c.call("GET", f"/{queued['id']}")[1]["status"] == "CANCELLED"
