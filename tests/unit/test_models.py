"""The typed models of every CNB file: each parses valid input, rejects invalid input at the edge
with an error naming the file and the field, and writes what the lifecycle writes (buildpacks/spec buildpack.md and platform.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnbsim.buildpacks import BuildpackStore
from cnbsim.errors import BuildError, BuildpackApiError, ConfigError
from cnbsim.model.api import ApiVersion
from cnbsim.model.buildpack import Distro, Target, escape_id, read_buildpack_toml
from cnbsim.model.launch import Label, Process, Slice, parse_launch_toml, read_build_toml
from cnbsim.model.layer import LayerMetadata, LayerTypes, parse_layer_toml
from cnbsim.model.metadata import BuildMetadata, read_metadata_toml
from cnbsim.model.order import GroupElement, OrderGroup, group_to_toml, order_to_toml, read_group_toml, read_order_toml
from cnbsim.model.plan import (
    BuildpackPlan,
    Plan,
    PlanDecodeError,
    PlanEntry,
    Provide,
    Provider,
    Require,
    parse_detect_plan,
    read_plan_toml,
)
from cnbsim.tomlio import dumps, parse_toml, write_toml

BP = Path("/cnb/buildpacks/my-bp/1.0.0/buildpack.toml")


def api(text: str) -> ApiVersion:
    return ApiVersion.parse(text)


def buildpack(put, body: str, path: Path | None = None):
    path = path or BP
    put(path, body)
    return read_buildpack_toml(path)


# -- API versions (buildpacks/spec buildpack.md#buildpack-api-version) -----------------------------------

def test_api_versions_compare_numerically_so_0_10_is_newer_than_0_9():
    assert api("0.10") > api("0.9")
    assert api("0.9") < api("0.12") < api("1.0")


def test_api_version_with_only_a_major_means_minor_zero():
    assert api("1") == api("1.0") == ApiVersion(1, 0)
    assert str(api("0.10")) == "0.10"


@pytest.mark.parametrize("text", ["", "0.9.1", "0.x", "latest", "."])
def test_api_version_that_is_not_major_dot_minor_is_rejected(text):
    with pytest.raises(ValueError, match="not an API version"):
        api(text)


# -- buildpack.toml (buildpacks/spec buildpack.md#buildpacktoml-toml; lifecycle buildpack/bp_descriptor.go) ---

def test_valid_buildpack_toml_gives_every_field_the_lifecycle_reads(put):
    desc = buildpack(put, """
        api = "0.10"
        [buildpack]
        id = "my-org/my-bp"
        version = "1.0.0"
        name = "My Buildpack"
        homepage = "https://example.com"
        clear-env = true
        sbom-formats = ["application/vnd.cyclonedx+json"]
        unknown-key = "ignored"
        [metadata]
        anything = 1
    """)
    assert (desc.api, desc.id, desc.version) == (ApiVersion(0, 10), "my-org/my-bp", "1.0.0")
    assert desc.key == "my-org/my-bp@1.0.0"
    assert desc.info.name == "My Buildpack"
    assert desc.info.homepage == "https://example.com"
    assert desc.info.clear_env is True
    assert desc.info.sbom_formats == ("application/vnd.cyclonedx+json",)
    assert desc.root == BP.parent
    assert not desc.is_composite
    assert desc.check_api() == ApiVersion(0, 10)


def test_optional_buildpack_fields_default_to_empty_and_false(put):
    desc = buildpack(put, """
        api = "0.9"
        [buildpack]
        id = "a"
        version = "1"
    """)
    assert desc.info.homepage == "" and desc.info.clear_env is False
    assert desc.info.sbom_formats == () and desc.info.exec_env == ()
    assert desc.order == () and desc.targets == () and desc.stacks == ()


def test_buildpack_with_order_is_composite_and_keeps_groups_and_optional_flags(put):
    desc = buildpack(put, """
        api = "0.8"
        [buildpack]
        id = "paketo/python"
        version = "2.0"
        [[order]]
        [[order.group]]
        id = "paketo/cpython"
        version = "1.1"
        [[order.group]]
        id = "paketo/pip"
        version = "0.3"
        optional = true
        [[order]]
        [[order.group]]
        id = "paketo/conda"
        version = "4"
    """)
    assert desc.is_composite
    assert desc.order == (
        OrderGroup((GroupElement("paketo/cpython", "1.1"), GroupElement("paketo/pip", "0.3", optional=True))),
        OrderGroup((GroupElement("paketo/conda", "4"),)),
    )


def test_targets_are_read_with_distros_and_arch_variant(put):
    desc = buildpack(put, """
        api = "0.10"
        [buildpack]
        id = "a"
        version = "1"
        [[targets]]
        os = "linux"
        arch = "arm"
        arch-variant = "v6"
        [[targets.distros]]
        name = "ubuntu"
        version = "22.04"
        [[targets.distros]]
        name = "debian"
        [[targets]]
        os = "windows"
    """)
    assert desc.targets == (
        Target("linux", "arm", "v6", (Distro("ubuntu", "22.04"), Distro("debian", ""))),
        Target("windows"),
    )
    assert desc.effective_targets() == desc.targets


def test_exec_env_is_read_in_both_the_lifecycle_and_the_spec_spelling(put):
    lifecycle = buildpack(put, """
        api = "0.12"
        [buildpack]
        id = "a"
        version = "1"
        exec-env = ["production", "test"]
    """)
    spec = buildpack(put, """
        api = "0.12"
        [buildpack]
        id = "b"
        version = "1"
        [[buildpack.exec-env]]
        name = "test"
    """, Path("/other/buildpack.toml"))
    assert lifecycle.info.exec_env == ("production", "test")
    assert spec.info.exec_env == ("test",)


# Target inference when [[targets]] is empty (buildpacks/spec buildpack.md#targets;
# lifecycle buildpack/bp_descriptor.go).

BIONIC = Target("linux", "amd64", "", (Distro("ubuntu", "18.04"),))


def stacks_buildpack(put, api_text: str, *stack_ids: str, bin_build: bool = False, path: Path | None = None):
    path = path or BP
    body = f'api = "{api_text}"\n[buildpack]\nid = "a"\nversion = "1"\n'
    body += "".join(f'[[stacks]]\nid = "{s}"\nmixins = ["x"]\n' for s in stack_ids)
    if bin_build:
        put(path.parent / "bin" / "build", "#!/bin/sh\n")
    return buildpack(put, body, path)


def test_the_only_stack_bionic_becomes_linux_amd64_ubuntu_18_04(put):
    desc = stacks_buildpack(put, "0.9", "io.buildpacks.stacks.bionic")
    assert desc.stacks == ("io.buildpacks.stacks.bionic",)
    assert desc.effective_targets() == (BIONIC,)


def test_bionic_among_several_stacks_is_translated_only_from_api_0_10(put):
    old = stacks_buildpack(put, "0.9", "io.buildpacks.stacks.bionic", "io.buildpacks.stacks.jammy")
    assert old.effective_targets() == ()
    new = stacks_buildpack(put, "0.10", "io.buildpacks.stacks.bionic", "io.buildpacks.stacks.jammy",
                           path=Path("/new/buildpack.toml"))
    assert new.effective_targets() == (BIONIC,)


def test_wildcard_stack_becomes_a_target_that_matches_anything(put):
    desc = stacks_buildpack(put, "0.7", "io.buildpacks.stacks.bionic", "*")
    assert desc.effective_targets() == (Target(),)


def test_without_targets_or_translatable_stacks_a_bin_build_means_linux(put):
    desc = stacks_buildpack(put, "0.9", "io.buildpacks.stacks.jammy", bin_build=True)
    assert desc.effective_targets() == (Target(os="linux"),)


def test_without_targets_stacks_or_bin_build_there_is_no_target_check(put):
    assert stacks_buildpack(put, "0.9").effective_targets() == ()


def test_declared_targets_win_over_stacks(put):
    desc = buildpack(put, """
        api = "0.9"
        [buildpack]
        id = "a"
        version = "1"
        [[targets]]
        os = "linux"
        arch = "arm64"
        [[stacks]]
        id = "io.buildpacks.stacks.bionic"
    """)
    assert desc.effective_targets() == (Target("linux", "arm64"),)


# Errors name the file and the field.

@pytest.mark.parametrize("body, field", [
    ('[buildpack]\nid = "a"\nversion = "1"\n', "api"),
    ('api = "0.9"\n[buildpack]\nversion = "1"\n', "buildpack.id"),
    ('api = "0.9"\n[buildpack]\nid = "a"\n', "buildpack.version"),
    ('api = "0.9"\n[buildpack]\nid = ""\nversion = "1"\n', "buildpack.id"),
    ('api = "0.9"\n', "buildpack"),
    ('api = 0.9\n[buildpack]\nid = "a"\nversion = "1"\n', "api"),
    ('api = "0.9"\n[buildpack]\nid = "a"\nversion = "1"\n[[order]]\n[[order.group]]\nid = "b"\n',
     "order[0].group[0].version"),
])
def test_buildpack_toml_missing_or_mistyped_field_is_an_error_naming_file_and_field(put, body, field):
    put(BP, body)
    with pytest.raises(ConfigError) as err:
        read_buildpack_toml(BP)
    assert err.value.file == str(BP)
    assert err.value.field == field
    assert str(BP) in str(err.value) and f"field '{field}'" in str(err.value)


@pytest.mark.parametrize("bad_id", ["..", ".", "a b", "../escape", "a/../../b", "/abs", "a_b", "a@b", "é"])
def test_buildpack_id_with_characters_outside_the_spec_is_rejected(put, bad_id):
    put(BP, f'api = "0.9"\n[buildpack]\nid = "{bad_id}"\nversion = "1"\n')
    with pytest.raises(ConfigError, match="not a valid buildpack id") as err:
        read_buildpack_toml(BP)
    assert err.value.field == "buildpack.id"


@pytest.mark.parametrize("reserved", ["app", "config", "generated", "sbom"])
def test_reserved_buildpack_ids_are_rejected(put, reserved):
    put(BP, f'api = "0.9"\n[buildpack]\nid = "{reserved}"\nversion = "1"\n')
    with pytest.raises(ConfigError, match="reserved") as err:
        read_buildpack_toml(BP)
    assert err.value.field == "buildpack.id"


def test_buildpack_id_with_a_trailing_newline_is_rejected(put):
    put(BP, 'api = "0.9"\n[buildpack]\nid = "my-bp\\n"\nversion = "1"\n')
    with pytest.raises(ConfigError, match="not a valid buildpack id"):
        read_buildpack_toml(BP)


@pytest.mark.parametrize("good_id", ["a", "my-org/my-bp", "io.buildpacks.x", "A1-b.c/d"])
def test_buildpack_ids_of_letters_digits_dots_slashes_and_dashes_are_accepted(put, good_id):
    assert buildpack(put, f'api = "0.9"\n[buildpack]\nid = "{good_id}"\nversion = "1"\n').id == good_id


def test_malformed_buildpack_toml_is_an_error_naming_the_file_and_the_line(put):
    put(BP, 'api = "0.9"\n[buildpack]\nid = "a"\nversion = \n')
    with pytest.raises(ConfigError) as err:
        read_buildpack_toml(BP)
    message = str(err.value)
    assert str(BP) in message
    assert "line 4" in message


def test_missing_buildpack_toml_is_a_config_error_naming_the_file(fs):
    with pytest.raises(ConfigError, match="not found") as err:
        read_buildpack_toml(BP)
    assert err.value.file == str(BP)


@pytest.mark.parametrize("version", ["0.6", "0.13", "0.2", "1.0"])
def test_unsupported_buildpack_api_parses_but_fails_with_exit_12_when_its_api_is_checked(put, version):
    desc = buildpack(put, f'api = "{version}"\n[buildpack]\nid = "a"\nversion = "1"\n')
    with pytest.raises(BuildpackApiError) as err:
        desc.check_api()
    assert err.value.exit_code == 12
    assert f"buildpack API version '{version}' is incompatible with the lifecycle" in str(err.value)
    assert "a@1" in str(err.value) and str(BP) in str(err.value)


def test_unparsable_buildpack_api_fails_with_exit_12_and_the_parse_message(put):
    with pytest.raises(BuildpackApiError, match="parse buildpack API 'zero.nine' for buildpack 'a@1'") as err:
        buildpack(put, 'api = "zero.nine"\n[buildpack]\nid = "a"\nversion = "1"\n')
    assert err.value.exit_code == 12


@pytest.mark.parametrize("version", ["0.7", "0.8", "0.9", "0.10", "0.11", "0.12"])
def test_every_buildpack_api_the_lifecycle_supports_is_accepted(put, version):
    assert buildpack(put, f'api = "{version}"\n[buildpack]\nid = "a"\nversion = "1"\n').check_api() == api(version)


def test_escaped_id_replaces_every_slash_with_an_underscore():
    assert escape_id("my-org/sub/bp") == "my-org_sub_bp"


# -- BuildpackStore (buildpacks/spec platform.md#buildpacks-directory-layout) ---

def layout_bp(put, bp_id: str, version: str, declared: str | None = None) -> Path:
    path = Path("/cnb/buildpacks") / escape_id(bp_id) / version / "buildpack.toml"
    put(path, f'api = "0.10"\n[buildpack]\nid = "{declared or bp_id}"\nversion = "{version}"\n')
    return path


def test_store_finds_a_buildpack_at_escaped_id_and_version_in_a_layout_dir(put):
    layout_bp(put, "org/bp", "1.0")
    store = BuildpackStore()
    store.add_layout_dir(Path("/cnb/buildpacks"))
    assert store.lookup("org/bp", "1.0").path == Path("/cnb/buildpacks/org_bp/1.0/buildpack.toml")


def test_store_lookup_of_a_missing_version_names_where_it_looked_and_what_exists(put):
    layout_bp(put, "org/bp", "1.0")
    store = BuildpackStore.from_paths([Path("/cnb/buildpacks")])
    with pytest.raises(ConfigError, match=r"org/bp@2.0 not found.*org_bp/2.0/buildpack.toml") as err:
        store.lookup("org/bp", "2.0")
    assert "1.0" in str(err.value)


def test_store_lookup_without_version_takes_the_only_one_and_refuses_to_guess_among_several(put):
    layout_bp(put, "one", "1.0")
    layout_bp(put, "two", "1.0")
    layout_bp(put, "two", "2.0")
    store = BuildpackStore.from_paths([Path("/cnb/buildpacks")])
    assert store.lookup("one").version == "1.0"
    with pytest.raises(ConfigError, match="multiple versions of two - must specify an explicit version"):
        store.lookup("two")
    with pytest.raises(ConfigError, match="no versions of buildpack three"):
        store.lookup("three")


def test_store_rejects_a_descriptor_whose_id_does_not_match_its_layout_location(put):
    layout_bp(put, "org/bp", "1.0", declared="org/other")
    store = BuildpackStore()
    store.add_layout_dir(Path("/cnb/buildpacks"))
    with pytest.raises(ConfigError, match="declares org/other@1.0"):
        store.lookup("org/bp", "1.0")


# -- order.toml and group.toml (buildpacks/spec platform.md#ordertoml-toml, #grouptoml-toml) ---

ORDER = (
    OrderGroup((GroupElement("a", "1"), GroupElement("b", "2", optional=True))),
    OrderGroup((GroupElement("c", "3"),)),
)


def test_order_toml_round_trips_through_the_writer_and_the_reader(fs):
    path = Path("/layers/order.toml")
    write_toml(path, order_to_toml(ORDER))
    assert read_order_toml(path) == ORDER


def test_order_toml_writes_optional_only_when_true(fs):
    groups = order_to_toml(ORDER)["order"]
    assert groups[0]["group"] == [{"id": "a", "version": "1"}, {"id": "b", "version": "2", "optional": True}]


def test_order_toml_ignores_unknown_keys_and_requires_a_version(put):
    put("/order.toml", """
        [[order]]
        [[order.group]]
        id = "a"
        version = "1"
        extra = "ignored"
    """)
    assert read_order_toml(Path("/order.toml")) == (OrderGroup((GroupElement("a", "1"),)),)
    put("/noversion.toml", '[[order]]\n[[order.group]]\nid = "a"\n')
    with pytest.raises(ConfigError) as err:
        read_order_toml(Path("/noversion.toml"))
    assert err.value.field == "order[0].group[0].version"


def test_group_toml_round_trips_id_version_api_and_homepage(fs):
    group = (GroupElement("a", "1", api=ApiVersion(0, 9), homepage="https://a"), GroupElement("b", "2", api=ApiVersion(0, 10)))
    path = Path("/layers/group.toml")
    write_toml(path, group_to_toml(group))
    assert read_group_toml(path) == group


def test_group_toml_never_writes_optional_and_omits_an_empty_homepage():
    data = group_to_toml((GroupElement("a", "1", optional=True, api=ApiVersion(0, 9)),))
    assert data == {"group": [{"id": "a", "version": "1", "api": "0.9"}]}


def test_empty_group_writes_an_empty_file_that_reads_back_as_an_empty_group(fs):
    path = Path("/layers/group.toml")
    write_toml(path, group_to_toml(()))
    assert path.read_bytes() == b""
    assert read_group_toml(path) == ()


def test_invalid_group_toml_is_an_error_naming_the_file(put):
    put("/layers/group.toml", "[[group]\n")
    with pytest.raises(ConfigError, match="invalid TOML") as err:
        read_group_toml(Path("/layers/group.toml"))
    assert err.value.file == "/layers/group.toml"


# -- the build plan bin/detect writes (buildpacks/spec buildpack.md#detection; lifecycle buildpack/detect.go) ---

def test_detect_plan_reads_provides_requires_with_metadata_and_or_alternatives_in_order():
    plan = parse_detect_plan("""
