"""A corpus of hostile and careless inputs to the `cnbsim` command, and real signals sent to a build.

Each case sets up a small world (an app, buildpacks, a previous good output, the user's files),
runs one `cnbsim` command in-process and checks what a user would: no traceback, an exit code
from the documented table (never the internal-error code), one message that names the problem,
nothing outside the output changed, the previous output intact.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cnbsim.cli.main import EXIT_CODES, INTERNAL_ERROR, main
from cnbsim.output import BuiltOutput

SECRET = "s3cr3t-Zq9-value"


def _exe(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\nset -eu\n" + textwrap.dedent(body).lstrip("\n"))
    path.chmod(0o755)


def _buildpack(root: Path, bp_id: str, *, detect: str = "exit 0", build: str = "exit 0",
               toml: str | None = None) -> Path:
    bp = root / bp_id
    (bp / "bin").mkdir(parents=True, exist_ok=True)
    (bp / "buildpack.toml").write_text(toml if toml is not None else
                                       f'api = "0.10"\n[buildpack]\nid = "{bp_id}"\nversion = "1.0"\n')
    _exe(bp / "bin" / "detect", detect)
    _exe(bp / "bin" / "build", build)
    return bp


GOOD_BUILD = '''
mkdir -p "$1/web"; printf '[types]\\nlaunch = true\\n' > "$1/web.toml"; echo ok > "$1/web/v"
printf '[[processes]]\\ntype = "web"\\ncommand = ["echo", "hi"]\\ndefault = true\\n' > "$1/launch.toml"
'''


def _snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every entry under `root` but `skip`: its type and contents (or link target)."""
    out: dict[str, tuple] = {}
    skipped = {str(p) for p in skip}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skipped]
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            if path in skipped:
                continue
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    out[rel] = ("f", stat.S_IMODE(st.st_mode), hashlib.sha256(fh.read()).hexdigest())
            else:
                out[rel] = ("o", stat.S_IFMT(st.st_mode))
    return out


@dataclass
class World:
    """A user's directory: app/, buildpacks in bps/, a good output prev/, the user's own files."""

    root: Path
    app: Path
    bps: Path
    prev: Path
    bp: Path
    env: dict[str, str] = field(default_factory=dict)

    def p(self, rel: str) -> str:
        return str(self.root / rel)

    def build(self, *extra: str, output: str | None = None, bp: Path | None = None) -> list[str]:
        return ["build", str(self.app), "-b", str(bp or self.bp), "--output", str(self.prev) if output is None else output,
                "--cache-dir", self.p("cache"), *extra]


@pytest.fixture(scope="module")
def good_output(tmp_path_factory) -> Path:
    """One output built once per module (per xdist worker), copied into each world as its previous output."""
    root = tmp_path_factory.mktemp("good")
    app = root / "app"
    app.mkdir()
    (app / "main.py").write_text("print('hi')\n")
    bp = _buildpack(root / "bps", "good", build=GOOD_BUILD)
    assert main(["build", str(app), "-b", str(bp), "--output", str(root / "out"),
                 "--cache-dir", str(root / "cache")]) == 0
    return root / "out"


@pytest.fixture
def world(tmp_path, good_output, monkeypatch) -> World:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("print('hi')\n")
    (tmp_path / "thesis.tex").write_text("years of work\n")
    bp = _buildpack(tmp_path / "bps", "good", build=GOOD_BUILD)
    shutil.copytree(good_output, tmp_path / "prev", symlinks=True)
    return World(tmp_path, app, tmp_path / "bps", tmp_path / "prev", bp)


@dataclass(frozen=True)
class Case:
    """One hostile input: `setup` prepares the world and returns argv; `expect` is in the message."""

    name: str
    setup: Callable[[World], list[str]]
    expect: str | Callable[[World], str]
    codes: tuple[int, ...] = ()          # allowed exit codes (default: any non-zero one of the table)
    changes: tuple[str, ...] = ()        # paths (relative to the world) the command may change


CASES: list[Case] = []


def case(name: str, expect: str | Callable[[World], str], codes: tuple[int, ...] = (),
         changes: tuple[str, ...] = ()) -> Callable:
    def register(setup: Callable[[World], list[str]]) -> Callable:
        CASES.append(Case(name, setup, expect, codes, changes))
        return setup
    return register


def _mkdir(w: World, rel: str, files: dict[str, str] | None = None) -> Path:
    d = w.root / rel
    d.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    return d


# ---------------------------------------------------------------------------------------------
# Outputs that are not cnbsim's, or cannot be

@case("output-with-report-and-thesis", "not created by cnbsim")
def _(w):
    _mkdir(w, "p", {"report.json": "{}", "thesis.tex": "x"})
    return w.build(output=w.p("p"))


@case("output-legacy-layout", "rm -rf")
def _(w):
    _mkdir(w, "old", {"report.json": "{}", "layers/config/metadata.toml": ""})
    return w.build(output=w.p("old"))


@case("output-is-a-file", "not a directory")
def _(w):
    return w.build(output=w.p("thesis.tex"))


@case("output-under-a-file", "thesis.tex")
def _(w):
    return w.build(output=w.p("thesis.tex/out"))


@case("output-in-proc", "/proc/x")
def _(w):
    return w.build(output="/proc/x")


@case("output-dotdot-onto-the-apps-parent", "contains it")
def _(w):
    return w.build(output=w.p("a/.."))


@case("output-is-root", "root directory")
def _(w):
    return w.build(output="/")


@case("output-empty-string", "empty")
def _(w):
    return w.build(output="")


@case("output-name-too-long", "File name too long")
def _(w):
    return w.build(output=w.p("x" * 300))


