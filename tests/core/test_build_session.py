"""One namespace per build (cnbsim.session): the runs of a build share it as a pack build's container
is shared, and each run's processes still end with it, whatever the run does to the runner."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

import cnbsim
from cnbsim import sandbox
from cnbsim.errors import BuildError
from cnbsim.platform import Isolation, Platform
from cnbsim.session import Session
from tests.core.test_build_namespace import _processes_with

pytestmark = pytest.mark.bwrap


def _token() -> str:
    return f"{uuid.uuid4().int % 10**6}.{os.getpid()}"      # a `sleep` argument no other process has


def test_a_daemon_of_bin_detect_is_gone_before_the_next_run_starts(app, bps, tmp_path):
    token = _token()
    bp = bps("test/daemon",
             detect=f"setsid sleep 7{token} </dev/null >/dev/null 2>&1 &\necho $! > /tmp/daemon.pid",
             build='pid=$(cat /tmp/daemon.pid)\n'
                   'if [ -d "/proc/$pid" ] && grep -q "sleep" "/proc/$pid/cmdline"; then echo alive; else echo gone; fi\n'
                   'ls /cnb/buildpacks')
    other = bps("test/other")
    result = cnbsim.build(app, buildpacks=[bp, other], output=tmp_path / "out")
    seen = result.output_of("test/daemon").split()
    # the run's /tmp is the build's, as in a pack build's container: the pid file is there ...
    assert seen[0] == "gone"
    # ... and the builder's buildpacks are under /cnb/buildpacks, as a builder image has them
    assert set(seen[1:]) == {"test_daemon", "test_other"}
    assert _processes_with(token) == []


def test_a_buildpack_that_kills_its_parent_still_leaves_no_process(app, bps, tmp_path):
    token = _token()
    # its bin/detect starts two daemons, then kills the process that would clean up after it
    bps("test/escape", detect=f"setsid sleep 8{token} </dev/null >/dev/null 2>&1 &\necho $! > /tmp/d1\n"
                                       f"(sleep 9{token} </dev/null >/dev/null 2>&1 & echo $! > /tmp/d2)\n"
                                       "kill -9 $PPID\nsleep 5\necho survived")
    bps("test/check", build='for f in /tmp/d1 /tmp/d2; do pid=$(cat $f)\n'
                                     '  if grep -qs sleep "/proc/$pid/cmdline"; then echo alive; else echo gone; fi\ndone')
    builder = bps.builder([[("test/escape", "1.0", True), ("test/check", "1.0")]])
    result = cnbsim.build(app, builder=builder, output=tmp_path / "out")
    assert [el.id for el in result.group] == ["test/check"]
    run = result.detect.runs["test/escape@1.0"]
    assert run.code == -9 and "survived" not in run.output
    assert result.output_of("test/check").split() == ["gone", "gone"]
    assert _processes_with(token) == []


def test_a_run_the_session_cannot_take_runs_in_a_namespace_of_its_own(app, bps, tmp_path):
    # 250 kB of environment is more than one message to the session's runner holds
    big = {f"BIG_{i}": "x" * 100_000 for i in range(3)}
    bp = bps("test/big", build='echo "${#BIG_0} ${#BIG_2} $(id -u) $CNB_LAYERS_DIR"')
    result = cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out", env=big)
    assert result.output_of("test/big").split() == ["100000", "100000", "1000", "/layers/test_big"]


def test_an_executable_with_a_bad_interpreter_line_is_one_clear_error(app, bps, tmp_path):
    bp = bps("test/shebang")
    (bp / "bin" / "build").write_text("#!/no/such/interpreter\necho hi\n")
    with pytest.raises(BuildError) as err:
        cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out")
    assert "cannot execute" in str(err.value) and "check its #! line" in str(err.value)


def test_a_killed_session_ends_its_runs_with_a_clear_error(tmp_path):
    root = tmp_path / "scratch"
    for name in ("workspace", "layers", "platform", "scratch"):
        (tmp_path / name).mkdir(exist_ok=True)
    platform = Platform(app_dir=tmp_path / "workspace", platform_dir=tmp_path / "platform",
                        layers_dir=tmp_path / "layers", isolation=Isolation(), scratch_root=root)
    with Session(platform.session_view([])) as session:
        proc = session.spawn(["/bin/sh", "-c", "echo started; exec sleep 30"], {"PATH": "/usr/bin:/bin"}, "/workspace")
        assert proc.stdout.readline() == b"started\n"
        os.killpg(session._proc.pid, 9)
        assert proc.wait(timeout=10) == -9 and session.gone
    assert proc.poll() == -9


def test_the_session_view_holds_what_every_run_sees(tmp_path):
    for name in ("workspace", "layers", "platform", "scratch"):
        (tmp_path / name).mkdir()
    platform = Platform(app_dir=tmp_path / "workspace", platform_dir=tmp_path / "platform",
                        layers_dir=tmp_path / "layers", isolation=Isolation(), scratch_root=tmp_path / "scratch")
    view = platform.session_view([])
    targets = {b.target: b for b in view.binds}
    assert targets["/workspace"].writable and targets["/layers"].writable and not targets["/platform"].writable
    assert targets["/tmp/scratch"].source == str(tmp_path / "scratch")
    # a run's scratch dir inside the scratch root is shown under that root's bind
    assert platform.shown(tmp_path / "scratch" / "run-1" / "plan.toml", scratch=tmp_path / "scratch" / "run-1") \
        == "/tmp/scratch/run-1/plan.toml"
    assert sandbox.Root.BUILD is view.root


def test_a_runner_that_does_not_answer_does_not_hang_the_build(app, bps, tmp_path, monkeypatch):
    # (a buildpack cannot stop the runner, the namespace's init: see the test of pid 1 below; a runner
    # that does not answer, e.g. on a machine under extreme load, must still not hang the build)
    import cnbsim.session
    (tmp_path / "runner").mkdir()
    (tmp_path / "runner" / "silent_runner.py").write_text("import time\ntime.sleep(60)\n")
    silent = "/mnt/runner/silent_runner.py"        # where the namespace shows it (a volume of the build)
    monkeypatch.setattr(cnbsim.session, "RUNNER", silent)
    monkeypatch.setattr(cnbsim.session, "START_TIMEOUT", 1.0)
    first = bps("test/first", build='echo "first as $(id -u) in $PWD"')
    second = bps("test/second", build='echo "second as $(id -u) in $PWD"')
    result = cnbsim.build(app, buildpacks=[first, second], output=tmp_path / "out",
                          volumes=(f"{tmp_path / 'runner'}:/mnt/runner",))
    # the runs had namespaces of their own, the same view
    assert result.output_of("test/first").strip() == "first as 1000 in /workspace"
    assert result.output_of("test/second").strip() == "second as 1000 in /workspace"
    assert [w for w in result.warnings if "did not start a run within 1s" in w]
    assert _processes_with(silent) == []


def test_a_run_that_stops_its_parent_still_times_out_and_ends(app, bps, tmp_path):
    token = _token()
    bp = bps("test/freeze", build=f"kill -STOP $PPID\nsleep 7{token}")
    with pytest.raises(BuildError, match="timed out"):
        cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out", build_timeout=1)
    assert _processes_with(token) == []


@pytest.mark.parametrize("file_name, printf_format, says", [
    ("FOO.override", r"a\0b", "FOO holds a NUL byte"),
    ("BAR=BAZ.override", "x", "'BAR=BAZ'"),
])
def test_an_env_no_process_can_be_given_is_one_clear_error(app, bps, tmp_path, file_name, printf_format, says):
    writer = bps("test/writer", build=f'mkdir -p "$CNB_LAYERS_DIR/l/env.build"\n'
                                      "printf '[types]\\nbuild = true\\n' > \"$CNB_LAYERS_DIR/l.toml\"\n"
                                      f"printf '{printf_format}' > \"$CNB_LAYERS_DIR/l/env.build/{file_name}\"")
    reader = bps("test/reader", build="echo ran")
    with pytest.raises(BuildError) as err:
        cnbsim.build(app, buildpacks=[writer, reader], output=tmp_path / "out", build_timeout=20)
    assert says in str(err.value) and "test_reader" in str(err.value.file)


def test_the_namespaces_init_is_the_runner_which_runs_cannot_stop_kill_or_trace(app, bps, tmp_path):
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no /usr/bin/python3 to try ptrace with")
    bp = bps("test/init", build=f'''grep -q session_runner /proc/1/cmdline && echo "init: runner"
kill -STOP 1; kill -KILL 1; sleep 0.2
echo "state: $(cut -d ' ' -f 3 /proc/1/stat)"
{python} -c 'import ctypes; libc = ctypes.CDLL(None, use_errno=True); r = libc.ptrace(16, 1, 0, 0); print("ptrace:", r, ctypes.get_errno())'
readlink /proc/1/fd/0 >/dev/null 2>&1 && echo "fds: readable" || echo "fds: denied"''')
    after = bps("test/after", build="echo after ran")
    result = cnbsim.build(app, buildpacks=[bp, after], output=tmp_path / "out")
    seen = result.output_of("test/init").splitlines()
    assert seen[0] == "init: runner"
    assert seen[1] in ("state: S", "state: R")
    assert seen[2] == "ptrace: -1 1"        # EPERM
    assert seen[3] == "fds: denied"
    assert result.output_of("test/after").strip() == "after ran"
