"""The README's "For buildpack authors" guide, run as a reader would: every block naming a `file=`
is written to that path of a fresh buildpack dir, the ported tests pass there (outside this
repository's config), and the `sh` block's commands succeed. The Rust and Go blocks are the
libcnb-test and occam originals the guide compares with; they need Docker and are not run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def guide_blocks() -> list[tuple[str, str, str]]:
    """(language, file= value or '', body) of each code block of the guide's section."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## For buildpack authors\n")
    end = text.index("\n## ", start + 1)
    blocks = []
    for lang, info, body in FENCE.findall(text[start:end]):
        found = re.search(r"file=(\S+)", info)
        blocks.append((lang, found.group(1) if found else "", body))
    return blocks


def test_every_block_of_the_guide_is_a_file_a_command_or_an_original():
    blocks = guide_blocks()
    kinds = {(lang, bool(name)) for lang, name, _ in blocks}
    assert kinds == {("toml", True), ("bash", True), ("html", True), ("python", True), ("sh", False),
                     ("rust", False), ("go", False)}


def test_the_guide_s_buildpack_and_tests_work_as_written(tmp_path):
    root = tmp_path / "my-buildpack"
    commands: list[str] = []
    for lang, name, body in guide_blocks():
        if name:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
            if body.startswith("#!"):
                path.chmod(0o755)
        elif lang == "sh":
            commands += [line for line in body.splitlines() if line.strip() and not line.startswith("#")]
    assert commands
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    for command in commands:
        argv = shlex.split(command)
        if argv[0] == "pytest":            # the reader's pytest is the one cnbsim is installed in
            argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *argv[1:]]
        done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        if argv[2:4] == ["pytest", "-p"]:
            assert "3 passed" in done.stdout, done.stdout
        if command.startswith("cnbsim run"):
            assert done.stdout.startswith("Python 3."), done.stdout
            assert done.stdout.splitlines()[1:] == ["runtime"], done.stdout