@case("output-is-the-app", "contains it")
def _(w):
    return w.build(output=str(w.app))


@case("output-is-the-apps-parent", "contains it")
def _(w):
    return w.build(output=str(w.root))


@case("output-is-a-cache", "not a output")
def _(w):
    shutil.copytree(w.prev, w.root / "c", symlinks=True)
    (w.root / "c" / ".cnbsim-owned").write_text('{"owner": "cnbsim", "format": 1, "kind": "cache"}\n')
    return w.build(output=w.p("c"))


@case("output-symlink-to-user-dir", "not created by cnbsim")
def _(w):
    _mkdir(w, "docs", {"notes.txt": "mine"})
    (w.root / "link").symlink_to(w.root / "docs")
    return w.build(output=w.p("link"))


@case("output-marker-of-another-format", "not created by cnbsim")
def _(w):
    _mkdir(w, "m", {".cnbsim-owned": '{"owner": "cnbsim", "format": 99, "kind": "output"}', "data": "x"})
    return w.build(output=w.p("m"))


@case("output-marker-garbage", "not created by cnbsim")
def _(w):
    _mkdir(w, "g", {".cnbsim-owned": "\x00\xff garbage", "data": "x"})
    return w.build(output=w.p("g"))


@case("output-marker-is-a-list", "not created by cnbsim")
def _(w):
    _mkdir(w, "g", {".cnbsim-owned": "[1, 2]", "data": "x"})
    return w.build(output=w.p("g"))


@case("run-on-a-user-dir", "not a cnbsim build output")
def _(w):
    return ["run", w.p("bps")]


@case("export-into-user-dir", "not created by cnbsim")
def _(w):
    _mkdir(w, "oci", {"notes.txt": "mine"})
    return ["export", str(w.prev), "--oci", w.p("oci")]


@case("export-into-foreign-oci-layout", "refusing to replace it")
def _(w):
    _mkdir(w, "oci", {"oci-layout": '{"imageLayoutVersion": "1.0.0"}', "index.json": '{"manifests": []}'})
    return ["export", str(w.prev), "--oci", w.p("oci")]


@case("export-into-an-output", "not a oci-layout")
def _(w):
    return ["export", str(w.prev), "--oci", str(w.prev)]


@case("export-bad-tag", "tag")
def _(w):
    return ["export", str(w.prev), "--oci", w.p("oci"), "--tag", "bad tag!"]


def _exported(w: World, name: str) -> Path:
    assert main(["export", str(w.prev), "--oci", w.p(name)]) == 0
    return w.root / name


_INDEXES = {"list": "[1, 2]", "manifests-int": '{"manifests": 5}', "manifest-int": '{"manifests": [5]}',
            "digest-int": '{"manifests": [{"digest": 5}]}', "deep": "[" * 100_000, "binary": "\udcff",
            "digest-traversal": '{"manifests": [{"digest": "sha256:../../etc/passwd", "mediaType": '
                                '"application/vnd.oci.image.manifest.v1+json"}]}', "empty": ""}
for _name, _text in _INDEXES.items():
    def _run_image(w, t=_text):
        (_exported(w, "base") / "index.json").write_bytes(t.encode("utf-8", "surrogateescape"))
        return ["export", str(w.prev), "--oci", w.p("oci"), "--run-image", w.p("base")]
    case(f"run-image-index-{_name}", {"digest-traversal": "digest", "digest-int": "media type"}.get(_name, "index.json"),
         codes=(62,))(
        _run_image)

    def _update(w, t=_text):
        (_exported(w, "oci") / "index.json").write_bytes(t.encode("utf-8", "surrogateescape"))
        return ["export", str(w.prev), "--oci", w.p("oci")]
    if _name in ("list", "manifests-int", "deep", "binary", "empty"):
        case(f"oci-update-index-{_name}", "index.json", codes=(62,))(_update)


@case("run-image-blob-tampered", "does not match its digest", codes=(62,))
def _(w):
    base = _exported(w, "base")
    for blob in (base / "blobs" / "sha256").iterdir():
        if blob.stat().st_size < 4096:
            blob.write_text('{"layers": 5}')
    return ["export", str(w.prev), "--oci", w.p("oci"), "--run-image", w.p("base")]


@case("run-image-not-a-layout", "not an OCI image layout", codes=(62,))
def _(w):
    return ["export", str(w.prev), "--oci", w.p("oci"), "--run-image", str(w.app)]


@case("export-output-without-workspace", "workspace", codes=(62,))
def _(w):
    shutil.copytree(w.prev, w.root / "damaged", symlinks=True)
    shutil.rmtree(w.root / "damaged" / "workspace")
    return ["export", w.p("damaged"), "--oci", w.p("oci")]


@case("export-output-metadata-invalid", "metadata.toml", codes=(62,))
def _(w):
    shutil.copytree(w.prev, w.root / "damaged", symlinks=True)
    (w.root / "damaged" / "layers" / "config" / "metadata.toml").write_text("processes = 5\n")
    return ["export", w.p("damaged"), "--oci", w.p("oci")]


# ---------------------------------------------------------------------------------------------
# Caches

@case("cache-is-users-docs", "not created by cnbsim")
def _(w):
    _mkdir(w, "docs", {"notes.txt": "mine"})
    return w.build("--cache-dir", w.p("docs"))


@case("cache-is-the-app", "the app dir")
def _(w):
    return w.build("--cache-dir", str(w.app))


@case("cache-contains-the-app", "the app dir")
def _(w):
    return w.build("--cache-dir", str(w.root))


@case("cache-is-the-output", "the output")
def _(w):
    return w.build("--cache-dir", str(w.prev))


@case("cache-inside-the-output", "inside the output")
def _(w):
    return w.build("--cache-dir", str(w.prev / "cache"))