[[provides]]
name = "python"
[[requires]]
name = "python"
[requires.metadata]
version = "3.12"
build = true

[[or]]
[[or.provides]]
name = "pip"
[[or.requires]]
name = "pip"

[[or]]
[[or.requires]]
name = "conda"
""", "plan.toml", "my-bp")
    assert plan.primary.provides == (Provide("python"),)
    assert plan.primary.requires == (Require("python", {"version": "3.12", "build": True}),)
    assert [o.provides for o in plan.alternatives] == [(Provide("pip"),), ()]
    assert [[r.name for r in o.requires] for o in plan.alternatives] == [["pip"], ["conda"]]
    assert plan.options == (plan.primary, *plan.alternatives)


def test_empty_detect_plan_is_one_empty_option():
    plan = parse_detect_plan("", "plan.toml", "my-bp")
    assert plan.options == (plan.primary,)
    assert plan.primary.provides == () and plan.primary.requires == ()


def test_detect_plan_ignores_unknown_keys():
    plan = parse_detect_plan('extra = 1\n[[provides]]\nname = "x"\nversion = "9"\n'
                             '[[requires]]\nname = "x"\nother = true\n', "plan.toml", "my-bp")
    assert plan.primary.provides == (Provide("x"),)
    assert plan.primary.requires == (Require("x"),)


LIFECYCLE_VERSION_MESSAGE = ('buildpack my-bp has a "version" key which is not supported. '
                             '"metadata.version" should be used instead')


@pytest.mark.parametrize("text", [
    '[[requires]]\nname = "python"\nversion = "3"\n',
    '[[requires]]\nname = "python"\nversion = "3"\n[requires.metadata]\nversion = "3"\n',
    '[[or]]\n[[or.requires]]\nname = "python"\nversion = "3"\n',
])
def test_require_with_a_top_level_version_is_rejected_with_the_lifecycle_message(text):
    with pytest.raises(PlanDecodeError) as err:
        parse_detect_plan(text, "plan.toml", "my-bp")
    assert LIFECYCLE_VERSION_MESSAGE in str(err.value)


def test_invalid_detect_plan_toml_is_a_plan_decode_error():
    with pytest.raises(PlanDecodeError, match="invalid TOML"):
        parse_detect_plan("[[requires]\n", "plan.toml", "my-bp")


def test_detect_plan_round_trips_through_its_own_toml():
    text = ('[[provides]]\nname = "a"\n[[requires]]\nname = "a"\n[requires.metadata]\nk = "v"\n'
            '[[or]]\n[[or.requires]]\nname = "b"\n')
    plan = parse_detect_plan(text, "plan.toml", "my-bp")
    assert parse_detect_plan(dumps(plan.to_toml()), "again.toml", "my-bp") == plan


# -- plan.toml and the buildpack plan (buildpacks/spec platform.md#plantoml-toml, buildpack.md#buildpack-plan-toml) ---

PLAN = Plan((
    PlanEntry((Provider("a", "1"),), (Require("python", {"version": "3.12"}), Require("python"))),
    PlanEntry((Provider("a", "1"), Provider("b", "2")), (Require("pip"),)),
    PlanEntry((Provider("b", "2"),), (Require("venv", {"nested": {"x": [1, 2]}}),)),
))


def test_empty_plan_writes_a_zero_byte_plan_toml(fs):
    assert Plan().to_toml() == {}
    path = Path("/layers/plan.toml")
    write_toml(path, Plan().to_toml())
    assert path.stat().st_size == 0
    assert read_plan_toml(path) == Plan()


def test_plan_toml_round_trips_providers_and_requires_with_metadata(fs):
    path = Path("/layers/plan.toml")
    write_toml(path, PLAN.to_toml())
    assert read_plan_toml(path) == PLAN
    assert read_plan_toml(path).entries[2].requires[0].metadata == {"nested": {"x": [1, 2]}}


def test_plan_toml_has_the_lifecycle_layout():
    entry = PLAN.to_toml()["entries"][0]
    assert entry == {"providers": [{"id": "a", "version": "1"}],
                     "requires": [{"name": "python", "metadata": {"version": "3.12"}}, {"name": "python"}]}


def test_buildpack_plan_holds_all_requires_of_every_entry_the_buildpack_provides_in_file_order():
    assert PLAN.for_buildpack("a") == BuildpackPlan(
        (Require("python", {"version": "3.12"}), Require("python"), Require("pip")))
    assert PLAN.for_buildpack("b").names == {"pip", "venv"}
    assert PLAN.for_buildpack("c") == BuildpackPlan()
    assert BuildpackPlan().to_toml() == {}


def test_entries_a_buildpack_met_are_removed_and_unmet_ones_stay_for_the_next_provider():
    remaining = PLAN.without_met({"pip"})
    assert remaining.entries == (PLAN.entries[0], PLAN.entries[2])
    assert PLAN.without_met(set()) == PLAN
    assert PLAN.without_met({"python", "pip", "venv"}) == Plan()


# -- <layer>.toml (buildpacks/spec buildpack.md#layer-content-metadata-toml) ---

LAYER = Path("/layers/my-bp/venv.toml")


def test_layer_toml_reads_types_flags_and_metadata():
    meta = parse_layer_toml(parse_toml('[types]\nlaunch = true\ncache = true\n[metadata]\nsha = "abc"\n',
                                       path=LAYER), LAYER)
    assert meta.types == LayerTypes(launch=True, build=False, cache=True)
    assert meta.types.any
    assert meta.metadata == {"sha": "abc"}


def test_empty_layer_toml_has_no_types():
    assert parse_layer_toml({}, LAYER) == LayerMetadata()
    assert not LayerMetadata().types.any


@pytest.mark.parametrize("flag", ["launch", "build", "cache"])
def test_top_level_layer_flag_is_rejected(flag):
    with pytest.raises(BuildError) as err:
        parse_layer_toml({flag: False, "types": {"launch": True}}, LAYER)
    assert f"the launch, cache and build flags should be in the types table of {LAYER}" in str(err.value)
    assert err.value.field == flag


def test_layer_flags_are_written_in_types_and_read_back():
    meta = LayerMetadata(LayerTypes(launch=True, build=True), {"k": "v"})
    new = meta.to_toml()
    assert new == {"types": {"launch": True, "build": True, "cache": False}, "metadata": {"k": "v"}}
    assert parse_layer_toml(new, LAYER) == meta


def test_layer_flag_that_is_not_a_boolean_is_an_error_naming_the_field():
    with pytest.raises(BuildError) as err:
        parse_layer_toml({"types": {"launch": "yes"}}, LAYER)
    assert err.value.field == "types.launch"


# -- launch.toml (buildpacks/spec buildpack.md#launchtoml-toml) ----------------------------------

LAUNCH = Path("/layers/my-bp/launch.toml")


def launch(text: str, version: str):
    return parse_launch_toml(parse_toml(text, path=LAUNCH), LAUNCH, api(version), "my-bp")


@pytest.mark.parametrize("version", ["0.7", "0.8"])
def test_command_is_a_string_before_api_0_9_and_the_process_is_not_direct_by_default(version):
    (p,) = launch('[[processes]]\ntype = "web"\ncommand = "python -m app"\nargs = ["--port", "8080"]\n',
                  version).processes
    assert p == Process(type="web", command=("python -m app",), args=("--port", "8080"), direct=False,
                        buildpack_id="my-bp")


@pytest.mark.parametrize("version", ["0.7", "0.8"])
def test_direct_may_be_set_before_api_0_9(version):
    (p,) = launch('[[processes]]\ntype = "web"\ncommand = "python"\ndirect = true\n', version).processes
    assert p.direct is True


@pytest.mark.parametrize("version", ["0.7", "0.8"])
@pytest.mark.parametrize("command", ['["python", "-m", "app"]', "1", None])
def test_command_that_is_not_a_string_is_rejected_before_api_0_9(version, command):
    text = '[[processes]]\ntype = "web"\n' + (f"command = {command}\n" if command else "")
    with pytest.raises(BuildError, match="must be a string") as err:
        launch(text, version)
    assert err.value.field == "processes[0].command"
    assert err.value.file == str(LAUNCH)


@pytest.mark.parametrize("version", ["0.9", "0.10", "0.12"])
def test_command_is_an_array_from_api_0_9_and_every_process_is_direct(version):
    (p,) = launch('[[processes]]\ntype = "web"\ncommand = ["python", "-m", "app"]\ndefault = true\n',
                  version).processes
    assert p.command == ("python", "-m", "app")
    assert p.direct is True and p.default is True


@pytest.mark.parametrize("version", ["0.9", "0.10", "0.12"])
@pytest.mark.parametrize("command", ['"python -m app"', '["python", 1]', None])
def test_command_that_is_not_an_array_of_strings_is_rejected_from_api_0_9(version, command):
    text = '[[processes]]\ntype = "web"\n' + (f"command = {command}\n" if command else "")
    with pytest.raises(BuildError, match="must be an array of strings") as err:
        launch(text, version)
    assert err.value.field == "processes[0].command"


@pytest.mark.parametrize("version", ["0.9", "0.10", "0.12"])
@pytest.mark.parametrize("value", ["true", "false"])
def test_direct_key_is_rejected_from_api_0_9(version, value):
    with pytest.raises(BuildError, match="process.direct is not supported on this buildpack version"):
        launch(f'[[processes]]\ntype = "web"\ncommand = ["python"]\ndirect = {value}\n', version)


def test_working_dir_is_ignored_with_a_warning_on_api_0_7():
    result = launch('[[processes]]\ntype = "web"\ncommand = "python"\nworking-dir = "src"\n', "0.7")
    assert result.processes[0].working_dir == ""
    assert len(result.warnings) == 1 and "working-dir" in result.warnings[0]


@pytest.mark.parametrize("version, command", [("0.8", '"python"'), ("0.10", '["python"]')])
def test_working_dir_is_kept_from_api_0_8(version, command):
    result = launch(f'[[processes]]\ntype = "web"\ncommand = {command}\nworking-dir = "src"\n', version)
    assert result.processes[0].working_dir == "src"
    assert result.warnings == ()


def test_two_default_processes_are_rejected():
    with pytest.raises(BuildError, match="multiple default process types aren't allowed"):
        launch('[[processes]]\ntype = "web"\ncommand = ["a"]\ndefault = true\n'
               '[[processes]]\ntype = "worker"\ncommand = ["b"]\ndefault = true\n', "0.10")


@pytest.mark.parametrize("ptype", ["a/b", "a>b", "a<b", "a:b", "a|b", "a&b", "a\\\\b"])
def test_process_type_with_a_forbidden_character_is_rejected(ptype):
    with pytest.raises(BuildError, match="invalid process type") as err:
        launch(f'[[processes]]\ntype = "{ptype}"\ncommand = ["a"]\n', "0.10")
    assert err.value.field == "processes[0].type"


def test_launch_toml_reads_labels_slices_exec_env_and_ignores_unknown_keys():
    result = launch("""
