"""Behaviours where cnbsim once differed from the lifecycle (found by tests/differential), from the spec
and the lifecycle's code: SBOM files, the detect-result cache, which APIs are verified, the run target."""

from __future__ import annotations

import json
import re

import pytest

from cnbsim.errors import BuildError, BuildpackApiError
from cnbsim.model.api import ApiVersion
from cnbsim.platform import RunTarget
from cnbsim.tomlio import read_toml

CDX, SPDX = "application/vnd.cyclonedx+json", "application/spdx+json"
LAYER = '''mkdir -p "$CNB_LAYERS_DIR/{name}"
printf '[types]\\nlaunch = {launch}\\nbuild = {build}\\ncache = {cache}\\n' > "$CNB_LAYERS_DIR/{name}.toml"
'''


def sbom(name: str, owner: str) -> str:
    return f"""echo '{{"owner": "{owner}"}}' > "$CNB_LAYERS_DIR/{name}"\n"""


def formats(*types: str) -> str:
    return "sbom-formats = [" + ", ".join(f'"{t}"' for t in types) + "]"


def read_json(path):
    return json.loads(path.read_text())


# -- SBOM files (buildpack.md "Bill of Materials"; lifecycle buildpack/bomfile.go, phase/builder.go) --

def test_sbom_files_are_copied_to_launch_build_and_cache_trees(lc, bps):
    body = (LAYER.format(name="run", launch="true", build="false", cache="true")
            + LAYER.format(name="tools", launch="false", build="true", cache="false")
            + sbom("run.sbom.cdx.json", "run") + sbom("tools.sbom.spdx.json", "tools")
            + sbom("launch.sbom.cdx.json", "image") + sbom("build.sbom.cdx.json", "build")
            + sbom("nolayer.sbom.cdx.json", "ignored"))
    bps("t/a", build=body, extra=formats(CDX, SPDX))
    lc.build([[("t/a", "1.0")]])
    sbom_dir = lc.layers / "sbom"
    files = sorted(str(p.relative_to(sbom_dir)) for p in sbom_dir.rglob("*") if p.is_file())
    assert files == ["build/sbom.legacy.json", "build/t_a/sbom.cdx.json", "build/t_a/tools/sbom.spdx.json",
                     "cache/t_a/run/sbom.cdx.json", "launch/sbom.legacy.json", "launch/t_a/run/sbom.cdx.json",
                     "launch/t_a/sbom.cdx.json"]
    assert read_json(sbom_dir / "launch/t_a/run/sbom.cdx.json") == {"owner": "run"}
    assert read_json(sbom_dir / "launch/t_a/sbom.cdx.json") == {"owner": "image"}


def test_legacy_bom_is_null_without_bom_tables_and_lists_them_with_their_buildpack(lc, bps):
    bps("t/a", build='printf \'[[bom]]\\nname = "pip"\\n[bom.metadata]\\nversion = "23"\\n\' '
                     '> "$CNB_LAYERS_DIR/launch.toml"')
    bps("t/b")
    lc.build([[("t/a", "1.0"), ("t/b", "1.0")]])
    assert read_json(lc.layers / "sbom/launch/sbom.legacy.json") == [
        {"name": "pip", "metadata": {"version": "23"}, "buildpack": {"id": "t/a", "version": "1.0"}}]
    assert read_json(lc.layers / "sbom/build/sbom.legacy.json") is None
    assert "bom" not in read_toml(lc.layers / "config/metadata.toml")   # Platform API >= 0.9


def test_legacy_bom_goes_to_metadata_toml_before_platform_api_0_9(lc, bps):
    bps("t/a", build='printf \'[[bom]]\\nname = "pip"\\n\' > "$CNB_LAYERS_DIR/launch.toml"')
    lc.build([[("t/a", "1.0")]], api=ApiVersion(0, 8))
    assert read_toml(lc.layers / "config/metadata.toml")["bom"] == [
        {"name": "pip", "buildpack": {"id": "t/a", "version": "1.0"}}]
    assert not (lc.layers / "sbom/launch/sbom.legacy.json").exists()


def test_bom_entry_with_a_top_level_version_fails_the_build(lc, bps):
    bps("t/a", build='printf \'[[bom]]\\nname = "pip"\\nversion = "1"\\n\' > "$CNB_LAYERS_DIR/launch.toml"')
    with pytest.raises(BuildError, match="bom entry 'pip' has a top level version which is not allowed") as err:
        lc.build([[("t/a", "1.0")]])
    assert err.value.exit_code == 52


@pytest.mark.parametrize("declared, name, message", [
    ((CDX,), "launch.sbom.spdx.json", "undeclared SBOM media type: 'application/spdx+json'"),
    ((), "launch.sbom.cdx.json", "undeclared SBOM media type: 'application/vnd.cyclonedx+json'"),
    ((CDX,), "launch.sbom.xml.json", "unsupported SBOM file format"),
])
def test_undeclared_or_unknown_sbom_format_fails_the_build_with_52(lc, bps, declared, name, message):
    bps("t/a", build=sbom(name, "x"), extra=formats(*declared) if declared else "")
    with pytest.raises(BuildError, match=re.escape(message)) as err:
        lc.build([[("t/a", "1.0")]])
    assert err.value.exit_code == 52
    assert not (lc.layers / "config" / "metadata.toml").exists()