@case("cache-is-a-file", "not a directory")
def _(w):
    return w.build("--cache-dir", w.p("thesis.tex"))


@case("cache-legacy", "rm -rf")
def _(w):
    _mkdir(w, "oldcache", {"index.json": "{}", "layers/x/y": "z"})
    return w.build("--cache-dir", w.p("oldcache"))


@case("clear-cache-of-users-dir", "not created by cnbsim")
def _(w):
    _mkdir(w, "docs", {"notes.txt": "mine"})
    return w.build("--clear-cache", "--cache-dir", w.p("docs"))


@case("cache-index-is-a-list", "Output:", codes=(0,), changes=("prev", "cache"))
def _(w):
    assert main(w.build()) == 0
    (w.root / "cache" / "index.json").write_text("[1, 2]")
    return w.build()


@case("cache-index-deep", "Output:", codes=(0,), changes=("prev", "cache"))
def _(w):
    assert main(w.build()) == 0
    (w.root / "cache" / "index.json").write_text("[" * 100000)
    return w.build()


# ---------------------------------------------------------------------------------------------
# Flags

for _value in ("nan", "inf", "-inf", "-1", "0", "abc", "1e309", "", "0x10"):
    case(f"timeout-{_value or 'empty'}", "--timeout", codes=(2,))(lambda w, v=_value: w.build("--timeout", v))

for _pair, _expect in (("=x", "KEY=VALUE"), ("1BAD=x", "valid environment variable"),
                       ("CNBSIM_SURELY_UNSET_VAR", "not set in this shell"), ("A B=x", "valid environment"),
                       ("A\nB=x", "valid environment")):
    case(f"env-{_pair[:12]!r}", _expect)(lambda w, p=_pair: w.build("--env", p))


@case("env-file-missing", "env file not found")
def _(w):
    return w.build("--env-file", w.p("nope.env"))


@case("env-file-is-a-dir", "is a directory")
def _(w):
    return w.build("--env-file", str(w.app))


@case("env-file-binary", "not UTF-8")
def _(w):
    (w.root / "bin.env").write_bytes(b"A=\xff\xfe\x00")
    return w.build("--env-file", w.p("bin.env"))


@case("env-file-dev-zero", "larger than")
def _(w):
    return w.build("--env-file", "/dev/zero")


@case("env-file-bad-line", "KEY=VALUE")
def _(w):
    (w.root / "x.env").write_text("GOOD=1\njust words\n")
    return w.build("--env-file", w.p("x.env"))


@case("installer-unknown", "--installer", codes=(2,))
def _(w):
    return w.build("--installer", "bogus")


@case("wheelhouse-missing", "wheelhouse")
def _(w):
    return w.build("--installer", "real", "--wheelhouse", w.p("nowheels"))


@case("builder-missing", "not found")
def _(w):
    return ["build", str(w.app), "--builder", w.p("nope.toml"), "--output", str(w.prev)]


@case("builder-is-a-dir", "directory")
def _(w):
    return ["build", str(w.app), "--builder", str(w.app), "--output", str(w.prev)]


@case("buildpack-missing-dir", "nope")
def _(w):
    return w.build(bp=w.root / "nope")


@case("buildpack-unknown-id", "ghost")
def _(w):
    return ["build", str(w.app), "-b", "ghost@9.9", "--output", str(w.prev)]


@case("unknown-verb", "invalid choice", codes=(2,))
def _(w):
    return ["frobnicate"]


@case("unknown-option", "unrecognized", codes=(2,))
def _(w):
    return w.build("--frobnicate")


@case("report-into-missing-dir", "nodir", codes=(74,), changes=("prev", "cache"))
def _(w):
    return w.build("--report", w.p("nodir/r.json"))


@case("app-missing", "does not exist")
def _(w):
    return ["build", w.p("noapp"), "--output", str(w.prev)]


@case("app-is-a-file", "must be a directory")
def _(w):
    return ["build", w.p("thesis.tex"), "--output", str(w.prev)]


# ---------------------------------------------------------------------------------------------
# JSON inputs: run and inspect

@case("run-data-missing", "not found")
def _(w):
    return ["run", str(w.prev), "--data", w.p("nope.json")]


@case("run-data-is-dir", "directory")
def _(w):
    return ["run", str(w.prev), "--data", str(w.app)]


@case("run-data-200k-brackets", "levels deep")
def _(w):
    (w.root / "d.json").write_text("[" * 200_000)
    return ["run", str(w.prev), "--data", w.p("d.json")]


@case("run-params-100k-objects", "levels deep")
def _(w):
    (w.root / "p.json").write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    return ["run", str(w.prev), "--params", w.p("p.json")]


for _text, _expect in (("{", "not valid JSON"), ("", "not valid JSON"), ("\xff", "not UTF-8"),
                       ("[1,]", "not valid JSON"), ("NaN-ish", "not valid JSON")):
    case(f"run-params-{_text[:6]!r}", _expect)(
        lambda w, t=_text: ((w.root / "p.json").write_bytes(t.encode("latin-1")),
                            ["run", str(w.prev), "--params", w.p("p.json")])[1])


@case("run-process-prints-a-deep-result", "PlanQK:Job:MultilineResult", codes=(0,), changes=("deep-out",))
def _(w):
    bp = _buildpack(w.bps, "deep-result", build='cp "$CNB_BUILDPACK_DIR/launch.toml" "$1/launch.toml"')
    code = "m = 'PlanQK:Job:MultilineResult'; print(m); print('[' * 100000 + ']' * 100000); print(m)"
    (bp / "launch.toml").write_text(f'[[processes]]\ntype = "web"\ncommand = ["python3", "-c", "{code}"]\n'
                                    "default = true\n")
    # built and run on the host: the process's python3 is the host's (a run image has none)
    assert main(w.build("--sandbox", "never", bp=bp, output=w.p("deep-out"))) == 0
    return ["run", w.p("deep-out"), "--sandbox", "never"]