[[labels]]
key = "org.example.a"
value = "1"
[[processes]]
type = "web"
command = ["python"]
exec-env = ["production"]
working-directory = "packit-spelling-is-ignored"
[[slices]]
paths = ["static/*", "*.css"]
[[slices]]
paths = []
""", "0.10")
    assert result.labels == (Label("org.example.a", "1"),)
    assert result.slices == (Slice(("static/*", "*.css")), Slice(()))
    assert result.processes[0].exec_env == ("production",)
    assert result.processes[0].working_dir == ""


def test_empty_command_array_is_accepted_at_build():
    assert launch('[[processes]]\ntype = "web"\ncommand = []\n', "0.10").processes[0].command == ()


# -- build.toml (buildpacks/spec buildpack.md#buildtoml-toml) ------------------------------------------------

BUILD = Path("/layers/my-bp/build.toml")


def test_absent_build_toml_has_nothing_unmet(fs):
    assert read_build_toml(BUILD, {"python"}).unmet == ()


def test_unmet_names_from_the_buildpack_plan_are_read(put):
    put(BUILD, '[[unmet]]\nname = "pip"\n[[unmet]]\nname = "python"\n')
    assert read_build_toml(BUILD, {"python", "pip"}).unmet == ("pip", "python")


def test_unmet_name_that_the_plan_does_not_request_is_rejected(put):
    put(BUILD, '[[unmet]]\nname = "node"\n')
    with pytest.raises(BuildError, match="unmet.name 'node' must match a requested dependency") as err:
        read_build_toml(BUILD, {"python"})
    assert err.value.field == "unmet[0].name" and err.value.file == str(BUILD)


def test_unmet_without_a_name_is_rejected(put):
    put(BUILD, "[[unmet]]\nother = 1\n")
    with pytest.raises(BuildError, match="unmet.name is required"):
        read_build_toml(BUILD, {"python"})


# -- <layers>/config/metadata.toml (buildpacks/spec platform.md#metadatatoml-toml) ---

METADATA = BuildMetadata(
    buildpacks=(GroupElement("a", "1", api=ApiVersion(0, 8), homepage="https://a"), GroupElement("b", "2", api=ApiVersion(0, 10))),
    processes=(
        Process("web", ("python", "-m", "app"), ("--port", "8080"), True, buildpack_id="b",
                working_dir="src", exec_env=("production",)),
        Process("worker", ("celery worker",), (), False, buildpack_id="a"),
    ),
    labels=(Label("k", "v"),),
    slices=(Slice(("static/*",)),),
    default_process="web",
)


def test_metadata_for_platform_0_15_writes_command_as_an_array_and_fields_in_lifecycle_order():
    data = METADATA.to_toml(api("0.15"))
    assert data["buildpack-default-process-type"] == "web"
    assert data["buildpacks"] == [{"id": "a", "version": "1", "api": "0.8", "homepage": "https://a"},
                                  {"id": "b", "version": "2", "api": "0.10"}]
    web, worker = data["processes"]
    assert list(web) == ["type", "command", "args", "direct", "buildpack-id", "working-dir", "exec-env"]
    assert web["command"] == ["python", "-m", "app"] and web["args"] == ["--port", "8080"]
    assert worker == {"type": "worker", "command": ["celery worker"], "direct": False, "buildpack-id": "a"}
    assert data["labels"] == [{"key": "k", "value": "v"}]
    assert data["slices"] == [{"paths": ["static/*"]}]


def test_metadata_processes_are_an_array_of_tables():
    text = dumps(METADATA.to_toml(api("0.15")))
    assert text.count("[[processes]]") == 2
    assert "default" not in text.replace("buildpack-default-process-type", "")


def test_metadata_for_platform_0_9_writes_command_as_a_string_and_moves_extra_words_into_args():
    web, worker = METADATA.to_toml(api("0.9"))["processes"]
    assert web["command"] == "python"
    assert web["args"] == ["-m", "app", "--port", "8080"]
    # lifecycle launch/launch.go WithPlatformAPI: args = command[1:] + args is never nil before Platform 0.10
    assert worker["command"] == "celery worker" and worker["args"] == []


def test_metadata_round_trips_through_metadata_toml_for_platform_0_15(fs):
    path = Path("/layers/config/metadata.toml")
    write_toml(path, METADATA.to_toml(api("0.15")))
    assert read_metadata_toml(path) == METADATA


def test_metadata_written_for_platform_0_9_reads_back_with_the_command_split(fs):
    path = Path("/layers/config/metadata.toml")
    write_toml(path, METADATA.to_toml(api("0.9")))
    back = read_metadata_toml(path)
    assert back.process("web").command == ("python",)
    assert back.process("web").args == ("-m", "app", "--port", "8080")
    assert back.buildpack("a") == METADATA.buildpacks[0]
    assert back.default_process == "web"


def test_empty_metadata_writes_only_an_empty_process_list():
    # lifecycle phase/builder.go: the process list is never nil, so metadata.toml has `processes = []`
    assert BuildMetadata().to_toml(api("0.15")) == {"processes": []}
