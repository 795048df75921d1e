"""`cnbsim run --sandbox`: the process sees an image's paths, cannot write the workspace or reach the network."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

import cnbsim

PROBE = r'''import json, os, socket, sys
out = {"cwd": os.getcwd(), "data": open("/var/input/data/data.json").read(),
       "layers": sorted(os.listdir("/layers")), "ifaces": sorted(l.split(":")[0].strip()
       for l in open("/proc/net/dev").readlines()[2:])}
try:
    open("/workspace/written", "w").write("x")
    out["workspace_write"] = "allowed"
except OSError as e:
    out["workspace_write"] = e.strerror
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
    out["host_port"] = "reached"
except OSError as e:
    out["host_port"] = type(e).__name__
print(json.dumps(out))
'''


@pytest.fixture
def probe_build(bps, tmp_path):
    bp = bps("test/probe", build=f'''
mkdir -p "$CNB_LAYERS_DIR/probe"
cat > "$CNB_LAYERS_DIR/probe/probe.py" <<'PY'
{PROBE}
PY
printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/probe.toml"
printf '[[processes]]\\ntype = "web"\\ncommand = ["python3", "/layers/test_probe/probe/probe.py"]\\ndefault = true\\n' \\
  > "$CNB_LAYERS_DIR/launch.toml"
''')
    app = tmp_path / "app"
    app.mkdir()
    return cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out")


@pytest.mark.bwrap
def test_sandboxed_run_sees_var_input_and_layers_and_is_cut_off(probe_build, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))          # a port on the host's loopback the sandbox must not reach
    server.listen(1)
    port = server.getsockname()[1]
    (tmp_path / "d.json").write_text('{"x": 1}')
    try:
        res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "run", str(probe_build.output), "--sandbox", "always",
                              "--data", str(tmp_path / "d.json"), "--", str(port)],
                             capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert json.loads(seen["data"]) == {"x": 1}
    assert "test_probe" in seen["layers"] and "config" in seen["layers"]
    assert seen["workspace_write"] == "Read-only file system"
    assert seen["ifaces"] == ["lo"]                    # no network interface but its own loopback
    assert seen["host_port"] == "ConnectionRefusedError"
    assert not (probe_build.workspace / "written").exists()


@pytest.mark.bwrap
def test_writable_workspace_is_an_explicit_choice(probe_build, tmp_path):
    (tmp_path / "d.json").write_text("{}")
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "run", str(probe_build.output), "--sandbox", "always",
                          "--writable-workspace", "--data", str(tmp_path / "d.json"), "--", "1"],
                         capture_output=True, text=True, timeout=60)
    assert json.loads(res.stdout.strip().splitlines()[-1])["workspace_write"] == "allowed"
    assert (probe_build.workspace / "written").exists()


def test_sandbox_always_without_bwrap_is_a_clear_error(probe_build, tmp_path, monkeypatch):
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "run", str(probe_build.output), "--sandbox", "always"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 1
    assert "--sandbox always, but bwrap (bubblewrap) is not installed" in res.stderr
