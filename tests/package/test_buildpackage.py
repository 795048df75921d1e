"""`cnbsim package` (pack buildpack package) and buildpackages (.cnb, OCI layouts) as buildpack sources."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import cnbsim
from cnbsim.buildpackage import LAYERS_LABEL, METADATA_LABEL, package, read_buildpackage
from cnbsim.errors import CnbsimError

REPO = Path(__file__).resolve().parents[2]
JOB_TEMPLATE_PACKAGE = REPO / "buildpack" / "package.toml"
DEFAULT_BUILDER = REPO / "cnbsim" / "builders" / "planqk" / "builder.toml"
PLANQK_PIP = REPO / "fixtures" / "apps" / "planqk-pip"
SKOPEO, UMOCI = shutil.which("skopeo"), shutil.which("umoci")
NEEDS_OCI_TOOLS = pytest.mark.skipif(not (SKOPEO and UMOCI),
                                     reason="skopeo and umoci are not installed (make system-tools installs them)")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Unpacked buildpackages go to this test's own cache, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CNBSIM_BUILDPACK_STORE", raising=False)


def cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "cnbsim.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def layout_of(cnb: Path) -> Path:
    """A .cnb file's OCI layout, extracted beside it (to look inside). Its entries are absolute (`/blobs/...`,
    as pack writes them), so each is put under `dest` by hand: tarfile would write them to `/`."""
    dest = cnb.with_suffix(".layout")
    with tarfile.open(cnb) as tar:
        for member in tar.getmembers():
            target = dest / member.name.lstrip("/")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    return dest


def image_config(layout: Path) -> tuple[dict, dict]:
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    config = json.loads((layout / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text())
    return manifest, config


def layer_names(layout: Path, desc: dict) -> list[str]:
    with tarfile.open(layout / "blobs/sha256" / desc["digest"][7:], "r:*") as tar:
        return [m.name for m in tar.getmembers()]


@pytest.fixture
def composite(bps):
    """A composite of two buildpacks, each its own directory, tied by a package.toml."""
    a = bps("t/a", "1.0", build='echo "a ran"; mkdir -p "$CNB_LAYERS_DIR/a"; '
                                'printf "[types]\\nlaunch = true\\n" > "$CNB_LAYERS_DIR/a.toml"')
    b = bps("t/b", "2.0", detect="exit 0", build='echo "b ran"', extra='[[stacks]]\nid = "*"\n')
    top = bps("t/composite", "3.0", order=[[("t/a", "1.0"), ("t/b", "2.0")]])
    (top / "package.toml").write_text(f'[buildpack]\nuri = "."\n\n[[dependencies]]\nuri = "{a}"\n\n'
                                      f'[[dependencies]]\nuri = "{b}"\n')
    return top


def test_package_of_the_job_template_has_packs_labels_and_layout(tmp_path):
    out = tmp_path / "jt.cnb"
    done = package(JOB_TEMPLATE_PACKAGE, out)
    assert (done.id, done.version) == ("planqk-buildpacks/job-template", "1.0.0")
    layout = layout_of(out)
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    manifest, config = image_config(layout)
    assert config["os"] == "linux" and config["architecture"]
    labels = config["config"]["Labels"]
    meta = json.loads(labels[METADATA_LABEL])
    assert meta["id"] == "planqk-buildpacks/job-template" and meta["version"] == "1.0.0"
    assert meta["stacks"] == [{"id": "*"}]          # a buildpack with targets and no stacks: any stack (pack)
    layers = json.loads(labels[LAYERS_LABEL])
    info = layers["planqk-buildpacks/job-template"]["1.0.0"]
    assert info["api"] == "0.10"
    assert info["layerDiffID"] == config["rootfs"]["diff_ids"][0]
    names = layer_names(layout, manifest["layers"][0])
    base = "/cnb/buildpacks/planqk-buildpacks_job-template/1.0.0"
    assert names[:2] == ["/cnb/buildpacks/planqk-buildpacks_job-template", base]
    assert f"{base}/bin/build" in names and f"{base}/buildpack.toml" in names
    with tarfile.open(layout / "blobs/sha256" / manifest["layers"][0]["digest"][7:], "r:*") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members[f"{base}/bin/build"].mode == 0o755 and members[f"{base}/buildpack.toml"].mode == 0o644
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
    assert {m.mtime for m in members.values()} == {315532801}      # 1980-01-01T00:00:01Z, as pack writes


def test_package_is_reproducible(tmp_path):
    first, second = tmp_path / "1.cnb", tmp_path / "2.cnb"
    package(JOB_TEMPLATE_PACKAGE, first)
    package(JOB_TEMPLATE_PACKAGE, second)
    assert first.read_bytes() == second.read_bytes()


def test_composite_package_holds_one_layer_per_buildpack_and_the_order(composite, tmp_path):
    out = tmp_path / "c.cnb"
    done = package(composite / "package.toml", out)
    assert [key for key, _ in done.layers] == ["t/a@1.0", "t/b@2.0", "t/composite@3.0"]
    manifest, config = image_config(layout_of(out))
    assert len(manifest["layers"]) == 3
    layers = json.loads(config["config"]["Labels"][LAYERS_LABEL])
    assert layers["t/composite"]["3.0"]["order"] == [{"group": [{"id": "t/a", "version": "1.0"},
                                                                  {"id": "t/b", "version": "2.0"}]}]
    assert layers["t/b"]["2.0"]["stacks"] == [{"id": "*"}]
    assert sorted(info["layerDiffID"] for v in layers.values() for info in v.values()) == \
        sorted(config["rootfs"]["diff_ids"])


def test_composite_missing_a_dependency_is_refused(bps, tmp_path):
    top = bps("t/composite", "3.0", order=[[("t/a", "1.0")]])
    (top / "package.toml").write_text('[buildpack]\nuri = "."\n')
    with pytest.raises(CnbsimError, match="references buildpack t/a@1.0, which is not present") as err:
        package(top / "package.toml", tmp_path / "c.cnb")
    assert err.value.field == "dependencies"


@NEEDS_OCI_TOOLS
def test_skopeo_and_umoci_read_both_formats(composite, tmp_path):
    cli("package", tmp_path / "c.cnb", "--config", composite / "package.toml").check_returncode()
    proc = cli("package", tmp_path / "c-oci", "--config", composite / "package.toml", "--format", "oci",
               "--tag", "3.0")
    assert proc.returncode == 0, proc.stderr
    for ref in (f"oci-archive:{tmp_path / 'c.cnb'}", f"oci:{tmp_path / 'c-oci'}:3.0"):
        inspected = json.loads(subprocess.run([SKOPEO, "inspect", ref], capture_output=True, text=True,
                                              check=True).stdout)
        assert json.loads(inspected["Labels"][METADATA_LABEL])["id"] == "t/composite"
        assert len(inspected["Layers"]) == 3
    subprocess.run([UMOCI, "unpack", "--rootless", "--image", f"{tmp_path / 'c-oci'}:3.0", str(tmp_path / "bundle")],
                   check=True, capture_output=True)
    rootfs = tmp_path / "bundle" / "rootfs" / "cnb" / "buildpacks"
    assert (rootfs / "t_a" / "1.0" / "bin" / "build").stat().st_mode & 0o111
    assert (rootfs / "t_composite" / "3.0" / "buildpack.toml").is_file()


def _summary(result: cnbsim.BuildResult) -> tuple:
    return ([(g.id, g.version) for g in result.group],
            [(lay.buildpack_id, lay.name, lay.launch, lay.build, lay.cache) for lay in result.layers],
            [(p.type, p.command, p.args) for p in result.processes])


def _builder_with_job_template_at(uri: str, dest: Path) -> Path:
    text = DEFAULT_BUILDER.read_text().replace('uri = "docker://planqk-buildpack-job-template"', f'uri = "{uri}"')
    assert f'uri = "{uri}"' in text
    path = dest / "builder.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("fmt, uri", [("file", "job-template.cnb"), ("oci", "oci:job-template-oci")])
def test_planqk_build_from_a_buildpackage_equals_the_build_from_the_directory(tmp_path, fmt, uri):
    target = tmp_path / ("job-template.cnb" if fmt == "file" else "job-template-oci")
    package(JOB_TEMPLATE_PACKAGE, target, fmt=fmt)
    builder = _builder_with_job_template_at(uri, tmp_path)
    from_package = cnbsim.build(PLANQK_PIP, builder=builder, output=tmp_path / "out-pkg")
    from_dir = cnbsim.build(PLANQK_PIP, output=tmp_path / "out-dir")
    assert _summary(from_package) == _summary(from_dir)
    unpacked = from_package.sources.store.lookup("planqk-buildpacks/job-template", "1.0.0").root
    assert (tmp_path / "xdg" / "cnbsim" / "buildpackages") in unpacked.parents


def test_buildpack_flag_takes_a_cnb_file_and_an_oci_layout(composite, tmp_path, app):
    package(composite / "package.toml", tmp_path / "c.cnb")
    package(composite / "package.toml", tmp_path / "c-oci", fmt="oci", tag="3.0")
    for ref in (tmp_path / "c.cnb", f"oci:{tmp_path / 'c-oci'}:3.0", f"oci:{tmp_path / 'c-oci'}"):
        result = cnbsim.build(app, buildpacks=[ref], output=tmp_path / "out")
        assert [g.id for g in result.group] == ["t/a", "t/b"]
        assert "a ran" in result.output_of("t/a")
        assert result.layer("t/a", "a").launch


def test_unpacked_layers_are_reused_on_later_builds(composite, tmp_path, app):
    package(composite / "package.toml", tmp_path / "c.cnb")
    cnbsim.build(app, buildpacks=[tmp_path / "c.cnb"], output=tmp_path / "out")
    store = tmp_path / "xdg" / "cnbsim" / "buildpackages"
    entries = sorted(p.name for p in store.iterdir())
    assert len(entries) == 3 and all(e.startswith("sha256-") for e in entries)
    marker = store / entries[0] / ".complete"
    before = marker.stat().st_mtime_ns
    cnbsim.build(app, buildpacks=[tmp_path / "c.cnb"], output=tmp_path / "out")
    assert sorted(p.name for p in store.iterdir()) == entries and marker.stat().st_mtime_ns == before


def test_a_saved_image_in_the_buildpack_store_replaces_the_stub(bps, tmp_path, app):
    saved = bps("paketo-buildpacks/pip-install", "0.6.1",
                build='echo "the saved pip-install ran"')
    store = tmp_path / "store"
    store.mkdir()
    package(None, store / "paketo-pip-install", fmt="oci", tag="0.6.1", path=saved)
    builder = tmp_path / "builder.toml"
    builder.write_text('[[buildpacks]]\nuri = "gcr.io/paketo-buildpacks/pip-install:0.6.1"\n\n'
                       '[[order]]\n[[order.group]]\nid = "paketo-buildpacks/pip-install"\nversion = "0.6.1"\n')
    proc = cli("build", app, "--builder", builder, "--output", tmp_path / "out", "--buildpack-store", store,
               "--cache-dir", tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    assert "the saved pip-install ran" in proc.stdout
    assert "using the saved buildpackage" in proc.stdout and "paketo-pip-install" in proc.stdout
    without = cli("build", app, "--builder", builder, "--output", tmp_path / "out2", "--cache-dir", tmp_path / "c2")
    assert "the saved pip-install ran" not in without.stdout and "offline stub" in without.stdout


def _repack(cnb: Path, dest: Path, edit) -> Path:
    """A copy of a .cnb with `edit(layout_dir)` applied to its layout."""
    layout = layout_of(cnb)
    edit(layout)
    with tarfile.open(dest, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname="/" + str(path.relative_to(layout)), recursive=False)
    return dest


def _layer_blob(layout: Path) -> Path:
    manifest, _ = image_config(layout)
    return layout / "blobs/sha256" / manifest["layers"][0]["digest"][7:]


def test_a_tampered_layer_blob_is_refused(tmp_path):
    cnb = tmp_path / "jt.cnb"
    package(JOB_TEMPLATE_PACKAGE, cnb)

    def tamper(layout: Path) -> None:
        blob = _layer_blob(layout)
        data = gzip.decompress(blob.read_bytes()).replace(b"run(", b"RUN(", 1)
        blob.write_bytes(gzip.compress(data, mtime=0))
    bad = _repack(cnb, tmp_path / "bad.cnb", tamper)
    with pytest.raises(CnbsimError, match="does not match its digest") as err:
        read_buildpackage(bad)
    assert err.value.file == str(bad)


def test_a_missing_blob_and_a_file_that_is_not_a_buildpackage_are_clear_errors(tmp_path, app):
    cnb = tmp_path / "jt.cnb"
    package(JOB_TEMPLATE_PACKAGE, cnb)
    missing = _repack(cnb, tmp_path / "missing.cnb", lambda layout: _layer_blob(layout).unlink())
    not_tar = tmp_path / "notes.cnb"
    not_tar.write_text("hello\n")
    no_label = tmp_path / "plain"
    (no_label / "blobs" / "sha256").mkdir(parents=True)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    cd = hashlib.sha256(config).hexdigest()
    (no_label / "blobs/sha256" / cd).write_bytes(config)
    manifest = json.dumps({"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                                          "digest": f"sha256:{cd}", "size": len(config)},
                           "layers": []}).encode()
    md = hashlib.sha256(manifest).hexdigest()
    (no_label / "blobs/sha256" / md).write_bytes(manifest)
    (no_label / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{md}",
         "size": len(manifest)}]}))
    (no_label / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for source, message in ((missing, "is missing"), (not_tar, "not an uncompressed tar"),
                            (no_label, "no io.buildpacks.buildpackage.metadata label")):
        proc = cli("build", app, "--buildpack", source if source != no_label else f"oci:{source}",
                   "--output", tmp_path / "out", "--cache-dir", tmp_path / "cache")
        assert proc.returncode == 1, proc.stderr
        assert message in proc.stderr and str(source) in proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def _evil_layer(entries: list[tarfile.TarInfo]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info in entries:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return raw.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "absolute-outside", "symlink-out"])
def test_a_layer_entry_that_escapes_cnb_buildpacks_is_refused(tmp_path, kind):
    cnb = tmp_path / "jt.cnb"
    package(JOB_TEMPLATE_PACKAGE, cnb)
    escape = tmp_path / "escaped"
    base = "/cnb/buildpacks/planqk-buildpacks_job-template/1.0.0"
    if kind == "dotdot":
        evil = tarfile.TarInfo(f"{base}/../../../../{escape}")
        evil.size = 1
    elif kind == "absolute-outside":
        evil = tarfile.TarInfo("/etc/cron.d/evil")
        evil.size = 1
    else:
        evil = tarfile.TarInfo(f"{base}/bin/link")
        evil.type, evil.linkname = tarfile.SYMTYPE, "/etc/shadow"

    def swap_layer(layout: Path) -> None:
        index = json.loads((layout / "index.json").read_text())
        mpath = layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]
        manifest = json.loads(mpath.read_text())
        cpath = layout / "blobs/sha256" / manifest["config"]["digest"][7:]
        config = json.loads(cpath.read_text())
        with tarfile.open(_layer_blob(layout), "r:*") as tar:
            entries = [m for m in tar.getmembers() if not m.isreg()]
        data = _evil_layer([*entries, evil])
        diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
        (layout / "blobs/sha256" / diff_id[7:]).write_bytes(data)
        manifest["layers"] = [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id,
                               "size": len(data)}]
        config["rootfs"]["diff_ids"] = [diff_id]
        labels = config["config"]["Labels"]
        layers = json.loads(labels[LAYERS_LABEL])
        layers["planqk-buildpacks/job-template"]["1.0.0"]["layerDiffID"] = diff_id
        labels[LAYERS_LABEL] = json.dumps(layers)
        cdata = json.dumps(config).encode()
        cd = hashlib.sha256(cdata).hexdigest()
        (layout / "blobs/sha256" / cd).write_bytes(cdata)
        manifest["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{cd}",
                              "size": len(cdata)}
        mdata = json.dumps(manifest).encode()
        md = hashlib.sha256(mdata).hexdigest()
        (layout / "blobs/sha256" / md).write_bytes(mdata)
        index["manifests"][0].update(digest=f"sha256:{md}", size=len(mdata))
        (layout / "index.json").write_text(json.dumps(index))
    bad = _repack(cnb, tmp_path / "bad.cnb", swap_layer)
    with pytest.raises(CnbsimError, match="refused"):
        read_buildpackage(bad)
    assert not escape.exists()
    store = tmp_path / "xdg" / "cnbsim" / "buildpackages"
    assert not any(p.name.startswith("sha256-") for p in store.iterdir())   # nothing half-unpacked kept


def test_package_never_overwrites_a_file_that_is_not_a_buildpackage(tmp_path):
    thesis = tmp_path / "thesis.cnb"
    thesis.write_text("years of work\n")
    proc = cli("package", thesis, "--config", JOB_TEMPLATE_PACKAGE)
    assert proc.returncode == 1 and "refusing to overwrite" in proc.stderr
    assert thesis.read_text() == "years of work\n"
    package(JOB_TEMPLATE_PACKAGE, tmp_path / "ok.cnb")
    assert cli("package", tmp_path / "ok.cnb", "--config", JOB_TEMPLATE_PACKAGE).returncode == 0   # a package: ok


def test_package_cli_defaults_to_package_toml_in_the_current_dir(tmp_path):
    proc = cli("package", tmp_path / "jt.cnb", cwd=REPO / "buildpack")
    assert proc.returncode == 0, proc.stderr
    assert "Successfully created package" in proc.stdout and (tmp_path / "jt.cnb").is_file()
    bad = cli("package", tmp_path / "x.cnb", cwd=tmp_path)
    assert bad.returncode == 1 and "--config" in bad.stderr


def _readme_builder(tmp_path: Path) -> Path:
    """The builder.toml of buildpack/README.md, its job-template `uri` pointing at the packaged file."""
    text = (REPO / "buildpack" / "README.md").read_text()
    block = text.split("```toml\ndescription = \"PlanQK services")[1].split("```")[0]
    block = 'description = "PlanQK services' + block
    old = 'uri = "docker://planqk-buildpack-job-template:1.0.0"'
    assert old in block
    (tmp_path / "dist").mkdir()
    package(JOB_TEMPLATE_PACKAGE, tmp_path / "dist" / "planqk-buildpack-job-template.cnb")
    path = tmp_path / "builder.toml"
    path.write_text(block.replace(old, 'uri = "dist/planqk-buildpack-job-template.cnb"'))
    return path


@pytest.mark.parametrize("fixture", ["planqk-pip", "planqk-pipenv", "planqk-conda"])
def test_the_readme_builder_with_the_packaged_job_template_builds_the_planqk_fixtures(tmp_path, fixture):
    builder = _readme_builder(tmp_path)
    result = cnbsim.build(REPO / "fixtures" / "apps" / fixture, builder=builder, output=tmp_path / "out")
    assert result.group[-1].id == "planqk-buildpacks/job-template"
    job_template = result.sources.store.lookup("planqk-buildpacks/job-template", "1.0.0")
    assert (tmp_path / "xdg" / "cnbsim" / "buildpackages") in job_template.root.parents
    assert result.layer("planqk-buildpacks/job-template", "job-template").launch
    assert result.process("web").command == ("python", "-m", "app")
