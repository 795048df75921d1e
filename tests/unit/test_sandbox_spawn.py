"""sandbox.spawn when bwrap ends before the command starts: tried once more, then one clear error."""

from __future__ import annotations

import time

import pytest

from cnbsim import sandbox
from cnbsim.errors import ConfigError


def _ends_at_once(monkeypatch, runs: list[int]) -> None:
    def command(view, argv):
        runs.append(1)
        return ["sh", "-c", "exit 7"], []   # takes the place of bwrap: gone before it is released

    def attach(info_fd: int) -> str:
        time.sleep(0.3)                      # the network is attached only after it ended
        return ""
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
