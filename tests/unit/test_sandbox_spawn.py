"""sandbox.spawn when bwrap ends before the command starts: tried once more, then one clear error."""

from __future__ import annotations

import os
import time

import pytest

from cnbsim import sandbox
from cnbsim.errors import ConfigError


def _ends_at_once(monkeypatch, runs: list[int]) -> None:
    def command(view, argv):
        runs.append(1)
        return ["sh", "-c", "exit 7"], []   # takes the place of bwrap: gone before it is released

    def attach(info_fd: int, ports=()) -> tuple[str, int]:
        time.sleep(0.3)                      # the network is attached only after it ended
        return "", 0
    monkeypatch.setattr(sandbox, "command", command)
    monkeypatch.setattr(sandbox, "_attach_pasta", attach)


def test_a_sandbox_that_ends_before_its_process_starts_is_a_clear_error_after_one_retry(monkeypatch):
    runs: list[int] = []
    _ends_at_once(monkeypatch, runs)
    view = sandbox.View(binds=(), cwd="/", network=sandbox.Network.BRIDGE)
    with pytest.raises(ConfigError, match="ended with exit status 2 before the process started") as info:
        sandbox.spawn(view, ["true"], env={})
    assert len(runs) == 2
    assert info.value.field == "--network"


def test_an_interpreter_reached_through_another_venv_binds_every_prefix_on_the_way(tmp_path):
    # a venv made from a venv (Python 3.10's `python -m venv` inside one): python -> python3.10 ->
    # <outer venv>/bin/python3.10 -> <base>/bin/python3.10; a hop left out dangles in the sandbox
    base, outer, inner = (tmp_path / n for n in ("base", "outer", "inner"))
    for prefix in (base, outer, inner):
        (prefix / "bin").mkdir(parents=True)
    (base / "bin" / "python3.10").write_text("")
    (outer / "bin" / "python3.10").symlink_to(base / "bin" / "python3.10")
    (inner / "bin" / "python3.10").symlink_to(outer / "bin" / "python3.10")
    (inner / "bin" / "python").symlink_to("python3.10")
    assert sandbox.interpreter_paths([str(inner / "bin" / "python")]) == [str(inner), str(outer), str(base)]


def test_a_host_executable_in_a_run_image_s_exec_dir_is_shown_by_that_dir_not_mounted_into_it():
    # a launch layer links /usr/bin/python3: bwrap cannot mount a file into the run root's read-only
    # staged /usr/bin ("Can't create file at /usr/bin/python3"), so the staged dir holds it
    exec_dir = "/usr/bin"
    base = sandbox._run_image_executables().get(exec_dir, set())
    name = next(n for n in sorted(os.listdir(exec_dir))
                if n not in base and os.path.isfile(f"{exec_dir}/{n}") and not os.path.islink(f"{exec_dir}/{n}"))
    exe = target = f"{exec_dir}/{name}"     # a host tool no run image has
    plain, _ = sandbox.command(sandbox.View(binds=(), cwd="/", root=sandbox.Root.RUN), ["true"])
    assert not os.path.lexists(os.path.join(plain[plain.index(exec_dir) - 1], name))
    view = sandbox.View(binds=(sandbox.Bind(target, target),), cwd="/", root=sandbox.Root.RUN)
    args, _ = sandbox.command(view, ["true"])
    mounted = [args[i + 2] for i, a in enumerate(args) if a in ("--ro-bind", "--bind")]
    assert target not in mounted
    staged = args[args.index(exec_dir) - 1]
    assert os.path.lexists(os.path.join(staged, os.path.basename(exe)))


def test_listening_reads_the_namespace_s_socket_table():
    import socket
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        assert not sandbox.listening(port)
        server.listen(1)
        assert sandbox.listening(port)
        assert sandbox.listening(port, os.getpid())
