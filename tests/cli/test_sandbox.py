"""`cnbsim run` as a container of the image: a run image's root, only launch layers, a throwaway
/workspace, the cnb user without capabilities, a process limit, docker run's networks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

import cnbsim

PROBE = r'''import ctypes, json, os, resource, shutil, socket, sys
out = {"cwd": os.getcwd(), "uid": os.getuid(), "gid": os.getgid(),
       "data": open("/var/input/data/data.json").read() if os.path.exists("/var/input/data/data.json") else None,
       "layers": sorted(os.listdir("/layers")),
       "ifaces": sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]),
       "default_route": any(l.split()[1] == "00000000" for l in open("/proc/net/route").readlines()[1:]),
       "caps": [l.split()[1] for l in open("/proc/self/status") if l.startswith(("CapEff", "CapBnd"))],
       "root": sorted(os.listdir("/root")) if os.path.isdir("/root") else None,
       "home": sorted(os.listdir("/home")),
       "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
       "tools": {t: shutil.which(t) for t in ("python3", "node", "gcc", "cc", "pip", "bash")}}
try:
    open("/etc/shadow").read()
    out["shadow"] = "readable"
except OSError as e:
    out["shadow"] = e.strerror
for name, path in (("workspace_write", "/workspace/written"), ("layers_write", "/layers/written")):
    try:
        open(path, "w").write("x")
        out[name] = "allowed"
    except OSError as e:
        out[name] = e.strerror
libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT, MS_BIND = 32, 4096
out["remount"] = "allowed" if libc.mount(b"none", b"/workspace", None, MS_REMOUNT | MS_BIND, None) == 0 \
    else os.strerror(ctypes.get_errno())
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
    out["host_port"] = "reached"
except OSError as e:
    out["host_port"] = type(e).__name__
print(json.dumps(out))
'''

# A launch layer that provides python3 (a link to the host interpreter, as the cpython stub
# makes one) and the probe; `launch` decides whether the run image gets the layer.
PYTHON_LAYER = '''
mkdir -p "$CNB_LAYERS_DIR/py/bin"
ln -s "$(cat "$CNB_PLATFORM_DIR/env/CNBSIM_BASE_PYTHON")" "$CNB_LAYERS_DIR/py/bin/python3"
printf '[types]\\nlaunch = {launch}\\nbuild = true\\n' > "$CNB_LAYERS_DIR/py.toml"
'''


@pytest.fixture
def probe_build(bps, tmp_path):
    bp = bps("test/probe", build=PYTHON_LAYER.format(launch="true") + f'''
cat > "$CNB_LAYERS_DIR/py/probe.py" <<'PY'
{PROBE}
PY
printf '[[processes]]\\ntype = "web"\\ncommand = ["python3", "/layers/test_probe/py/probe.py"]\\ndefault = true\\n' \\
  > "$CNB_LAYERS_DIR/launch.toml"
''')
    app = tmp_path / "app"
    app.mkdir()
    (app / "kept.txt").write_text("from the build")
    return cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out")


def run(output, *args: str, port: int = 1, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnbsim.cli", "run", str(output), *args, "--", str(port)],
                          capture_output=True, text=True, timeout=timeout)


def seen(res: subprocess.CompletedProcess) -> dict:
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.bwrap
def test_a_run_is_a_container_of_the_image(probe_build, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))          # a service on the host's loopback the run must not reach
    server.listen(1)
    (tmp_path / "d.json").write_text('{"x": 1}')
    try:
        s = seen(run(probe_build.output, "--sandbox", "always", "--data", str(tmp_path / "d.json"),
                     port=server.getsockname()[1]))
    finally:
        server.close()
    assert s["cwd"] == "/workspace"
    assert json.loads(s["data"]) == {"x": 1}
    assert s["layers"] == ["config", "test_probe"]
    assert (s["uid"], s["gid"]) == (1000, 1000)
    assert s["caps"] == ["0000000000000000", "0000000000000000"]
    assert s["shadow"] == "Permission denied"
    assert s["home"] == ["cnb"] and s["root"] in (None, [], [".pyenv"])
    assert s["remount"] == "Operation not permitted"
    assert s["workspace_write"] == "allowed"                 # a container's /workspace is writable ...
    assert s["layers_write"] == "Read-only file system"
    assert s["nproc"] > 0 and s["nproc"] != -1               # a process limit
    assert s["tools"]["python3"] == "/layers/test_probe/py/bin/python3"   # the image's, not the host's
    assert s["tools"]["bash"] and not any(s["tools"][t] for t in ("node", "gcc", "cc", "pip"))
    assert s["host_port"] == "ConnectionRefusedError"        # the host's loopback is not the run's
    assert not (probe_build.workspace / "written").exists()  # ... on a throwaway copy


@pytest.mark.bwrap
def test_the_default_network_is_a_bridge_with_outbound_routing(probe_build):
    from cnbsim import sandbox
    if sandbox.pasta_available():
        pytest.skip(sandbox.pasta_available())
    s = seen(run(probe_build.output))
    assert "lo" in s["ifaces"] and len(s["ifaces"]) >= 2     # an interface of its own besides loopback
    assert s["default_route"] is True                        # outbound traffic has a way out (via pasta)


@pytest.mark.bwrap
def test_network_none_and_host_as_docker_has_them(probe_build):
    assert seen(run(probe_build.output, "--network", "none"))["ifaces"] == ["lo"]
    host = sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:])
    assert seen(run(probe_build.output, "--network", "host"))["ifaces"] == host


@pytest.mark.bwrap
@pytest.mark.parametrize("launch", ["false", "true"])
def test_a_runtime_layer_without_launch_true_is_not_in_the_run_image(bps, tmp_path, launch):
    bp = bps("test/rt", api="0.8", build=PYTHON_LAYER.format(launch=launch) + '''
printf '[[processes]]\\ntype = "web"\\ncommand = "python3 -c \\\\"print(6 * 7)\\\\""\\ndefault = true\\n' \\
  > "$CNB_LAYERS_DIR/launch.toml"
''')
    app = tmp_path / "app"
    app.mkdir()
    built = cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out")
    assert built.layer("test/rt", "py").build      # the build itself had python3 from the layer
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "run", str(built.output)], capture_output=True,
                         text=True, timeout=120)
    if launch == "true":
        assert res.returncode == 0 and res.stdout.strip() == "42", res.stderr
    else:
        assert res.returncode == 127 and "python3: command not found" in res.stderr


@pytest.mark.bwrap
def test_sandbox_never_refuses_an_output_built_in_the_image_layout(probe_build):
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "run", str(probe_build.output), "--sandbox", "never"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "built in the image layout (/workspace, /layers): it runs only in the sandbox" in res.stderr


def test_sandbox_always_without_bwrap_is_a_clear_error(probe_build, tmp_path):
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "run", str(probe_build.output), "--sandbox", "always"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 1
    assert "--sandbox always, but bwrap (bubblewrap) is not installed" in res.stderr