@case("run-unknown-process", "was not found")
def _(w):
    return ["run", str(w.prev), "--process", "nope", "--sandbox", "never"]


@case("run-bad-sandbox", "--sandbox", codes=(2,))
def _(w):
    return ["run", str(w.prev), "--sandbox", "maybe"]


_REPORTS = {
    "list": ("[]", "(top)"), "buildpacks-int": ('{"buildpacks": 5}', "buildpacks"),
    "empty-object": ("{}", "buildpacks"), "not-json": ("{oops", "not valid JSON"),
    "deep": ("[" * 100_000, "levels deep"), "binary": ("\udcff", "not UTF-8"),
    "layers-wrong": ('{"buildpacks": [{"id": "a", "version": "1", "api": "0.10", "layers": 3}], '
                     '"processes": [], "launch_env": {}}', "buildpacks[0].layers"),
    "process-command-str": ('{"buildpacks": [], "processes": [{"type": "web", "command": "echo", "args": [], '
                            '"default": true, "direct": true, "buildpack_id": "a"}], "launch_env": {}}',
                            "processes[0].command"),
    "launch-env-int": ('{"buildpacks": [], "processes": [], "launch_env": {"web": {"A": 1}}}', "launch_env.web.A"),
    "files-bool": ('{"buildpacks": [{"id": "a", "version": "1", "api": "0.10", "layers": [{"name": "l", '
                   '"types": {}, "files": true}]}], "processes": [], "launch_env": {}}', "files"),
    "id-null": ('{"buildpacks": [{"id": null, "version": "1", "api": "0.10", "layers": []}], '
                '"processes": [], "launch_env": {}}', "buildpacks[0].id"),
}
for _name, (_text, _expect) in _REPORTS.items():
    def _inspect(w, t=_text):
        shutil.copytree(w.prev, w.root / "damaged", symlinks=True)
        (w.root / "damaged" / "report.json").write_bytes(t.encode("utf-8", "surrogateescape"))
        return ["inspect", w.p("damaged")]
    case(f"inspect-report-{_name}", _expect)(_inspect)


@case("inspect-report-missing", "not found")
def _(w):
    shutil.copytree(w.prev, w.root / "damaged", symlinks=True)
    (w.root / "damaged" / "report.json").unlink()
    return ["inspect", w.p("damaged")]


@case("inspect-metadata-invalid", "metadata.toml")
def _(w):
    shutil.copytree(w.prev, w.root / "damaged", symlinks=True)
    (w.root / "damaged" / "layers" / "config" / "metadata.toml").write_text("[[[")
    return ["inspect", w.p("damaged")]


# ---------------------------------------------------------------------------------------------
# buildpack.toml: every field given a value of the wrong kind, and files that are not TOML

_BP_FIELDS = {
    "api": 'api = {v}\n[buildpack]\nid = "good"\nversion = "1.0"\n',
    "buildpack": 'api = "0.10"\nbuildpack = {v}\n',
    "id": 'api = "0.10"\n[buildpack]\nid = {v}\nversion = "1.0"\n',
    "version": 'api = "0.10"\n[buildpack]\nid = "good"\nversion = {v}\n',
    "clear-env": 'api = "0.10"\n[buildpack]\nid = "good"\nversion = "1.0"\nclear-env = {v}\n',
    "order": 'api = "0.10"\norder = {v}\n[buildpack]\nid = "good"\nversion = "1.0"\n',
    "targets": 'api = "0.10"\ntargets = {v}\n[buildpack]\nid = "good"\nversion = "1.0"\n',
    "stacks": 'api = "0.10"\nstacks = {v}\n[buildpack]\nid = "good"\nversion = "1.0"\n',
}
_WRONG = {"int": "5", "list": "[1, 2]", "table": "{ x = 1 }", "bool": "true", "deep": "[" * 150 + "]" * 150}
for _field, _template in _BP_FIELDS.items():
    for _kind, _value in _WRONG.items():
        if (_field, _kind) in {("clear-env", "bool")}:
            continue
        case(f"buildpack-toml-{_field}-{_kind}", "buildpack.toml")(
            lambda w, t=_template, v=_value: w.build(bp=_buildpack(w.bps, "bad", toml=t.format(v=v))))

for _name, _text in (("syntax", "api = \n"), ("empty", ""), ("binary", "\xff\xfe"), ("nul", 'api = "0\x00"'),
                     ("api-unknown", 'api = "9.9"\n[buildpack]\nid = "good"\nversion = "1.0"\n'),
                     ("api-garbage", 'api = "x.y"\n[buildpack]\nid = "good"\nversion = "1.0"\n'),
                     ("huge", "# " + "x" * (11 * 1024 * 1024) + "\n"),
                     ("deep-table", 'api = "0.10"\n[buildpack]\nid = "good"\nversion = "1.0"\nx = '
                      + "{a = " * 200 + "1" + "}" * 200 + "\n")):
    case(f"buildpack-toml-{_name}", "buildpack.toml")(
        lambda w, t=_text: w.build(bp=_buildpack(w.bps, "bad", toml=t)))


@case("buildpack-toml-is-a-dir", "buildpack.toml")
def _(w):
    bp = _buildpack(w.bps, "bad")
    (bp / "buildpack.toml").unlink()
    (bp / "buildpack.toml").mkdir()
    return w.build(bp=bp)


