"""The PlanQK service SDK (`planqk-service-sdk` 2.x from the package index), unchanged, against `cnbsim serve`.

It is installed into a venv of its own; the test is marked `registry` (run with --cnb-registry) and
skips, saying why, when the index cannot be reached.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from servekit import cli_serving

UNREACHABLE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
               "Connection refused", "No matching distribution found", "ProxyError", "timed out")

# What a service author writes with the SDK: run, wait, result, logs, result files, cancel.
DRIVER = r'''import json, sys
from importlib.metadata import version
from planqk.service.client import PlanqkServiceClient

url, downloads, listing = sys.argv[1], sys.argv[2], sys.argv[3] == "platform"
client = PlanqkServiceClient(url, None, None)
out = {"version": version("planqk-service-sdk")}
execution = client.run(request={"data": {"values": [1, 2], "stderr": ["a warning"],
                                         "files": {"report.txt": "the report"}},
                                "params": {"shots": 3}})
out["submitted"] = execution.status
execution.wait_for_final_state(timeout=120, wait=0.2)
out["final"] = execution.status
out["times"] = [execution.created_at, execution.started_at, execution.ended_at]
result = execution.result()
out["result"] = {"metadata": result.metadata, "result": result.result}
out["logs"] = [[entry.severity, entry.message] for entry in execution.logs()]
out["files"] = execution.result_files()
execution.download_result_file("report.txt", downloads)
again = client.get_service_execution(execution.id)
out["again"] = [again.id, again.status]
slow = client.run(request={"data": {"sleep": 60}, "params": {}})
slow.cancel()
slow.refresh()
out["cancelled"] = slow.status
if listing:
    out["executions"] = [[e.id, e.status] for e in client.get_service_executions()]
    out["ids"] = [execution.id, slow.id]
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv's python with planqk-service-sdk 2.x installed from the package index."""
    venv = tmp_path_factory.mktemp("planqk-sdk") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    python = venv / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--retries", "1",
                          "--timeout", "30", "planqk-service-sdk>=2,<3"],
                         capture_output=True, text=True, timeout=900)
    if pip.returncode != 0:
        output = pip.stdout + pip.stderr
        if any(word in output for word in UNREACHABLE):
            pytest.skip(f"the package index is not reachable: {output.strip().splitlines()[-1]}")
        pytest.fail(f"pip install planqk-service-sdk failed:\n{output}")
    return python


def drive(python: Path, url: str, downloads: Path, api: str) -> dict:
    run = subprocess.run([str(python), "-c", DRIVER, url, str(downloads), api], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.registry  # skipped unless --cnb-registry (cnbsim's pytest plugin)
@pytest.mark.parametrize("api", ["serve", "platform"])
def test_the_planqk_service_sdk_runs_a_job_reads_its_result_logs_and_files_and_cancels(
        sdk_python, output, tmp_path, api):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with cli_serving(output, tmp_path / "serve.log", "--sandbox", "never", "--api", api) as (client, _proc):
        out = drive(sdk_python, client.base, downloads, api)
    assert out["version"].startswith("2.")
    assert out["submitted"] == "PENDING" and out["final"] == "SUCCEEDED"
    assert all(out["times"])
    assert out["result"] == {"metadata": None, "result": {"params": {"shots": 3}, "sum": 3}}
    assert ["INFO", "user output"] in out["logs"] and ["ERROR", "a warning"] in out["logs"]
    assert out["files"] == ["report.txt"]
    assert (downloads / "report.txt").read_text() == "the report"
    assert out["again"][1] == "SUCCEEDED"
    assert out["cancelled"] == "CANCELLED"
    if api == "platform":
        assert out["executions"] == [[out["ids"][0], "SUCCEEDED"], [out["ids"][1], "CANCELLED"]]
