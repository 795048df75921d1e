"""`export_oci`: a cnbsim build output as an OCI image layout (buildpacks/spec platform.md#exporter,
#labels, #build-reproducibility; lifecycle phase/exporter.go, archive/writer.go)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import cnbsim
from cnbsim.log import Logger
from cnbsim.oci.slices import glob_regex
from cnbsim.phase.export import (
    LAUNCHER_PATH,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ExportError,
    export_oci,
)

SKOPEO = shutil.which("skopeo")
UMOCI = shutil.which("umoci")
NEEDS_SKOPEO = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed (make system-tools installs it)")
NEEDS_UMOCI = pytest.mark.skipif(UMOCI is None, reason="umoci is not installed (make system-tools installs it)")
EPOCH_1980 = 315532801   # 1980-01-01T00:00:01Z

# Buildpack acme/a: launch layers `deps` (with the app's version.txt, so it changes with the app) and
# `zeta` (fixed), a build-only and a cache-only layer, two processes, a label.
BUILD_A = r'''
mkdir -p "$CNB_LAYERS_DIR/deps/bin" "$CNB_LAYERS_DIR/zeta" "$CNB_LAYERS_DIR/tools" "$CNB_LAYERS_DIR/downloads"
cp version.txt "$CNB_LAYERS_DIR/deps/version.txt"
printf '#!/bin/sh\necho tool\n' > "$CNB_LAYERS_DIR/deps/bin/tool"
chmod 755 "$CNB_LAYERS_DIR/deps/bin/tool"
ln -s tool "$CNB_LAYERS_DIR/deps/bin/tool-link"
echo z > "$CNB_LAYERS_DIR/zeta/z.txt"
printf '[types]\nlaunch = true\n[metadata]\nversion = "1.2"\n' > "$CNB_LAYERS_DIR/deps.toml"
printf '[types]\nlaunch = true\ncache = true\n' > "$CNB_LAYERS_DIR/zeta.toml"
printf '[types]\nbuild = true\n' > "$CNB_LAYERS_DIR/tools.toml"
printf '[types]\ncache = true\n' > "$CNB_LAYERS_DIR/downloads.toml"
cat > "$CNB_LAYERS_DIR/launch.toml" <<'TOML'
[[processes]]
type = "web"
command = ["python3", "main.py"]
default = true

[[processes]]
type = "worker"
command = ["python3", "-c", "print('working')"]

[[labels]]
key = "org.example.team"
value = "qc"
TOML
'''

BUILD_B = r'''
mkdir -p "$CNB_LAYERS_DIR/runtime"
echo rt > "$CNB_LAYERS_DIR/runtime/rt.txt"
printf '[types]\nlaunch = true\nbuild = true\n' > "$CNB_LAYERS_DIR/runtime.toml"
'''


class Image:
    """An image read back from an OCI layout, checking every digest on the way."""

    def __init__(self, root: Path, tag: str = "latest") -> None:
        self.root = root
        self.index = json.loads((root / "index.json").read_text())
        entries = [m for m in self.index["manifests"]
                   if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
        assert len(entries) == 1, self.index
        self.entry = entries[0]
        self.manifest = json.loads(self.blob(self.entry))
        self.config = json.loads(self.blob(self.manifest["config"]))

    def blob(self, desc: dict) -> bytes:
        data = (self.root / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
        assert len(data) == desc["size"]
        return data

    def tar(self, n: int) -> bytes:
        desc = self.manifest["layers"][n]
        data = self.blob(desc)
        return gzip.decompress(data) if desc["mediaType"] == OCI_LAYER_GZIP else data

    def members(self, n: int) -> list[tarfile.TarInfo]:
        return tarfile.open(fileobj=io.BytesIO(self.tar(n))).getmembers()

    def names(self, n: int) -> list[str]:
        return [m.name for m in self.members(n)]

    @property
    def labels(self) -> dict[str, str]:
        return self.config["config"]["Labels"]

    def label_json(self, key: str) -> dict:
        return json.loads(self.labels[key])


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    (path / "sub").mkdir(parents=True)
    (path / "main.py").write_text("print('hello from web')\n")
    (path / "version.txt").write_text("1\n")
    (path / "sub" / "data.txt").write_text("data\n")
    os.symlink("sub/data.txt", path / "data-link")
    return path


@pytest.fixture
def build(bps, app, tmp_path):
    """Build `app` with acme/a and b into tmp_path/out (again on each call)."""
    bps("acme/a", build=BUILD_A)
    bps("b", build=BUILD_B)

    def run(output: Path = tmp_path / "out"):
        return cnbsim.build(app, buildpacks=[bps.root / "acme_a" / "1.0", bps.root / "b" / "1.0"], output=output)
    return run


def test_layout_chains_index_to_manifest_to_config_with_digests_matching_blobs(build, tmp_path):
    result = export_oci(build().output, tmp_path / "oci")
    assert json.loads((tmp_path / "oci" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    image = Image(tmp_path / "oci")
    assert image.index["mediaType"] == OCI_INDEX and image.index["schemaVersion"] == 2
    assert image.entry["mediaType"] == OCI_MANIFEST and image.entry["digest"] == result.manifest_digest
    assert image.manifest["config"]["mediaType"] == OCI_CONFIG
    assert image.manifest["config"]["digest"] == result.config_digest
    assert {m["mediaType"] for m in image.manifest["layers"]} == {OCI_LAYER_GZIP}
    diff_ids = ["sha256:" + hashlib.sha256(image.tar(n)).hexdigest() for n in range(len(image.manifest["layers"]))]
    assert image.config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
    assert [lay.diff_id for lay in result.layers] == diff_ids
    assert [lay.digest for lay in result.layers] == [m["digest"] for m in image.manifest["layers"]]
    blobs = {p.name for p in (tmp_path / "oci" / "blobs" / "sha256").iterdir()}
    referenced = {d["digest"][7:] for d in [image.entry, image.manifest["config"], *image.manifest["layers"]]}
    assert blobs == referenced
    assert not [p for p in tmp_path.iterdir() if "cnbsim-staging" in p.name or "cnbsim-previous" in p.name]


def test_layers_are_launch_layers_in_group_order_then_sbom_app_launcher_config_process_types(build, tmp_path):
    result = export_oci(build().output, tmp_path / "oci")
    assert [lay.id for lay in result.layers] == [
        "acme/a:deps", "acme/a:zeta", "b:runtime", "buildpacksio/lifecycle:launch.sbom", "slice-1", "buildpacksio/lifecycle:launcher",
        "buildpacksio/lifecycle:config", "buildpacksio/lifecycle:process-types"]
    image = Image(tmp_path / "oci")
    assert [h["created_by"] for h in image.config["history"]] == [
        "Layer: 'deps', Created by buildpack: acme/a@1.0", "Layer: 'zeta', Created by buildpack: acme/a@1.0",
        "Layer: 'runtime', Created by buildpack: b@1.0", "Software Bill-of-Materials", "Application Layer",
        "Buildpacks Application Launcher", "Buildpacks Launcher Config", "Buildpacks Process Types"]
    assert {h["created"] for h in image.config["history"]} == {"1980-01-01T00:00:01Z"}
    assert image.names(0) == ["/layers", "/layers/acme_a", "/layers/acme_a/deps", "/layers/acme_a/deps/bin",
                              "/layers/acme_a/deps/bin/tool", "/layers/acme_a/deps/bin/tool-link",
                              "/layers/acme_a/deps/version.txt"]
    # lc:phase/exporter.go addSBOMLaunchLayer: <layers>/sbom/launch, after the buildpack layers
    assert image.names(3) == ["/layers", "/layers/sbom", "/layers/sbom/launch", "/layers/sbom/launch/sbom.legacy.json"]
    assert image.names(4) == ["/workspace", "/workspace/data-link", "/workspace/main.py", "/workspace/sub",
                              "/workspace/sub/data.txt", "/workspace/version.txt"]
    assert image.names(6) == ["/layers", "/layers/config", "/layers/config/metadata.toml"]
    assert image.names(7) == ["/cnb", "/cnb/process", "/cnb/process/web", "/cnb/process/worker"]


def test_tar_entries_are_normalized_as_the_lifecycle_writes_them(build, tmp_path):
    export_oci(build().output, tmp_path / "oci")
    image = Image(tmp_path / "oci")
    for n in range(len(image.manifest["layers"])):
        for m in image.members(n):
            assert m.name.startswith("/") and m.mtime == EPOCH_1980 and m.uname == m.gname == ""
    deps = {m.name: m for m in image.members(0)}
    assert {(m.uid, m.gid) for m in deps.values()} == {(1000, 1000)}
    assert deps["/layers/acme_a/deps/bin/tool-link"].issym() and deps["/layers/acme_a/deps/bin/tool-link"].linkname == "tool"
    assert deps["/layers/acme_a/deps/bin/tool"].mode == 0o755
    sbom = {m.name: m for m in image.members(3)}
    assert "/layers/sbom/launch/sbom.legacy.json" in sbom
    app = {m.name: m for m in image.members(4)}
    assert app["/workspace/data-link"].linkname == "sub/data.txt"
    launcher = {m.name: m for m in image.members(5)}
    assert list(launcher) == ["/cnb", "/cnb/lifecycle", LAUNCHER_PATH]
    assert {(m.uid, m.gid) for m in launcher.values()} == {(0, 0)} and launcher[LAUNCHER_PATH].mode == 0o755
    types = {m.name: m for m in image.members(7)}
    assert types["/cnb/process/web"].issym() and types["/cnb/process/web"].linkname == LAUNCHER_PATH


def test_config_has_the_lifecycle_env_entrypoint_workdir_and_labels(build, tmp_path):
    result = export_oci(build().output, tmp_path / "oci")
    image = Image(tmp_path / "oci")
    conf = image.config["config"]
    assert image.config["os"] == "linux" and image.config["architecture"] in ("amd64", "arm64", "arm")
    assert image.config["created"] == "1980-01-01T00:00:01Z"
    env = dict(e.split("=", 1) for e in conf["Env"])
    assert env["CNB_LAYERS_DIR"] == "/layers" and env["CNB_APP_DIR"] == "/workspace"
    assert env["CNB_PLATFORM_API"] == "0.15" and env["CNB_DEPRECATION_MODE"] == "quiet"
    assert env["PATH"].startswith("/cnb/process:/cnb/lifecycle:/usr/local/sbin:")
    assert conf["Entrypoint"] == ["/cnb/process/web"] and "Cmd" not in conf
    assert conf["WorkingDir"] == "/workspace"
    assert image.labels["org.example.team"] == "qc" and image.labels["io.buildpacks.exec-env"] == "production"

    lc = image.label_json("io.buildpacks.lifecycle.metadata")
    assert list(lc) == ["app", "sbom", "buildpacks", "config", "launcher", "process-types", "runImage", "stack"]
    assert lc["sbom"]["sha"] == result.layer("buildpacksio/lifecycle:launch.sbom").diff_id
    assert lc["app"] == [{"sha": result.layer("slice-1").diff_id}]
    assert lc["launcher"]["sha"] == result.layer("buildpacksio/lifecycle:launcher").diff_id
    assert lc["config"]["sha"] == result.layer("buildpacksio/lifecycle:config").diff_id
    assert lc["process-types"]["sha"] == result.layer("buildpacksio/lifecycle:process-types").diff_id
    a, b = lc["buildpacks"]
    assert (a["key"], a["version"], sorted(a["layers"])) == ("acme/a", "1.0", ["deps", "zeta"])
    assert a["layers"]["deps"] == {"sha": result.layer("acme/a:deps").diff_id, "data": {"version": "1.2"},
                                   "build": False, "launch": True, "cache": False}
    assert a["layers"]["zeta"]["data"] is None and a["layers"]["zeta"]["cache"] is True
    assert b["layers"]["runtime"]["build"] is True
    assert lc["runImage"] == {"topLayer": "", "reference": ""}

    bm = image.label_json("io.buildpacks.build.metadata")
    assert bm["buildpacks"] == [{"id": "acme/a", "version": "1.0"}, {"id": "b", "version": "1.0"}]
    assert bm["buildpack-default-process-type"] == "web"
    assert bm["processes"][1] == {"type": "worker", "command": ["python3", "-c", "print('working')"], "args": None,
                                  "direct": True, "buildpackID": "acme/a"}
    assert set(bm["launcher"]) == {"version", "source"}
    assert image.label_json("io.buildpacks.project.metadata") == {}


def test_without_a_default_process_the_entrypoint_is_the_launcher(bps, app, tmp_path):
    bps("a", build='printf \'[[processes]]\\ntype = "web"\\ncommand = ["true"]\\n\' > "$CNB_LAYERS_DIR/launch.toml"')
    out = cnbsim.build(app, buildpacks=[bps.root / "a" / "1.0"], output=tmp_path / "out").output
    result = export_oci(out, tmp_path / "oci")
    assert Image(tmp_path / "oci").config["config"]["Entrypoint"] == [LAUNCHER_PATH]
    assert "no default process type" in result.log
    result = export_oci(out, tmp_path / "oci", default_process="web")
    assert Image(tmp_path / "oci").config["config"]["Entrypoint"] == ["/cnb/process/web"]
    assert "Setting default process type 'web'" in result.log
    with pytest.raises(ExportError, match="tried to set nope to default but it doesn't exist"):
        export_oci(out, tmp_path / "oci", default_process="nope")


def test_an_older_platform_api_writes_commands_as_strings_and_no_exec_env_label(build, tmp_path):
    export_oci(build().output, tmp_path / "oci", platform_api="0.9")
    image = Image(tmp_path / "oci")
    assert "CNB_PLATFORM_API=0.9" in image.config["config"]["Env"]
    worker = image.label_json("io.buildpacks.build.metadata")["processes"][1]
    assert (worker["command"], worker["args"]) == ("python3", ["-c", "print('working')"])
    assert "io.buildpacks.exec-env" not in image.labels


def test_without_processes_there_is_no_process_types_layer(bps, app, tmp_path):
    bps("a")
    out = cnbsim.build(app, buildpacks=[bps.root / "a" / "1.0"], output=tmp_path / "out").output
    result = export_oci(out, tmp_path / "oci")
    assert [lay.id for lay in result.layers] == ["buildpacksio/lifecycle:launch.sbom", "slice-1",
                                                 "buildpacksio/lifecycle:launcher", "buildpacksio/lifecycle:config"]
    assert Image(tmp_path / "oci").label_json("io.buildpacks.lifecycle.metadata")["process-types"] == {"sha": ""}


def test_two_exports_of_one_build_are_byte_identical(build, tmp_path):
    out = build().output
    first = export_oci(out, tmp_path / "one")
    logger = Logger(stream=None)
    second = export_oci(out, tmp_path / "two", log=logger)
    assert first.manifest_digest == second.manifest_digest
    assert ("info", "Adding layer 'acme/a:deps'") in logger.records
    for blob in (tmp_path / "one" / "blobs" / "sha256").iterdir():
        assert (tmp_path / "two" / "blobs" / "sha256" / blob.name).read_bytes() == blob.read_bytes()


def test_a_rebuild_keeps_unchanged_layers_and_reports_them_reused(build, app, tmp_path):
    first = export_oci(build().output, tmp_path / "oci")
    assert {lay.status for lay in first.layers} == {"added"}
    (app / "version.txt").write_text("2\n")
    lines: list[str] = []
    second = export_oci(build().output, tmp_path / "oci", log=lines.append)
    assert second.manifest_digest != first.manifest_digest
    for unchanged in ("acme/a:zeta", "b:runtime", "buildpacksio/lifecycle:launcher",
                      "buildpacksio/lifecycle:config", "buildpacksio/lifecycle:process-types"):
        assert second.layer(unchanged).reused and second.layer(unchanged).digest == first.layer(unchanged).digest
        assert f"Reusing layer '{unchanged}'" in lines
    for changed in ("acme/a:deps", "slice-1"):
        assert second.layer(changed).status == "added" and second.layer(changed).digest != first.layer(changed).digest
    assert "Adding layer 'acme/a:deps'" in lines and "Added 1/1 app layer(s)" in lines
    assert lines == list(second.log)
    image = Image(tmp_path / "oci")   # the old image's blobs that are no longer used are gone
    assert len(list((tmp_path / "oci" / "blobs" / "sha256").iterdir())) == len(image.manifest["layers"]) + 2


def test_app_slices_become_one_layer_each_then_the_rest(bps, app, tmp_path):
    (app / "static").mkdir()
    (app / "static" / "a.css").write_text("a")
    (app / "static" / "b.css").write_text("b")
    bps("a", build=r'''printf '[[slices]]\npaths = ["static/*.css"]\n[[slices]]\npaths = ["nothing-*"]\n[[slices]]\npaths = ["sub"]\n' > "$CNB_LAYERS_DIR/launch.toml"''')
    out = cnbsim.build(app, buildpacks=[bps.root / "a" / "1.0"], output=tmp_path / "out").output
    result = export_oci(out, tmp_path / "oci")
    image = Image(tmp_path / "oci")
    assert [lay.id for lay in result.layers][1:5] == ["slice-1", "slice-2", "slice-3", "slice-4"]
    assert [h["created_by"] for h in image.config["history"]][1:5] == [
        "Application Slice: 1", "Application Slice: 2", "Application Slice: 3", "Application Slice: 4"]
    assert image.names(1) == ["/workspace", "/workspace/static", "/workspace/static/a.css", "/workspace/static/b.css"]
    assert image.names(2) == []   # [IMPL] a slice that matches nothing is still an (empty) layer
    assert image.names(3) == ["/workspace", "/workspace/sub", "/workspace/sub/data.txt"]
    assert image.names(4) == ["/workspace", "/workspace/data-link", "/workspace/main.py", "/workspace/version.txt"]
    app_md = image.label_json("io.buildpacks.lifecycle.metadata")["app"]
    assert app_md == [{"sha": result.layer(f"slice-{n}").diff_id} for n in range(1, 5)]


@pytest.mark.parametrize("pattern, path, matches", [
    ("*.py", "main.py", True), ("*.py", "sub/main.py", False), ("sub/*", "sub/x", True),
    ("?.txt", "a.txt", True), ("?.txt", "ab.txt", False), ("[a-c]x", "bx", True), ("[^a-c]x", "dx", True),
    ("[^a-c]x", "ax", False), ("\\*", "*", True), ("[\\]]", "]", True), (".*", ".env", True),
])
def test_slice_globs_follow_go_filepath_match(pattern, path, matches):
    assert bool(glob_regex(pattern).fullmatch(path)) is matches


@pytest.mark.parametrize("pattern", ["[", "[]", "[a-", "a\\", "[-a]"])
def test_a_malformed_slice_glob_is_an_error(pattern):
    with pytest.raises(ExportError, match="bad pattern for glob path"):
        glob_regex(pattern)


@NEEDS_SKOPEO
def test_skopeo_inspects_the_image_and_shows_its_labels(build, tmp_path):
    result = export_oci(build().output, tmp_path / "oci", tag="v1")
    done = subprocess.run([SKOPEO, "inspect", f"oci:{tmp_path / 'oci'}:v1"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["Digest"] == result.manifest_digest
    assert shown["Labels"]["org.example.team"] == "qc"
    assert json.loads(shown["Labels"]["io.buildpacks.build.metadata"])["buildpack-default-process-type"] == "web"
    assert shown["Layers"] == [lay.digest for lay in result.layers]


@NEEDS_UMOCI
def test_umoci_unpacks_a_rootfs_that_matches_the_build_output(build, tmp_path):
    out = build().output
    export_oci(out, tmp_path / "oci", tag="v1")
    bundle = tmp_path / "bundle"
    done = subprocess.run([UMOCI, "unpack", "--rootless", "--image", f"{tmp_path / 'oci'}:v1", str(bundle)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rootfs = bundle / "rootfs"
    pairs = [(out / "layers" / "acme_a" / "deps", rootfs / "layers" / "acme_a" / "deps"),
             (out / "layers" / "acme_a" / "zeta", rootfs / "layers" / "acme_a" / "zeta"),
             (out / "layers" / "b" / "runtime", rootfs / "layers" / "b" / "runtime"),
             (out / "workspace", rootfs / "workspace")]
    for built, unpacked in pairs:
        assert tree(unpacked) == tree(built)
    assert (rootfs / "layers" / "config" / "metadata.toml").read_text() == \
        (out / "layers" / "config" / "metadata.toml").read_text()
    assert not (rootfs / "layers" / "acme_a" / "tools").exists()       # build-only: not in the image
    assert not (rootfs / "layers" / "acme_a" / "downloads").exists()   # cache-only: not in the image
    assert os.readlink(rootfs / "cnb" / "process" / "web") == LAUNCHER_PATH
    assert os.access(rootfs / "cnb" / "lifecycle" / "launcher", os.X_OK)


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Relative path -> (kind, content or link target), symlinks not followed."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", "")
        else:
            out[rel] = ("file" + ("+x" if os.access(path, os.X_OK) else ""), path.read_text())
    return out


def test_the_launcher_script_runs_cnbsim_with_the_process_type_of_its_name(build, tmp_path):
    out = build().output
    export_oci(out, tmp_path / "oci")
    launcher_layer = tarfile.open(fileobj=io.BytesIO(Image(tmp_path / "oci").tar(5)))
    script = tmp_path / "launcher"
    script.write_bytes(launcher_layer.extractfile(LAUNCHER_PATH).read())
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "CNB_PLATFORM_API": "0.15",
           "CNB_LAYERS_DIR": str(out / "layers"), "CNB_APP_DIR": str(out / "workspace"), "SCRIPT": str(script)}

    def run(argv0: str, path: str | None = None) -> subprocess.CompletedProcess:
        # `. "$SCRIPT"` runs the script with $0 = argv0, as /cnb/process/<type> -> launcher would.
        return subprocess.run(["sh", "-c", '. "$SCRIPT"', argv0], env={**env, "PATH": path or env["PATH"]},
                              capture_output=True, text=True, timeout=60)
    assert run("/cnb/process/web").stdout == "hello from web\n"    # the entrypoint of the default process
    assert run("/cnb/process/worker").stdout == "working\n"
    # as /cnb/lifecycle/launcher its args are a command, and without args there is none to run
    assert run(LAUNCHER_PATH).returncode == 82
    missing = run(LAUNCHER_PATH, path="/usr/bin:/bin")
    assert missing.returncode == 82 and "needs 'cnbsim' on PATH" in missing.stderr


@pytest.mark.parametrize("as_tag", [False, True])
def test_run_image_layers_env_history_and_labels_come_first(build, tmp_path, as_tag, write_run_image):
    base = write_run_image(tmp_path / "run")
    run_image = f"{tmp_path / 'run'}:base" if as_tag else tmp_path / "run"
    result = export_oci(build().output, tmp_path / "oci", run_image=run_image)
    image = Image(tmp_path / "oci")
    assert image.manifest["layers"][0] == base["layer"]
    assert image.config["rootfs"]["diff_ids"][0] == base["diff_id"]
    assert result.layers[0].status == "run-image" and result.layers[1].id == "acme/a:deps"
    assert image.config["history"][0]["created_by"] == "ADD os-release"
    assert len(image.config["history"]) == len(image.manifest["layers"])
    conf = image.config["config"]
    assert conf["Env"][:2] == ["PATH=/cnb/process:/cnb/lifecycle:/usr/bin:/bin", "LANG=C.UTF-8"]
    assert "Cmd" not in conf and conf["User"] == "1000:1000"
    assert image.labels["org.example.base"] == "tiny" and image.labels["org.example.team"] == "qc"
    run_md = image.label_json("io.buildpacks.lifecycle.metadata")["runImage"]
    assert run_md == {"topLayer": base["diff_id"], "reference": base["manifest"]["digest"]}


def test_a_run_image_that_is_not_an_oci_layout_is_an_error(build, tmp_path, write_run_image):
    out = build().output
    (tmp_path / "not-oci").mkdir()
    with pytest.raises(ExportError, match="the run image is not an OCI image layout") as err:
        export_oci(out, tmp_path / "oci", run_image=tmp_path / "not-oci")
    assert err.value.file == str(tmp_path / "not-oci")
    write_run_image(tmp_path / "run")
    with pytest.raises(ExportError, match="no image tagged 'nope'"):
        export_oci(out, tmp_path / "oci", run_image=f"{tmp_path / 'run'}:nope")
    assert not (tmp_path / "oci").exists()


def test_uncompressed_layers_are_plain_tars_whose_digest_is_the_diff_id(build, tmp_path):
    result = export_oci(build().output, tmp_path / "oci", compress=False)
    image = Image(tmp_path / "oci")
    assert {m["mediaType"] for m in image.manifest["layers"]} == {OCI_LAYER}
    assert all(lay.digest == lay.diff_id for lay in result.layers)
    assert image.names(0)[0] == "/layers"


def test_a_dir_that_is_not_a_build_output_says_to_run_cnbsim_build_first(tmp_path):
    (tmp_path / "random").mkdir()
    with pytest.raises(ExportError, match="run cnbsim build first") as err:
        export_oci(tmp_path / "random", tmp_path / "oci")
    assert err.value.file == str(tmp_path / "random") and err.value.exit_code == 62


@pytest.mark.parametrize("tag", ["", "my app", "app:1.0", "-x"])
def test_an_invalid_tag_is_an_error_before_anything_is_written(build, tmp_path, tag):
    with pytest.raises(ExportError, match="is not a valid image tag"):
        export_oci(build().output, tmp_path / "oci", tag=tag)
    assert not (tmp_path / "oci").exists()


def test_an_existing_dir_that_is_not_an_oci_layout_is_not_replaced(build, tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="refusing to replace it"):
        export_oci(build().output, tmp_path / "precious")
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_a_failed_export_leaves_the_previous_layout_untouched(build, tmp_path):
    out = build().output
    export_oci(out, tmp_path / "oci")
    before = {p.name: p.read_bytes() for p in (tmp_path / "oci").rglob("*") if p.is_file()}
    shutil.rmtree(out / "layers" / "acme_a" / "zeta")   # zeta is cache = true: no contents is an error
    with pytest.raises(ExportError, match="layer 'acme/a:zeta' is cache=true but has no contents"):
        export_oci(out, tmp_path / "oci")
    assert {p.name: p.read_bytes() for p in (tmp_path / "oci").rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["app", "buildpacks", "oci", "out"])


def test_a_launch_layer_without_contents_is_taken_from_the_previous_export(build, tmp_path):
    out = build().output
    first = export_oci(out, tmp_path / "oci")
    shutil.rmtree(out / "layers" / "acme_a" / "deps")
    second = export_oci(out, tmp_path / "oci")
    assert second.layer("acme/a:deps").reused
    assert second.layer("acme/a:deps").digest == first.layer("acme/a:deps").digest
    with pytest.raises(ExportError, match="cannot reuse 'acme/a:deps', previous image has no metadata"):
        export_oci(out, tmp_path / "oci", tag="other")


def test_a_malformed_layer_toml_names_the_layer(build, tmp_path):
    out = build().output
    (out / "layers" / "b" / "broken.toml").write_text("{not toml")
    with pytest.raises(ExportError, match=r"failed to parse metadata for layers '\[b:broken\]'"):
        export_oci(out, tmp_path / "oci")


def test_other_tags_in_the_layout_are_kept(build, bps, app, tmp_path):
    export_oci(build().output, tmp_path / "oci", tag="v1")
    (app / "version.txt").write_text("2\n")
    export_oci(build().output, tmp_path / "oci", tag="v2")
    v1, v2 = Image(tmp_path / "oci", "v1"), Image(tmp_path / "oci", "v2")
    for image in (v1, v2):
        for n in range(len(image.manifest["layers"])):
            image.tar(n)   # every blob present and matching its digest
    assert v1.entry["digest"] != v2.entry["digest"]
    export_oci(build().output, tmp_path / "oci", tag="v1")   # re-tagging v1 keeps v2 and the order
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    assert tags == ["v1", "v2"]


def test_project_toml_version_and_source_url_become_project_metadata(build, app, tmp_path):
    (app / "project.toml").write_text('[_]\nschema-version = "0.2"\nversion = "1.0.2"\n'
                                      'source-url = "https://example.com/repo"\n')
    export_oci(build().output, tmp_path / "oci")
    assert Image(tmp_path / "oci").label_json("io.buildpacks.project.metadata") == {
        "source": {"type": "project", "version": {"declared": "1.0.2"},
                   "metadata": {"url": "https://example.com/repo"}}}


def test_source_date_epoch_sets_the_created_time(build, tmp_path, monkeypatch):
    out = build().output
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    export_oci(out, tmp_path / "oci")
    assert Image(tmp_path / "oci").config["created"] == "2023-11-14T22:13:20Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    result = export_oci(out, tmp_path / "oci")
    assert "Warning: Ignoring invalid SOURCE_DATE_EPOCH" in result.log
    assert Image(tmp_path / "oci").config["created"] == "1980-01-01T00:00:01Z"
