"""`cnbsim run --publish` (a web process reached from the host, as `docker run -p`) and `--shell`
(a command of one's own with the launch env, as `docker run --entrypoint launcher`)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import cnbsim
from cnbsim.errors import ConfigError
from cnbsim.runner import parse_publish

SERVER = r'''import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from %s as %d" % (os.getcwd(), os.getuid())).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
'''


@pytest.fixture
def web_build(bps, tmp_path):
    bp = bps("test/web", build=f'''
mkdir -p "$CNB_LAYERS_DIR/py/bin"
ln -s "$(cat "$CNB_PLATFORM_DIR/env/CNBSIM_BASE_PYTHON")" "$CNB_LAYERS_DIR/py/bin/python3"
printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/py.toml"
cat > "$CNB_LAYERS_DIR/py/server.py" <<'PY'
{SERVER}
PY
printf '[[processes]]\\ntype = "web"\\ncommand = ["python3", "/layers/test_web/py/server.py"]\\ndefault = true\\n' \\
  > "$CNB_LAYERS_DIR/launch.toml"
''')
    app = tmp_path / "app"
    app.mkdir()
    return cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out")


def _start(output, *args: str) -> tuple[subprocess.Popen, str]:
    """`cnbsim run OUTPUT ARGS` in the background, and the URL it prints once the process listens."""
    proc = subprocess.Popen([sys.executable, "-m", "cnbsim.cli", "run", str(output), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"is published at (http://127\.0\.0\.1:\d+)", line)
        if found:
            return proc, found.group(1)
    proc.wait()
    raise AssertionError(f"no address printed; exit {proc.returncode}")


def _closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError:
            return True
        time.sleep(0.05)
    return False


def _descendants_named(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and name in open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace"):
                found.append(int(entry))
        except OSError:
            pass
    return found


@pytest.mark.bwrap
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_published_web_process_answers_and_nothing_outlives_the_run(web_build, stop):
    proc, url = _start(web_build.output, "--publish", "8080", "-e", "PORT=8080")
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.read() == b"hello from /workspace as 1000"
        assert _descendants_named("/layers/test_web/py/server.py")
    finally:
        proc.send_signal(stop)
        code = proc.wait(timeout=20)
    assert code == 128 + stop
    assert _closed(url)                                              # the host port is released (pasta ended)
    assert not _descendants_named("/layers/test_web/py/server.py")   # the server is gone, no orphan


@pytest.mark.bwrap
def test_publish_at_a_given_host_port(web_build):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    proc, url = _start(web_build.output, "--publish", f"{free}:8080", "-e", "PORT=8080")
    try:
        assert url == f"http://127.0.0.1:{free}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_publish_with_network_none_is_refused(web_build):
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "run", str(web_build.output), "--publish", "8080",
                          "--network", "none"], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "a port cannot be published with --network none" in res.stderr
    assert "Traceback" not in res.stderr


def test_shell_runs_a_command_with_the_launch_env(web_build):
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "run", str(web_build.output), "--shell",
                          'command -v python3; echo "$PWD"; exit 4'], capture_output=True, text=True, timeout=60)
    assert res.returncode == 4, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].endswith("/test_web/py/bin/python3")             # the launch layer's bin is on PATH
    assert lines[1] == str(web_build.workspace) or lines[1] == "/workspace"


def test_shell_takes_no_process_and_no_args(web_build):
    res = subprocess.run([sys.executable, "-m", "cnbsim.cli", "run", str(web_build.output), "--shell", "true",
                          "--", "x"], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "--shell runs a command instead of a process" in res.stderr


@pytest.mark.parametrize("value", ["abc", "0", "70000", "1:2:3", "10.0.0.1:80:80", ":"])
def test_bad_publish_values_are_one_clear_error(value):
    with pytest.raises(ConfigError, match="is not PORT or HOSTPORT:PORT"):
        parse_publish(value)


def test_publish_values_as_docker_reads_them():
    assert parse_publish("9000:8080") == (9000, 8080)
    assert parse_publish("127.0.0.1:9000:8080") == (9000, 8080)
    host, inside = parse_publish("8080")
    assert inside == 8080 and 0 < host < 65536                       # a free host port