def _composite(root: Path, bp_id: str, members: list[str]) -> Path:
    groups = "".join(f'[[order]]\n[[order.group]]\nid = "{m}"\nversion = "1.0"\n' for m in members)
    bp = root / bp_id
    bp.mkdir(parents=True, exist_ok=True)
    (bp / "buildpack.toml").write_text(f'api = "0.10"\n[buildpack]\nid = "{bp_id}"\nversion = "1.0"\n{groups}')
    return bp


@case("composite-names-itself", "includes itself", codes=(22,))
def _(w):
    return ["build", str(w.app), "-b", str(_composite(w.bps, "loop", ["loop"])), "-b", str(w.bp),
            "--output", str(w.prev)]


@case("composite-cycle-of-two", "includes itself", codes=(22,))
def _(w):
    _composite(w.bps, "b", ["a"])
    return ["build", str(w.app), "--buildpack", str(_composite(w.bps, "a", ["b"])), "-b", str(w.bps / "b"),
            "--output", str(w.prev)]


# ---------------------------------------------------------------------------------------------
# builder.toml

_BUILDERS = {
    "syntax": ("[[buildpacks]\n", "builder"),
    "buildpacks-int": ("buildpacks = 5\n", "buildpacks"),
    "order-int": ("order = 5\n", "order"),
    "order-empty": ("[[buildpacks]]\nuri = \"bps/good\"\n", "order"),
    "group-no-id": ("[[buildpacks]]\nuri = \"bps/good\"\n[[order]]\n[[order.group]]\nversion = \"1.0\"\n", "id"),
    "uri-missing": ("[[buildpacks]]\nuri = \"bps/nope\"\n[[order]]\n[[order.group]]\nid = \"good\"\n", "nope"),
    "deep": ("x = " + "[" * 300 + "]" * 300 + "\n", "levels deep"),
    "binary": ("\xff\xfe\xfd", "UTF-8"),
}
for _name, (_text, _expect) in _BUILDERS.items():
    def _builder(w, t=_text):
        (w.root / "builder.toml").write_bytes(t.encode("latin-1"))
        return ["build", str(w.app), "--builder", w.p("builder.toml"), "--output", str(w.prev),
                "--cache-dir", w.p("cache")]
    case(f"builder-toml-{_name}", _expect)(_builder)


# ---------------------------------------------------------------------------------------------
# Buildpacks that misbehave

def _bad_build(body: str, *, detect: str = "exit 0", extra: tuple[str, ...] = ()) -> Callable[[World], list[str]]:
    def setup(w: World) -> list[str]:
        return w.build("--env", f"API_TOKEN={SECRET}", "--timeout", "20", *extra,
                       bp=_buildpack(w.bps, "bad", detect=detect, build=body))
    return setup


_MISBEHAVING = {
    "build-exits-1": ("exit 1", "failed to build", (51,)),
    "build-killed": ("kill -9 $$", "signal", (51,)),
    "detect-fails": ("exit 0", "No buildpack groups passed", (20,), "exit 100"),
    "detect-errors": ("exit 0", "detect", (21,), "exit 3"),
    "detect-bad-shebang": ("exit 0", "detect", (20, 21), None),
    "layer-toml-invalid": ("echo '[[[' > \"$1/l.toml\"", "l.toml", (52,)),
    "layer-toml-types-str": ("printf 'types = \"yes\"\\n' > \"$1/l.toml\"", "l.toml", (52,)),
    "layer-toml-deep": ("printf 'x = %s1%s\\n' \"$(printf '[%.0s' $(seq 200))\" \"$(printf ']%.0s' $(seq 200))\""
                        " > \"$1/l.toml\"", "levels deep", (52,)),
    "launch-toml-invalid": ("echo 'processes = 5' > \"$1/launch.toml\"", "launch.toml", (52,)),
    "launch-process-bad-type": ("printf '[[processes]]\\ntype = \"a/b\"\\ncommand = [\"x\"]\\n' > \"$1/launch.toml\"",
                                "launch.toml", (52,)),
    "build-toml-unmet-int": ("echo 'unmet = 5' > \"$1/build.toml\"", "build.toml", (52,)),
    "store-toml-invalid": ("echo 'metadata = 5' > \"$1/store.toml\"", "store.toml", (52,)),
    "layer-is-symlink": ("ln -s /tmp \"$1/l\"; printf '[types]\\nlaunch = true\\n' > \"$1/l.toml\"",
                         "symbolic link", (52,)),
    "launch-layer-no-contents": ("printf '[types]\\nlaunch = true\\ncache = true\\n' > \"$1/l.toml\"",
                                 "has no contents", (52,)),
    "secret-in-layer-file": ('mkdir -p "$1/l"; echo "$(cat $2/env/API_TOKEN)" > "$1/l/f"; '
                             "printf '[types]\\nlaunch = true\\n' > \"$1/l.toml\"", "API_TOKEN", (53,)),
    "secret-as-file-name": ('mkdir -p "$1/l"; touch "$1/l/$(cat $2/env/API_TOKEN)"; '
                            "printf '[types]\\nlaunch = true\\n' > \"$1/l.toml\"", "its name", (53,)),
    "secret-as-dir-name": ('mkdir -p "$1/l/$(cat $2/env/API_TOKEN)"; '
                           "printf '[types]\\nlaunch = true\\n' > \"$1/l.toml\"", "its name", (53,)),
    "secret-as-layer-name": ('n="$(cat $2/env/API_TOKEN)"; mkdir -p "$1/$n"; '
                             "printf '[types]\\nlaunch = true\\n' > \"$1/$n.toml\"", "its name", (53,)),
    "secret-as-symlink-target": ('mkdir -p "$1/l"; ln -s "/x/$(cat $2/env/API_TOKEN)" "$1/l/link"; '
                                 "printf '[types]\\nlaunch = true\\n' > \"$1/l.toml\"", "link target", (53,)),
    "secret-beside-the-layers": ('cat $2/env/API_TOKEN > "$CNB_LAYERS_DIR/../../leak.txt"', "leak.txt", (53,)),
    "secret-in-workspace": ('cat $2/env/API_TOKEN > "$PWD/config.txt"', "config.txt", (53,)),
    "secret-in-log": ('echo "token is $(cat $2/env/API_TOKEN)"', "the build log", (53,)),
    "secret-as-unmet-name": ('printf "[[unmet]]\\nname = \\"%s\\"\\n" "$(cat $2/env/API_TOKEN)" > "$1/build.toml"',
                             "build.toml", (52, 53)),
    "secret-in-launch-env": ('mkdir -p "$1/l/env"; cat $2/env/API_TOKEN > "$1/l/env/X"; '
                             "printf '[types]\\nlaunch = true\\n' > \"$1/l.toml\"", "env/X", (53,)),
    "build-times-out": ("sleep 60", "timed out", (51,)),
    "build-no-newline-flood": ("head -c 2000000 /dev/zero | tr '\\0' x", "Output:", (0,)),
}
for _name, (_body, _expect, _codes, *_detect) in _MISBEHAVING.items():
    _det = _detect[0] if _detect else "exit 0"
    if _name == "detect-bad-shebang":
        def _shebang(w):
            bp = _buildpack(w.bps, "bad")
            (bp / "bin" / "detect").write_text("#!/nonexistent/interp\n")
            return w.build(bp=bp)
        case(f"buildpack-{_name}", _expect, codes=_codes)(_shebang)
        continue
    if _name == "build-times-out":
        case(f"buildpack-{_name}", _expect, codes=_codes)(
            lambda w, b=_body: w.build("--timeout", "1", bp=_buildpack(w.bps, "bad", build=b)))
        continue
    # beside the layers is the output dir only on the host (in the namespace it is the sandbox's own root)
    _extra = ("--sandbox", "never") if _name == "secret-beside-the-layers" else ()
    case(f"buildpack-{_name}", _expect, codes=_codes, changes=("prev", "cache") if 0 in _codes else ())(
        _bad_build(_body, detect=_det, extra=_extra))


