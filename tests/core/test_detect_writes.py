"""A bin/detect that writes to the app dir (buildpack.md, Phase #2: Detection: it MAY only read it):
warned of, in `result.warnings`, and an error with `strict` / `--strict`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cnbsim
from cnbsim.errors import DetectError


def writer(root: Path, detect_body: str) -> Path:
    bp = root / "writer"
    (bp / "bin").mkdir(parents=True)
    (bp / "buildpack.toml").write_text('api = "0.10"\n[buildpack]\nid = "t/writer"\nversion = "1"\n')
    (bp / "bin" / "detect").write_text(f"#!/bin/sh\n{detect_body}\nexit 0\n")
    (bp / "bin" / "build").write_text("#!/bin/sh\nexit 0\n")
    for f in ("detect", "build"):
        (bp / "bin" / f).chmod(0o755)
    return bp


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    (path / "src").mkdir(parents=True)
    (path / "src" / "main.txt").write_text("main\n")
    (path / "old.txt").write_text("old\n")
    return path


def test_a_detect_that_writes_is_warned_of_and_its_files_reach_the_output(app, tmp_path):
    bp = writer(tmp_path, "echo x > detected.txt; echo changed >> src/main.txt; rm old.txt")
    result = cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out")
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert warning.startswith("bin/detect changed the app dir")
    assert "added detected.txt, removed old.txt, changed src/main.txt" in warning
    assert warning in result.log
    assert (result.workspace / "detected.txt").is_file()          # as in the image
    assert (app / "old.txt").is_file()                             # the app itself is never touched


def test_a_detect_that_only_reads_gives_no_warning(app, tmp_path):
    result = cnbsim.build(app, buildpacks=[writer(tmp_path, "cat src/main.txt > /dev/null")],
                          output=tmp_path / "out")
    assert result.warnings == ()


def test_detect_alone_reports_it_too(app, tmp_path):
    detected = cnbsim.detect(app, buildpacks=[writer(tmp_path, "mkdir -p cache/x")])
    assert detected.warnings == ("bin/detect changed the app dir, and what it writes there ends up in the image: "
                                 "added cache, added cache/x",)


def test_many_changes_are_counted_not_listed(app, tmp_path):
    detected = cnbsim.detect(app, buildpacks=[writer(tmp_path, "for i in 1 2 3 4 5 6 7 8; do : > f$i; done")])
    assert detected.warnings[0].endswith("added f1, added f2, added f3, added f4, added f5 and 3 more")


def test_strict_makes_it_an_error_and_writes_no_output(app, tmp_path):
    bp = writer(tmp_path, ": > detected.txt")
    with pytest.raises(DetectError) as failed:
        cnbsim.build(app, buildpacks=[bp], output=tmp_path / "out", strict=True)
    assert failed.value.exit_code == 22
    assert "added detected.txt" in str(failed.value)
    assert not (tmp_path / "out").exists()


def test_cli_strict_exits_22_with_one_error_line(app, tmp_path):
    bp = writer(tmp_path, ": > detected.txt")
    done = subprocess.run([sys.executable, "-m", "cnbsim.cli", "build", str(app), "--buildpack", str(bp),
                           "--output", str(tmp_path / "out"), "--strict"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 22, done.stderr
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "bin/detect changed the app dir" in errors[0], done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    warned = subprocess.run([sys.executable, "-m", "cnbsim.cli", "build", str(app), "--buildpack", str(bp),
                             "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert warned.returncode == 0, warned.stderr
    assert "Warning: bin/detect changed the app dir" in warned.stdout + warned.stderr