def test_declared_media_type_parameters_are_ignored(lc, bps):
    bps("t/a", build=sbom("launch.sbom.cdx.json", "x"), extra=formats(CDX + ";version=1.4"))
    lc.build([[("t/a", "1.0")]])
    assert (lc.layers / "sbom/launch/t_a/sbom.cdx.json").is_file()


def test_sbom_of_a_layer_without_toml_is_neither_checked_nor_copied(lc, bps):
    bps("t/a", build=sbom("ghost.sbom.xml.json", "x"))
    lc.build([[("t/a", "1.0")]])
    assert sorted(p.name for p in (lc.layers / "sbom").rglob("*") if p.is_file()) == ["sbom.legacy.json"] * 2


def test_metadata_toml_has_an_empty_process_list(lc, bps):
    bps("t/a")
    lc.build([[("t/a", "1.0")]])
    assert read_toml(lc.layers / "config/metadata.toml")["processes"] == []


# -- detect: results are kept across groups (lifecycle phase/detector.go detectGroup) ----------------

BIONIC = '[[stacks]]\nid = "io.buildpacks.stacks.bionic"'


def test_target_mismatch_is_remembered_for_an_optional_occurrence_in_a_later_group(lc, bps, tmp_path):
    count = tmp_path / "a.runs"
    bps("t/a", detect=f"echo run >> {count}", extra=BIONIC, api="0.7")
    bps("t/b")
    result = lc.detect([[("t/a", "1.0")], [("t/a", "1.0", True), ("t/b", "1.0")]],
                       target=RunTarget("linux", "amd64", "", "debian", "12"))
    assert [e.id for e in result.group] == ["t/b"]
    assert not count.exists()          # its bin/detect never ran: the first group's -1 result is reused


def test_optional_buildpack_with_a_target_mismatch_still_runs_when_first_seen_optional(lc, bps, tmp_path):
    # lifecycle phase/detector.go: only a required element's target is checked
    bps("t/a", extra=BIONIC, api="0.7")
    result = lc.detect([[("t/a", "1.0", True)]], target=RunTarget("linux", "amd64", "", "debian", "12"))
    assert [e.id for e in result.group] == ["t/a"]


# -- which Buildpack APIs are verified (lifecycle phase/hermetic_factory.go verifyOrder) ------------

def test_unsupported_api_of_a_nested_buildpack_that_never_participates_does_not_fail_detect(lc, bps):
    bps("t/old", api="0.6", detect="exit 100")
    bps("t/ok")
    bps("t/meta", order=[[("t/old", "1.0", True), ("t/ok", "1.0")]])
    result = lc.detect([[("t/meta", "1.0")]])
    assert [e.id for e in result.group] == ["t/ok"]


def test_nested_buildpack_of_unsupported_api_runs_detect_and_is_refused_by_the_builder(lc, bps):
    bps("t/old", api="0.6")
    bps("t/meta", order=[[("t/old", "1.0")]])
    result = lc.detect([[("t/meta", "1.0")]])
    assert [(e.id, str(e.api)) for e in result.group] == [("t/old", "0.6")]
    with pytest.raises(BuildpackApiError, match="buildpack API version '0.6' is incompatible") as err:
        lc.build([[("t/meta", "1.0")]])
    assert err.value.exit_code == 12


def test_unsupported_api_in_the_order_itself_fails_detect_with_12(lc, bps):
    bps("t/new", api="0.13")
    with pytest.raises(BuildpackApiError) as err:
        lc.detect([[("t/new", "1.0")]])
    assert err.value.exit_code == 12


# -- the run image's target (platform.md analyzed.toml; lifecycle platform/target_data.go) ---------

def test_run_target_comes_from_analyzed_toml(tmp_path):
    analyzed = tmp_path / "analyzed.toml"
    analyzed.write_text('[run-image.target]\nos = "linux"\narch = "arm64"\n'
                        '[run-image.target.distro]\nname = "ubuntu"\nversion = "22.04"\n')
    assert RunTarget.from_analyzed(analyzed) == RunTarget("linux", "arm64", "", "ubuntu", "22.04")


def test_run_target_without_distro_takes_it_from_os_release(tmp_path):
    analyzed, os_release = tmp_path / "analyzed.toml", tmp_path / "os-release"
    analyzed.write_text('[run-image.target]\narch = "arm64"\n')
    os_release.write_text('ID=debian\nVERSION_ID="12"\n')
    assert RunTarget.from_analyzed(analyzed, os_release) == RunTarget("linux", "arm64", "", "debian", "12")
