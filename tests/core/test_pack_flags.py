"""pack build's flags through the Python API: --default-process, --run-image, --volume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import cnbsim
from cnbsim.errors import ConfigError, ExportError
from cnbsim.output import BuiltOutput
from cnbsim.phase.export import export_oci
from cnbsim.runner import RunRequest, run_attached

TWO_PROCESSES = '''
cat > "$CNB_LAYERS_DIR/launch.toml" <<'TOML'
[[processes]]
type = "web"
command = ["echo", "serving"]
default = true

[[processes]]
type = "worker"
command = ["echo", "working"]
TOML
'''


@pytest.fixture
def two_processes(bps):
    return bps("test/procs", build=TWO_PROCESSES)


def _oci_config(oci_dir):
    index = json.loads((oci_dir / "index.json").read_text())
    manifest = json.loads((oci_dir / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    return json.loads((oci_dir / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_text())


def test_default_process_is_the_image_default_everywhere(app, two_processes, tmp_path, capsys):
    result = cnbsim.build(app, buildpacks=[two_processes], output=tmp_path / "out", default_process="worker")
    assert result.default_process == "worker"
    assert result.outcome.metadata.default_process == "web"          # what the buildpack said stays recorded
    report = json.loads((result.output / "report.json").read_text())
    assert report["default_process"] == "worker" and report["buildpack_default_process"] == "web"
    assert [p["type"] for p in report["processes"] if p["default"]] == ["worker"]
    output = BuiltOutput.open(result.output)
    assert output.default_process == "worker"
    export_oci(result.output, tmp_path / "oci")
    assert _oci_config(tmp_path / "oci")["config"]["Entrypoint"] == ["/cnb/process/worker"]
    out = tmp_path / "run.out"
    with open(out, "w") as stdout, open(tmp_path / "run.err", "w") as stderr:
        outcome = run_attached(RunRequest(output), stdout, stderr)   # in the sandbox where the build was
    assert outcome.code == 0 and out.read_text() == "working\n"


def test_without_default_process_the_buildpacks_default_is_kept(app, two_processes, tmp_path):
    result = cnbsim.build(app, buildpacks=[two_processes], output=tmp_path / "out")
    report = json.loads((result.output / "report.json").read_text())
    assert result.default_process == report["default_process"] == "web"
    assert "buildpack_default_process" not in report
    assert not (result.output / "platform.toml").exists()
    export_oci(result.output, tmp_path / "oci")
    assert _oci_config(tmp_path / "oci")["config"]["Entrypoint"] == ["/cnb/process/web"]


def test_an_unknown_default_process_fails_the_build_and_keeps_the_last_output(app, two_processes, tmp_path):
    good = cnbsim.build(app, buildpacks=[two_processes], output=tmp_path / "out")
    with pytest.raises(ExportError) as err:
        cnbsim.build(app, buildpacks=[two_processes], output=tmp_path / "out", default_process="cron")
    assert err.value.exit_code == 62
    assert "tried to set cron to default but it doesn't exist" in str(err.value)
    assert "web, worker" in str(err.value)
    assert BuiltOutput.open(good.output).default_process == "web"


TARGETED = '''
[[targets]]
os = "linux"
arch = "arm64"
'''

SHOW_TARGET = 'echo "target $CNB_TARGET_OS/$CNB_TARGET_ARCH ${CNB_TARGET_DISTRO_NAME:-} ${CNB_TARGET_DISTRO_VERSION:-}"'


@pytest.fixture
def targeted_order(bps):
    """Group 1: a buildpack for linux/arm64 only; group 2: one for any target, that shows its target."""
    bps("test/arm-only", extra=TARGETED)
    bps("test/any", build=SHOW_TARGET)
    return bps.builder([[("test/arm-only", "1.0")], [("test/any", "1.0")]])


def test_the_run_image_target_decides_which_buildpacks_detect(app, targeted_order, tmp_path, write_run_image):
    write_run_image(tmp_path / "amd", arch="amd64")
    write_run_image(tmp_path / "arm", arch="arm64")
    on_amd = cnbsim.detect(app, builder=targeted_order, run_image=tmp_path / "amd")
    assert [e.id for e in on_amd.group] == ["test/any"]
    skipped = on_amd.groups[0].elements[0]
    assert skipped.id == "test/arm-only" and "unable to satisfy target os/arch constraints" in skipped.detail
    assert '"arch":"amd64"' in skipped.detail
    on_arm = cnbsim.detect(app, builder=targeted_order, run_image=tmp_path / "arm")
    assert [e.id for e in on_arm.group] == ["test/arm-only"]


def test_the_run_image_target_is_the_build_target_and_is_recorded(app, targeted_order, tmp_path, write_run_image):
    base = write_run_image(tmp_path / "run", arch="amd64", labels={
        "io.buildpacks.base.distro.name": "ubuntu", "io.buildpacks.base.distro.version": "22.04"})
    result = cnbsim.build(app, builder=targeted_order, output=tmp_path / "out", run_image=tmp_path / "run")
    assert "target linux/amd64 ubuntu 22.04" in result.output_of("test/any")
    report = json.loads((result.output / "report.json").read_text())
    assert report["run_image"]["target"] == {"os": "linux", "arch": "amd64",
                                             "distro": {"name": "ubuntu", "version": "22.04"}}
    assert report["run_image"]["image"] == base["manifest"]["digest"]
    # the export goes on top of the run image the build was given, without naming it again
    exported = export_oci(result.output, tmp_path / "oci")
    assert exported.layers[0].diff_id == base["diff_id"]
    assert "org.example.base" in _oci_config(tmp_path / "oci")["config"]["Labels"]


def test_a_run_image_that_is_not_an_oci_layout_is_a_config_error(app, two_processes, tmp_path):
    (tmp_path / "not-oci").mkdir()
    with pytest.raises(ConfigError) as err:
        cnbsim.build(app, buildpacks=[two_processes], output=tmp_path / "out", run_image=tmp_path / "not-oci")
    assert err.value.field == "--run-image" and "not-oci" in str(err.value)


@pytest.mark.parametrize("spec, words", [
    ("nocolon", "is not HOST:TARGET[:ro|rw]"),
    ("{host}:relative", "must be an absolute path"),
    ("{host}:/mnt/x:rx", "unsupported volume option 'rx'"),
    ("{host}:/workspace/x", "/workspace is the lifecycle's own directory"),
    ("{host}:/layers", "/layers is the lifecycle's own directory"),
    ("{host}/missing:/mnt/x", "the host path does not exist"),
    ("myvolume:/mnt/x", "named docker volume"),
])
def test_bad_volumes_are_one_clear_error(app, two_processes, tmp_path, spec, words):
    with pytest.raises(ConfigError) as err:
        cnbsim.build(app, buildpacks=[two_processes], output=tmp_path / "out",
                     volumes=(spec.format(host=tmp_path),))
    assert words in str(err.value) and err.value.field == "--volume"


def test_volume_syntax_and_read_only_default():
    from cnbsim.platform import Volume
    assert Volume.parse("/tmp:/mnt/t").writable is False
    assert Volume.parse("/tmp:/mnt/t:ro").writable is False
    assert Volume.parse("/tmp:/mnt/t/:rw") == Volume(Volume.parse("/tmp:/mnt/t").host, "/mnt/t", True)


def test_options_reach_the_pytest_plugin_build(cnb_build, two_processes, app, tmp_path, write_run_image):
    write_run_image(tmp_path / "run")
    result = cnb_build(app, buildpacks=[two_processes], default_process="worker", run_image=tmp_path / "run")
    assert result.default_process == "worker"
    assert result.platform.target is not None and result.platform.target.arch == "amd64"


def test_the_cli_help_names_the_flags():
    done = subprocess.run([sys.executable, "-m", "cnbsim.cli", "build", "--help"], capture_output=True, text=True)
    for flag in ("--volume", "--default-process", "--run-image", "--descriptor"):
        assert flag in done.stdout
