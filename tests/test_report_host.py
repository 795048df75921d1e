"""The report names the host interpreter in `host`; goldens and layer digests do not depend on it."""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cnbsim.fs import tree_digest
from cnbsim.report import HostPython, comparable

PY311 = HostPython("/opt/py/3.11.7/bin/python3.11", "3.11.7")
PY313 = HostPython("/usr/bin/python3.13", "3.13.0")


def report_built_on(host: HostPython) -> dict:
    """What two builds of one app on two hosts report: the same but for the interpreter they exposed."""
    return {
        "schema": 1,
        "buildpacks": [{"id": "paketo-buildpacks/cpython", "layers": [{"metadata": {"cnbsim": {
            "host-python": host.path, "selected-version": "3.10.13"}}}],
            "plan": [{"name": "cpython", "metadata": {"version": "3.10.*"}}]}],
        "launch_env": {"web": {
            "PYTHONPATH": f"/layers/pip-install/packages/lib/python{host.xy}/site-packages",
            "PATH": f"/layers/poetry-install/poetry-venv/app-xS3fZVNL-py{host.xy}/bin"}},
        "labels": [{"key": "requires", "value": "python=3.10 python_version>=3.11 python:3.13-slim"}],
        "timings": {"total": 1.5},
        "host": host.to_report(),
    }


def test_the_report_records_the_host_interpreter_but_goldens_compare_equal_across_hosts():
    assert report_built_on(PY311)["host"] == {"python": "/opt/py/3.11.7/bin/python3.11", "python_version": "3.11.7"}
    assert comparable(report_built_on(PY311)) == comparable(report_built_on(PY313))


def test_goldens_hold_placeholders_for_the_host_and_keep_the_requested_and_selected_versions():
    view = comparable(report_built_on(PY311))
    assert "host" not in view and "timings" not in view
    bp = view["buildpacks"][0]
    assert bp["layers"][0]["metadata"]["cnbsim"] == {"host-python": "<host.python>", "selected-version": "3.10.13"}
    assert bp["plan"][0]["metadata"]["version"] == "3.10.*"
    assert view["launch_env"]["web"] == {
        "PYTHONPATH": "/layers/pip-install/packages/lib/python<host.python_xy>/site-packages",
        "PATH": "/layers/poetry-install/poetry-venv/app-xS3fZVNL-py<host.python_xy>/bin"}
    # an app's own version strings are not the host's, even where they spell the same X.Y
    assert view["labels"] == [{"key": "requires", "value": "python=3.10 python_version>=3.11 python:3.13-slim"}]


def test_a_report_without_host_is_compared_as_it_is_apart_from_timings():
    report = {"schema": 1, "processes": [], "timings": {"total": 1.0}}
    assert comparable(report) == {"schema": 1, "processes": []}


def venv_layer(root: Path, host: HostPython) -> Path:
    """A layer as the stubs make it on `host`: a link to the interpreter, site-packages, a pyvenv.cfg."""
    site = root / "lib" / f"python{host.xy}" / "site-packages"
    site.mkdir(parents=True)
    (site / "flask.cnbsim-stub").write_text("flask==3.1\n")
    (root / "bin").mkdir()
    (root / "bin" / "python").symlink_to(host.path)
    (root / "pyvenv.cfg").write_text(f"home = {Path(host.path).parent}\ninclude-system-site-packages = false\n"
                                     f"version = {host.xy}\n")
    return root


def test_a_layer_digest_does_not_depend_on_the_host_interpreter_but_on_the_layer(tmp_path: Path):
    on_311 = venv_layer(tmp_path / "a", PY311)
    on_313 = venv_layer(tmp_path / "b", PY313)
    assert tree_digest(on_311)[0] != tree_digest(on_313)[0]          # the raw digest (cache reuse) sees it
    assert tree_digest(on_311, host=PY311) == tree_digest(on_313, host=PY313)
    (on_313 / "lib" / "python3.13" / "site-packages" / "flask.cnbsim-stub").write_text("flask==3.2\n")
    assert tree_digest(on_311, host=PY311)[0] != tree_digest(on_313, host=PY313)[0]
    (on_313 / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.13\n")
    (on_313 / "lib" / "python3.13" / "site-packages" / "flask.cnbsim-stub").write_text("flask==3.1\n")
    assert tree_digest(on_311, host=PY311)[0] != tree_digest(on_313, host=PY313)[0]


_FRAGMENTS = [PY311.path.encode(), b"py", b"python", b"pypy", b"3.11", b"3.1", b"0", b"7", b".", b"/",
              b"lib/", b"\x00", b"\xff\xfe", "\u0661".encode(), b"site-packages", b"\n", b"x"]


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30))
@example([b"python", b"3.11"])
@example([b"pypy", b"3.11", b"."])
@example([b"py", b"3.11", b"7"])
@example([b"py", b"3.11", "\u0661".encode()])
@example([PY311.path.encode(), b"\xff\xfe", b"python", b"3.1"])
def test_neutral_bytes_is_neutral_on_the_decoded_text(parts):
    # neutral_bytes works on the bytes (decoding a large binary was the report's slowest part):
    # the same result as neutral() on the text, undecodable bytes kept as they are
    data = b"".join(parts)
    assert PY311.neutral_bytes(data) == PY311.neutral(
        data.decode("utf-8", errors="surrogateescape")).encode("utf-8", errors="surrogateescape")


def test_an_interpreters_version_is_asked_once_per_interpreter_file(tmp_path, monkeypatch):
    """The report asks the exposed interpreter its version in a process; cnbsim's cache dir keeps
    the answer for that file (path, inode, size, mtime), so that later builds need no process, and
    an interpreter replaced in place is asked again."""
    from cnbsim import report
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls = tmp_path / "calls"
    python = tmp_path / "bin" / "python3.12"
    python.parent.mkdir()

    def install(version: str) -> None:
        python.write_text(f'#!/bin/sh\necho x >> "{calls}"\necho "{version}"\n')
        python.chmod(0o755)

    def version() -> str:
        report._python_version.cache_clear()        # a new cnbsim process
        return report._python_version(str(python))

    install("3.12.1")
    assert version() == "3.12.1" and version() == "3.12.1"
    assert calls.read_text().count("x") == 1
    assert (tmp_path / "cache" / "cnbsim" / "python-versions.json").is_file()
    install("3.12.10")                               # upgraded in place: another size
    assert version() == "3.12.10"
    assert calls.read_text().count("x") == 2
    (tmp_path / "cache" / "cnbsim" / "python-versions.json").write_text("{not json")
    assert version() == "3.12.10"                    # a damaged cache is only a cache
    assert calls.read_text().count("x") == 3