# ---------------------------------------------------------------------------------------------
# App trees

def _app_case(name: str, make: Callable[[Path], None], expect: str = "Output:", codes: tuple[int, ...] = (0,)):
    def setup(w: World) -> list[str]:
        make(w.app)
        return w.build()
    case(f"app-{name}", expect, codes=codes, changes=("prev", "cache") if 0 in codes else ())(setup)


_app_case("fifo", lambda a: os.mkfifo(a / "pipe"))
_app_case("dangling-symlink", lambda a: (a / "dangling").symlink_to(a / "nowhere"))
_app_case("symlink-loop", lambda a: ((a / "l1").symlink_to(a / "l2"), (a / "l2").symlink_to(a / "l1")))
_app_case("newline-in-name", lambda a: (a / "a\nb.txt").write_text("x"))
_app_case("non-utf8-name", lambda a: Path(os.fsdecode(bytes(a / "x") + b"\xff")).write_text("x"))
_app_case("empty", lambda a: [p.unlink() for p in a.iterdir()])
# pack reads project.toml before anything else: a bad one is a clear error naming it (exit 1), nothing changes
_app_case("project-toml-invalid", lambda a: (a / "project.toml").write_text("[[["), expect="project.toml", codes=(1,))
_app_case("requirements-binary", lambda a: (a / "requirements.txt").write_bytes(b"\x00\xff" * 1000))


def _deep(root: Path, levels: int) -> None:
    d = root
    for _ in range(levels):       # level by level: mkdir(parents=True) recurses
        d = d / "d"
        d.mkdir()


@case("app-tree-600-levels-deep", "too deeply")
def _(w):
    _deep(w.app, 600)
    return w.build()


@case("buildpack-layer-tree-600-levels-deep-is-cached-and-restored", "deep:l [launch, cache] (restored)",
      codes=(0,), changes=("prev", "cache"))
def _(w):
    # as the lifecycle's tar writer takes any depth: cnbsim's layer copy and digest walk without recursion
    body = ('d="$1/l"; for i in $(seq 600); do d="$d/d"; done; mkdir -p "$d"; echo deep > "$d/f"; '
            "printf '[types]\\nlaunch = true\\ncache = true\\n' > \"$1/l.toml\"")
    bp = _buildpack(w.bps, "deep", build=body)
    assert main(w.build(bp=bp)) == 0
    return w.build(bp=bp)


@case("buildpack-layer-tree-deeper-than-path-max", "too deeply", codes=(52,), changes=("cache",))
def _(w):
    # deeper than a path can name (PATH_MAX): one error, not a warning as long as the path
    body = ('d="$1/l"; for i in $(seq 2500); do d="$d/d"; done; mkdir -p "$d"; '
            "printf '[types]\\nlaunch = true\\ncache = true\\n' > \"$1/l.toml\"")
    return w.build(bp=_buildpack(w.bps, "deeper", build=body))


@case("app-output-inside-app-is-left-out", "Output:", codes=(0,), changes=("app/out",))
def _(w):
    assert main(w.build(output=str(w.app / "out"))) == 0
    return w.build(output=str(w.app / "out"))


@case("app-cache-inside-app-is-left-out", "Output:", codes=(0,), changes=("prev", "app/.cache"))
def _(w):
    return w.build("--cache-dir", str(w.app / ".cache"))


# ---------------------------------------------------------------------------------------------
# Interrupted earlier runs: a later build cleans up and keeps the last good output

