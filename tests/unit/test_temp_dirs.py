"""Temp dirs named after their cnbsim process: the next cnbsim removes those of a killed process, never others."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cnbsim import fs


def test_a_killed_process_s_temp_dirs_are_removed_and_a_running_one_s_are_kept(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f"cnbsim-build-{child.pid}-{fs.process_start_time(child.pid)}-abcd"
        mine = tmp_path / f"cnbsim-run-{os.getpid()}-{fs.process_start_time(os.getpid())}-efgh"
        for path in (alive, mine):
            (path / "workspace").mkdir(parents=True)
        (alive / "workspace" / "plan.toml").write_text("x")
        # another process's dir, its pid since reused (same pid, another start time), and one of a gone pid
        reused = tmp_path / f"cnbsim-detect-{os.getpid()}-1-ijkl"
        (reused / "env").mkdir(parents=True)
        (reused / "env" / "TOKEN").write_text("s3cret")
        assert fs.sweep_temp_dirs(tmp_path) == [reused]
        assert alive.is_dir() and mine.is_dir()
        child.send_signal(signal.SIGKILL)
        child.wait()
        time.sleep(0.01)
        assert fs.sweep_temp_dirs(tmp_path) == [alive]
        assert not alive.exists() and mine.is_dir()
    finally:
        child.kill()
        child.wait()


def test_names_not_of_cnbsim_s_shape_and_files_are_never_touched(tmp_path):
    for name in ("cnbsim-build-abc", "cnbsim-build-1-2", "other-1-2-x", "cnbsim-Build-1-2-x"):
        (tmp_path / name).mkdir()
    (tmp_path / "cnbsim-run-1-2-file").write_text("not a dir")
    (tmp_path / "target").mkdir()
    (tmp_path / "cnbsim-run-1-2-link").symlink_to(tmp_path / "target")
    assert fs.sweep_temp_dirs(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["cnbsim-build-abc", "cnbsim-build-1-2", "other-1-2-x", "cnbsim-Build-1-2-x", "cnbsim-run-1-2-file",
         "target", "cnbsim-run-1-2-link"])


def test_temp_dir_names_the_process(tmp_path, monkeypatch):
    monkeypatch.setattr(fs, "_SWEPT", [True])
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with fs.temp_dir("build") as made:
        assert Path(made).name.startswith(f"cnbsim-build-{os.getpid()}-{fs.process_start_time(os.getpid())}-")
    assert not Path(made).exists()


def test_cnbsim_s_cache_dirs_follow_xdg_cache_home_and_ignore_a_relative_one(monkeypatch, tmp_path):
    from cnbsim.buildpackage import default_store
    from cnbsim.cache import default_cache_dir
    from cnbsim.fs import cache_home
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_home() == tmp_path / "xdg" / "cnbsim"
    assert default_store() == tmp_path / "xdg" / "cnbsim" / "buildpackages"
    assert default_cache_dir(tmp_path / "app").parent == tmp_path / "xdg" / "cnbsim"
    # the XDG Base Directory Specification: a relative path is invalid and ignored
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_home() == tmp_path / "home" / ".cache" / "cnbsim"