@case("leftover-work-dir-of-dead-run", "interrupted run", codes=(0,), changes=("prev", "cache", ".prev.cnbsim-999999-abcd"))
def _(w):
    work = w.root / ".prev.cnbsim-999999-abcd"
    (work / "new").mkdir(parents=True)
    (work / ".cnbsim-owned").write_text('{"owner": "cnbsim", "format": 1, "kind": "work"}\n')
    return w.build()


@case("killed-between-renames", "put it back", codes=(0,), changes=("prev", "cache", ".prev.cnbsim-999999-abcd"))
def _(w):
    work = w.root / ".prev.cnbsim-999999-abcd"
    work.mkdir()
    (work / ".cnbsim-owned").write_text('{"owner": "cnbsim", "format": 1, "kind": "work"}\n')
    w.prev.rename(work / "old")
    return w.build()


@case("lookalike-work-dir-not-ours-is-kept", "Output:", codes=(0,), changes=("prev", "cache"))
def _(w):
    _mkdir(w, ".prev.cnbsim-999999-abcd", {"mine.txt": "not cnbsim's"})
    return w.build()


# ---------------------------------------------------------------------------------------------

assert len(CASES) >= 150, len(CASES)


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gets_one_clear_error_and_loses_nothing(c: Case, world: World, capsys):
    argv = c.setup(world)
    capsys.readouterr()
    changes = tuple(world.root / rel for rel in c.changes)
    before = _snapshot(world.root, changes)
    prev_before = _snapshot(world.prev)
    try:
        code = main(argv)
    except SystemExit as exc:          # argparse: usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code in EXIT_CODES and code != INTERNAL_ERROR, (code, err)
    if c.codes:
        assert code in c.codes, (code, err[-2000:])
    else:
        assert code != 0, out[-2000:]
    expect = c.expect(world) if callable(c.expect) else c.expect
    assert expect in out + err, (out + err)[-3000:]
    if code != 0:
        assert any(line.startswith("ERROR: ") or ": error: " in line for line in err.splitlines())
        assert SECRET not in out + err
    assert _snapshot(world.root, changes) == before
    if world.prev not in changes:
        assert _snapshot(world.prev) == prev_before
    else:
        assert (world.prev / "report.json").is_file() and (world.prev / ".cnbsim-owned").is_file()
    assert not [p.name for p in world.root.iterdir() if ".cnbsim-" in p.name and p.name not in c.changes
                and "999999" not in p.name]


# ---------------------------------------------------------------------------------------------
# Real signals sent to a running `cnbsim build`: the last good output survives every one of them

def _cnbsim(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnbsim.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def slow_build(tmp_path):
    """An app with a good output at out/, and a slow buildpack whose bin/build waits to be interrupted."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("print('hi')\n")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    good = _buildpack(tmp_path / "bps", "good", build=GOOD_BUILD)
    done = _cnbsim("build", str(app), "-b", str(good), "-o", "out", cwd=tmp_path, env=env)
    assert done.wait(60) == 0, done.stderr.read()
    slow = _buildpack(tmp_path / "bps", "slow", build=f'''
        echo $$ > {tmp_path}/pgid
        mkdir -p "$1/half"; printf '[types]\\nlaunch = true\\n' > "$1/half.toml"; echo half > "$1/half/f"
        touch {tmp_path}/started
        sleep 60
        ''')
    return app, slow, env, tmp_path


def _start_slow(app: Path, slow: Path, env: dict[str, str], root: Path) -> subprocess.Popen:
    # on the host: the buildpack's pid and marker file are the host's (the namespace's kill is tested in
    # tests/core/test_build_namespace.py)
    proc = _cnbsim("build", str(app), "-b", str(slow), "-o", "out", "--env", "API_TOKEN=s3cr3t-value",
                   "--sandbox", "never", cwd=root, env=env)
    deadline = time.monotonic() + 60
    while not (root / "started").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def _alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies, killed but not yet reaped by init, do not)."""
    deadline = time.monotonic() + 10
    while True:
        running = []
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat_file.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                running.append(stat_file.parent.name)
        if not running or time.monotonic() > deadline:
            return bool(running)
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_during_bin_build_stops_it_cleans_up_and_keeps_the_previous_output(slow_build, sig):
    app, slow, env, root = slow_build
    before = _snapshot(root / "out")
    proc = _start_slow(app, slow, env, root)
    work = [p for p in root.iterdir() if p.name.startswith(".out.cnbsim-")]
    assert len(work) == 1 and stat.S_IMODE(work[0].stat().st_mode) == 0o700      # holds the platform dir
    assert (work[0] / "platform" / "env" / "API_TOKEN").stat().st_mode & 0o077 == 0
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig
    assert err.strip().splitlines()[-1].startswith(f"ERROR: interrupted by {sig.name}; the previous output is kept")
    assert "Traceback" not in err
    assert _snapshot(root / "out") == before
    assert not [p for p in root.iterdir() if ".cnbsim-" in p.name]
    assert not list((root / "tmp").iterdir())             # no temp dirs left, none with the secret
    assert not _alive(int((root / "pgid").read_text()))   # the buildpack was stopped with it


def test_after_sigkill_the_output_stays_usable_and_the_next_build_cleans_up(slow_build):
    app, slow, env, root = slow_build
    before = _snapshot(root / "out")
    proc = _start_slow(app, slow, env, root)
    proc.kill()
    proc.wait(30)
    try:
        os.killpg(int((root / "pgid").read_text()), signal.SIGKILL)   # what a SIGKILLed cnbsim cannot stop
    except ProcessLookupError:
        pass
    assert _snapshot(root / "out") == before
    assert BuiltOutput.open(root / "out").metadata.default_process == "web"
    left = [p.name for p in root.iterdir() if ".cnbsim-" in p.name]
    assert len(left) == 1
    killed = [p for p in (root / "tmp").iterdir() if p.name.startswith(f"cnbsim-build-{proc.pid}-")]
    assert len(killed) == 1                             # the buildpack's plan dir: a SIGKILL cannot remove it
    good = root / "bps" / "good"
    again = _cnbsim("build", str(app), "-b", str(good), "-o", "out", cwd=root, env=env)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert f"removed {left[0]}, left beside the output by an interrupted run" in out
    assert not [p for p in root.iterdir() if ".cnbsim-" in p.name]
    assert not killed[0].exists()                       # ... the next cnbsim does
    assert (root / "out" / "layers" / "good" / "web" / "v").read_text() == "ok\n"


def _in_private_read_only_mount(tmp_path: Path, *cmd: str) -> subprocess.CompletedProcess:
    """Run `cmd` with a read-only tmpfs at tmp_path/ro, in a mount namespace of its own (nothing leaks out)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    script = 'mount -t tmpfs -o ro,size=1m tmpfs "$0" && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script, str(ro), *cmd],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")})


@pytest.mark.parametrize("target", ["output", "oci"])
def test_an_output_on_a_read_only_file_system_is_one_clear_error(tmp_path, target, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if not shutil.which("unshare") or _in_private_read_only_mount(tmp_path, "true").returncode != 0:
        pytest.skip("needs unshare with user and mount namespaces to mount a read-only file system")
    shutil.rmtree(tmp_path / "ro")
    app = tmp_path / "app"
    app.mkdir()
    bp = _buildpack(tmp_path / "bps", "good", build=GOOD_BUILD)
    cli = [sys.executable, "-m", "cnbsim.cli"]
    if target == "output":
        cmd = [*cli, "build", str(app), "-b", str(bp), "--output", str(tmp_path / "ro" / "out")]
    else:
        assert main(["build", str(app), "-b", str(bp), "--output", str(tmp_path / "out")]) == 0
        cmd = [*cli, "export", str(tmp_path / "out"), "--oci", str(tmp_path / "ro" / "oci")]
    done = _in_private_read_only_mount(tmp_path, *cmd)
    assert done.returncode == (1 if target == "output" else 62), done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(
        "cannot write the " + ("output" if target == "output" else "OCI layout")
        + " here: Read-only file system (choose a writable " + ("output" if target == "output" else "OCI layout")
        + " location)")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["AWS_ACCESS_KEY_ID", "GITHUB_PAT", "APIKEY", "DB_PASSWD", "PRIVATE_KEY_PEM",
                                  "CREDENTIALS", "my_api_token", "CLIENT_SECRET", "X_PASSWORD", "SSH_KEY"])
def test_secret_like_names_are_searched_for_leaks(world, capsys, name):
    bp = _buildpack(world.bps, "leaky", build=f'''
        mkdir -p "$1/l"; cat "$2/env/{name}" > "$1/l/f"; printf '[types]\\nlaunch = true\\n' > "$1/l.toml"
        ''')
    assert main(world.build("--env", f"{name}={SECRET}", bp=bp)) == 53
    err = capsys.readouterr().err
    assert f"secret value of {name} found in the build output: layers/leaky/l/f" in err
    assert SECRET not in err


def test_a_name_given_with_secret_env_is_searched_and_others_are_not(world, capsys):
    bp = _buildpack(world.bps, "leaky", build='''
        mkdir -p "$1/l"; cat "$2/env/BP_PLAIN" "$2/env/BP_MINE" > "$1/l/f"; printf '[types]\\nlaunch = true\\n' > "$1/l.toml"
        ''')
    assert main(world.build("--env", "BP_PLAIN=plain-value", "--env", f"BP_MINE={SECRET}", bp=bp)) == 0
    assert main(world.build("--env", "BP_PLAIN=plain-value", "--env", f"BP_MINE={SECRET}",
                            "--secret-env", "BP_MINE", bp=bp)) == 53
    assert "secret value of BP_MINE found" in capsys.readouterr().err


def test_where_the_file_system_cannot_exchange_two_renames_replace_the_output(world, monkeypatch):
    import cnbsim.fs
    monkeypatch.setattr(cnbsim.fs, "_RENAMEAT2", None)
    (world.prev / "layers" / "good" / "web" / "v").write_text("old\n")
    assert main(world.build()) == 0
    assert (world.prev / "layers" / "good" / "web" / "v").read_text() == "ok\n"
    assert not [p for p in world.root.iterdir() if ".cnbsim-" in p.name]


def test_the_new_output_names_its_own_paths_not_the_work_dirs(world):
    bp = _buildpack(world.bps, "paths", build='''
        mkdir -p "$1/l/env" "$1/l/bin"; printf '%s' "$1/l/bin" > "$1/l/env/MY_PATH"
        printf '#!/bin/sh\\necho %s\\n' "$1" > "$1/l/bin/tool"; ln -s "$1/l/bin/tool" "$1/l/link"
        printf '\\0%s' "$1" > "$1/l/compiled.bin"; printf '[types]\\nlaunch = true\\n' > "$1/l.toml"
        ''')
    assert main(world.build("--sandbox", "never", bp=bp)) == 0   # host paths: the namespace's are /layers
    layer = world.prev / "layers" / "paths" / "l"
    assert (layer / "env" / "MY_PATH").read_text() == str(layer / "bin")
    assert os.readlink(layer / "link") == str(layer / "bin" / "tool")
    assert str(world.prev / "layers" / "paths") in (layer / "bin" / "tool").read_text()
    assert b".prev.cnbsim-" in (layer / "compiled.bin").read_bytes()     # binaries keep it (documented)
