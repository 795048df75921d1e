"""Environment rules: env-file suffixes, platform and build-config env, the build and launch base env,
root dirs and the launch env (buildpacks/spec buildpack.md#environment,
#environment-variable-modification-rules, #launch; lifecycle env/). Env dirs live on pyfakefs."""

from __future__ import annotations

import itertools
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnbsim.env import BUILD_ROOT_DIRS, LAUNCH_ROOT_DIRS, Env, read_env_dir
from cnbsim.model.api import ApiVersion
from cnbsim.model.metadata import BuildMetadata
from cnbsim.model.order import GroupElement
from cnbsim.phase.launch import launch_env

ENV = Path("/layers/my-bp/layer/env")
PLATFORM = Path("/platform")
BUILD_CONFIG = Path("/cnb/build-config")

# The `fs` fixture is function-scoped; each example writes into a fresh directory of it.
property_test = settings(deadline=None, max_examples=50,
                         suppress_health_check=[HealthCheck.function_scoped_fixture])


def env_dir(put, directory: Path, files: dict[str, str]) -> Path:
    for name, value in files.items():
        put(directory / name, value, dedent=False)
    return directory


def applied_bytes(directory: Path) -> Env:
    env = Env()
    env.add_env_dir(directory)
    return env


def applied(put, files: dict[str, str], start: dict[str, str] | None = None, directory: Path | None = None) -> Env:
    env = Env(dict(start or {}))
    env.add_env_dir(env_dir(put, directory or ENV, files))
    return env


# -- one file per variable (buildpacks/spec buildpack.md#environment-variable-modification-rules) ---

def test_file_without_suffix_in_a_layer_env_dir_overrides(put):
    assert applied(put, {"FOO": "new"}, {"FOO": "old"}).vars == {"FOO": "new"}


def test_override_suffix_replaces_the_value_and_ignores_delim(put):
    env = applied(put, {"FOO.override": "new", "FOO.delim": ":"}, {"FOO": "old"})
    assert env.vars == {"FOO": "new"}


@pytest.mark.parametrize("start, expected", [({"FOO": "old"}, "old"), ({"FOO": ""}, "new"), ({}, "new")])
def test_default_suffix_sets_only_an_unset_or_empty_variable(put, start, expected):
    assert applied(put, {"FOO.default": "new"}, start).get("FOO") == expected


@pytest.mark.parametrize("files, start, expected", [
    ({"FOO.prepend": "new", "FOO.delim": ":"}, {"FOO": "old"}, "new:old"),
    ({"FOO.prepend": "new"}, {"FOO": "old"}, "newold"),
    ({"FOO.prepend": "new", "FOO.delim": ":"}, {}, "new"),
    ({"FOO.prepend": "new", "FOO.delim": ":"}, {"FOO": ""}, "new"),
    ({"FOO.append": "new", "FOO.delim": ":"}, {"FOO": "old"}, "old:new"),
    ({"FOO.append": "new"}, {"FOO": "old"}, "oldnew"),
    ({"FOO.append": "new", "FOO.delim": ":"}, {}, "new"),
    ({"FOO.append": "new", "FOO.delim": " -- "}, {"FOO": "old"}, "old -- new"),
])
def test_prepend_and_append_join_with_the_delim_only_when_there_is_a_current_value(put, files, start, expected):
    assert applied(put, files, start).get("FOO") == expected


def test_delim_file_is_only_read_never_applied_as_a_variable(put):
    env = applied(put, {"FOO.delim": ":"})
    assert env.vars == {}
    assert list(read_env_dir(ENV)) == []


def test_delim_applies_only_to_files_of_the_same_directory(put):
    env = Env({"FOO": "old"})
    env.add_env_dir(env_dir(put, ENV, {"FOO.delim": ":"}))
    env.add_env_dir(env_dir(put, ENV.parent / "env.build", {"FOO.append": "new"}))
    assert env.get("FOO") == "oldnew"


@pytest.mark.parametrize("name", ["FOO.ignore", "FOO.foo", "FOO.foo.append", "FOO.APPEND", "FOO.override.x"])
def test_file_with_an_unknown_suffix_is_ignored(put, name):
    assert applied(put, {name: "new"}, {"FOO": "old"}).vars == {"FOO": "old"}


def test_values_are_raw_file_contents_never_trimmed(put):
    env = applied(put, {"FOO": "a=b c\n", "BAR": "  spaced  "})
    assert env.vars == {"FOO": "a=b c\n", "BAR": "  spaced  "}


def test_carriage_returns_in_an_env_file_are_kept(fs):
    fs.create_file(ENV / "FOO", contents=b"line1\r\nline2\r")
    assert applied_bytes(ENV).get("FOO") == "line1\r\nline2\r"


def test_carriage_returns_in_a_platform_env_file_are_kept(fs):
    fs.create_file(PLATFORM / "env" / "FOO", contents=b"user\r\n")
    assert Env().with_platform(PLATFORM).get("FOO") == "user\r\n"


def test_missing_env_dir_changes_nothing(fs):
    env = Env({"FOO": "old"})
    env.add_env_dir(Path("/nowhere/env"))
    assert env.vars == {"FOO": "old"}


def test_directories_and_links_to_directories_in_an_env_dir_are_skipped(put, fs):
    put(ENV / "FOO" / "inner", "x")
    put(ENV / "BAR.append" / "inner", "x")
    fs.create_symlink(ENV / "BAZ", ENV / "FOO")
    put(ENV / "QUX", "from-file")
    fs.create_symlink(ENV / "LINKED", ENV / "QUX")
    env = Env({"BAR": "old"})
    env.add_env_dir(ENV)
    assert env.vars == {"BAR": "old", "QUX": "from-file", "LINKED": "from-file"}


# -- several files for one variable (buildpacks/spec buildpack.md#environment-variable-modification-rules) ---

def test_files_apply_in_sorted_name_order_so_default_fills_before_prepend(put):
    env = applied(put, {"FOO.prepend": "p", "FOO.default": "d", "FOO.delim": ":"})
    assert env.get("FOO") == "p:d"


def test_files_apply_in_sorted_name_order_so_override_discards_an_earlier_append(put):
    env = applied(put, {"FOO.override": "o", "FOO.append": "a"}, {"FOO": "c"})
    assert env.get("FOO") == "o"


def test_all_five_actions_for_one_variable_apply_as_plain_append_default_override_prepend(put):
    files = {"FOO": "v", "FOO.append": "a", "FOO.default": "d", "FOO.override": "o", "FOO.prepend": "p",
             "FOO.delim": "|"}
    assert [action for _, action, _, _ in read_env_dir(env_dir(put, ENV, files))] == [
        "override", "append", "default", "override", "prepend"]
    assert applied_bytes(ENV).get("FOO") == "p|o"


def test_read_env_dir_yields_name_action_value_and_delim(put):
    env_dir(put, ENV, {"PATH.prepend": "/x/bin", "PATH.delim": ":", "A": "1"})
    assert list(read_env_dir(ENV)) == [("A", "override", "1", ""), ("PATH", "prepend", "/x/bin", ":")]


# -- <build-config>/env and <platform>/env (buildpacks/spec buildpack.md#provided-by-the-platform) -----------

@pytest.mark.parametrize("start, expected", [({"FOO": "bp"}, "bp"), ({}, "operator"), ({"FOO": ""}, "operator")])
def test_build_config_file_without_suffix_is_a_default(put, start, expected):
    env_dir(put, BUILD_CONFIG / "env", {"FOO": "operator"})
    assert Env(dict(start)).with_platform(None, BUILD_CONFIG).get("FOO") == expected


def test_build_config_suffixes_follow_the_env_file_rules(put):
    env_dir(put, BUILD_CONFIG / "env", {"A.override": "op", "B.append": "op", "B.delim": ",", "C.prepend": "op"})
    env = Env({"A": "bp", "B": "bp", "C": "bp"}).with_platform(None, BUILD_CONFIG)
    assert env.vars == {"A": "op", "B": "bp,op", "C": "opbp"}


def test_platform_env_file_name_is_the_whole_variable_name_and_overrides(put):
    env_dir(put, PLATFORM / "env", {"FOO": "user", "BAR.append": "literal", "BAZ.override": "x"})
    env = Env({"FOO": "bp", "BAR": "bp"}).with_platform(PLATFORM)
    assert env.vars == {"FOO": "user", "BAR": "bp", "BAR.append": "literal", "BAZ.override": "x"}


@pytest.mark.parametrize("name", ["PATH", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "PKG_CONFIG_PATH"])
def test_platform_env_posix_path_variable_is_prepended_with_a_colon(put, name):
    env_dir(put, PLATFORM / "env", {name: "/user/dir"})
    assert Env({name: "/bp/dir"}).with_platform(PLATFORM).get(name) == "/user/dir:/bp/dir"
    assert Env().with_platform(PLATFORM).get(name) == "/user/dir"


def test_platform_env_skips_directories(put):
    put(PLATFORM / "env" / "FOO" / "inner", "x")
    assert Env({"FOO": "bp"}).with_platform(PLATFORM).vars == {"FOO": "bp"}


def test_platform_overrides_apply_to_a_copy_and_never_accumulate(put):
    env_dir(put, PLATFORM / "env", {"PATH": "/user", "FOO": "user"})
    base = Env({"PATH": "/bin"})
    first = base.with_platform(PLATFORM)
    second = base.with_platform(PLATFORM)
    assert base.vars == {"PATH": "/bin"}
    assert first.vars == second.vars == {"PATH": "/user:/bin", "FOO": "user"}


@pytest.mark.parametrize("operator_file, expected", [("FOO", "user"), ("FOO.override", "operator")])
def test_user_value_beats_operator_default_but_not_operator_override(put, operator_file, expected):
    env_dir(put, PLATFORM / "env", {"FOO": "user"})
    env_dir(put, BUILD_CONFIG / "env", {operator_file: "operator"})
    assert Env({"FOO": "bp"}).with_platform(PLATFORM, BUILD_CONFIG).get("FOO") == expected


def test_clear_env_skips_platform_env_but_still_applies_build_config(put):
    env_dir(put, PLATFORM / "env", {"FOO": "user"})
    env_dir(put, BUILD_CONFIG / "env", {"BAR": "operator"})
    assert Env().with_platform(None, BUILD_CONFIG).vars == {"BAR": "operator"}


# -- base environments (buildpacks/spec buildpack.md#provided-by-the-lifecycle; platform.md#launch-environment) ---

def test_build_env_keeps_only_the_allow_list_and_posix_path_variables():
    host = {"CNB_STACK_ID": "s", "HOSTNAME": "h", "HOME": "/home/u", "HTTPS_PROXY": "p", "https_proxy": "p",
            "HTTP_PROXY": "p", "http_proxy": "p", "NO_PROXY": "n", "no_proxy": "n", "PATH": "/bin",
            "LD_LIBRARY_PATH": "/lib", "LIBRARY_PATH": "/lib", "CPATH": "/inc", "PKG_CONFIG_PATH": "/pc",
            "LANG": "C.UTF-8", "CNB_PLATFORM_API": "0.15", "CNB_USER_ID": "1000", "SECRET": "x", "home": "x"}
    kept = Env.for_build(host).vars
    dropped = {"LANG", "CNB_PLATFORM_API", "CNB_USER_ID", "SECRET", "home"}
    assert kept == {k: v for k, v in host.items() if k not in dropped}


def test_build_env_keeps_values_containing_equals_signs_intact():
    assert Env.for_build({"HOME": "/a=b=c"}).vars == {"HOME": "/a=b=c"}


def test_launch_env_drops_the_launcher_variables_and_keeps_other_cnb_variables():
    container = {"CNB_LAYERS_DIR": "/layers", "CNB_APP_DIR": "/workspace", "CNB_PROCESS_TYPE": "web",
                 "CNB_PLATFORM_API": "0.15", "CNB_DEPRECATION_MODE": "quiet", "CNB_OTHER": "kept",
                 "LANG": "C", "SECRET": "kept-too"}
    assert Env.for_launch(container).vars == {"CNB_OTHER": "kept", "LANG": "C", "SECRET": "kept-too"}


@pytest.mark.parametrize("path, expected", [
    ("/cnb/process:/cnb/lifecycle:/usr/bin:/bin", "/usr/bin:/bin"),
    ("/usr/bin:/cnb/lifecycle:/bin:/cnb/process", "/usr/bin:/bin"),
    ("/cnb/process/sub:/cnb/lifecycle2:/bin", "/cnb/process/sub:/cnb/lifecycle2:/bin"),
    ("/cnb/process", ""),
])
def test_launch_env_removes_cnb_process_and_cnb_lifecycle_anywhere_in_path(path, expected):
    assert Env.for_launch({"PATH": path}).get("PATH") == expected


# -- root dirs (buildpacks/spec buildpack.md#layer-paths; lifecycle env/launch.go) ---

LAYER = Path("/layers/my-bp/layer")


def make_layer_dirs(fs, layer: Path, *subs: str) -> None:
    for sub in subs:
        fs.create_dir(layer / sub)


def test_build_root_dir_prepends_bin_lib_include_and_pkgconfig_to_their_variables(fs):
    make_layer_dirs(fs, LAYER, "bin", "lib", "include", "pkgconfig")
    env = Env({"PATH": "/bin", "LIBRARY_PATH": "/lib"})
    env.add_root_dir(LAYER, BUILD_ROOT_DIRS)
    assert env.vars == {"PATH": f"{LAYER}/bin:/bin", "LD_LIBRARY_PATH": f"{LAYER}/lib",
                        "LIBRARY_PATH": f"{LAYER}/lib:/lib", "CPATH": f"{LAYER}/include",
                        "PKG_CONFIG_PATH": f"{LAYER}/pkgconfig"}


def test_launch_root_dir_only_extends_path_and_ld_library_path(fs):
    make_layer_dirs(fs, LAYER, "bin", "lib", "include", "pkgconfig")
    env = Env({"PATH": "/bin"})
    env.add_root_dir(LAYER, LAUNCH_ROOT_DIRS)
    assert env.vars == {"PATH": f"{LAYER}/bin:/bin", "LD_LIBRARY_PATH": f"{LAYER}/lib"}


def test_root_dir_without_those_subdirectories_changes_nothing(fs):
    make_layer_dirs(fs, LAYER, "share")
    env = Env({"PATH": "/bin"})
    env.add_root_dir(LAYER, BUILD_ROOT_DIRS)
    assert env.vars == {"PATH": "/bin"}


def test_root_dirs_applied_in_layer_order_put_the_later_layer_first_in_path(fs):
    layers = [Path(f"/layers/my-bp/{name}") for name in ("pip", "python", "venv")]
    for layer in layers:
        make_layer_dirs(fs, layer, "bin")
    env = Env({"PATH": "/usr/bin"})
    for layer in layers:
        env.add_root_dir(layer, BUILD_ROOT_DIRS)
    assert env.get("PATH") == "/layers/my-bp/venv/bin:/layers/my-bp/python/bin:/layers/my-bp/pip/bin:/usr/bin"


# -- the launch env (buildpacks/spec buildpack.md#launch; lifecycle env/launch.go) ---------------------------

LAYERS = Path("/layers")
MD = BuildMetadata(buildpacks=(GroupElement("my-org/bp", "1", api=ApiVersion(0, 10)),))


def launch_layer(put, fs, name: str, env_files: dict[str, dict[str, str]] | None = None,
                 subs: tuple[str, ...] = (), launch: bool = True) -> Path:
    layer = LAYERS / "my-org_bp" / name
    put(layer.with_name(f"{name}.toml"), f"[types]\nlaunch = {str(launch).lower()}\n")
    fs.create_dir(layer)
    make_layer_dirs(fs, layer, *subs)
    for directory, files in (env_files or {}).items():
        env_dir(put, layer / directory, files)
    return layer


def test_buildpack_override_beats_the_user_value_but_default_respects_it(put, fs):
    launch_layer(put, fs, "a", {"env": {"OVER": "bp", "DEF.default": "bp"}})
    env = launch_env(LAYERS, MD, None, {"OVER": "user", "DEF": "user"})
    assert (env.get("OVER"), env.get("DEF")) == ("bp", "user")


def test_buildpack_append_combines_with_the_user_value_using_its_delim(put, fs):
    launch_layer(put, fs, "a", {"env": {"OTHER_VAR.append": "other-bp-val", "OTHER_VAR.delim": "**"}})
    env = launch_env(LAYERS, MD, None, {"OTHER_VAR": "other-user-val"})
    assert env.get("OTHER_VAR") == "other-user-val**other-bp-val"


def test_launch_applies_env_then_env_launch_then_the_process_type_dir(put, fs):
    launch_layer(put, fs, "a", {"env": {"V.append": "env", "V.delim": ","},
                                "env.launch": {"V.append": "launch", "V.delim": ","},
                                "env.launch/web": {"V.append": "web", "V.delim": ","},
                                "env.build": {"V.append": "build", "V.delim": ","}})
    assert launch_env(LAYERS, MD, "web", {}).get("V") == "env,launch,web"
    assert launch_env(LAYERS, MD, None, {}).get("V") == "env,launch"


def test_launch_applies_every_root_dir_of_a_buildpack_before_any_env_dir(put, fs):
    launch_layer(put, fs, "a", {"env": {"PATH.override": "/fixed"}})
    launch_layer(put, fs, "b", subs=("bin",))
    assert launch_env(LAYERS, MD, None, {"PATH": "/usr/bin"}).get("PATH") == "/fixed"


def test_launch_env_skips_layers_that_are_not_launch_layers(put, fs):
    launch_layer(put, fs, "build-only", {"env": {"FOO": "bp"}}, subs=("bin",), launch=False)
    env = launch_env(LAYERS, MD, None, {"PATH": "/cnb/process:/usr/bin", "CNB_LAYERS_DIR": "/layers"})
    assert env.vars == {"PATH": "/usr/bin"}


# -- properties of the modification rules -------------------------------------------------------------

NAMES = st.text(alphabet=string.ascii_uppercase + "_", min_size=1, max_size=8)
VALUES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
NON_EMPTY = VALUES.filter(bool)
_fresh = itertools.count()


def fresh_dir() -> Path:
    return Path(f"/prop/{next(_fresh)}/env")


@property_test
@given(name=NAMES, cur=NON_EMPTY, value=VALUES, delim=VALUES)
def test_append_to_a_set_variable_gives_current_delim_value(put, name, cur, value, delim):
    env = applied(put, {f"{name}.append": value, f"{name}.delim": delim}, {name: cur}, fresh_dir())
    assert env.get(name) == cur + delim + value


@property_test
@given(name=NAMES, cur=NON_EMPTY, value=VALUES, delim=VALUES)
def test_prepend_to_a_set_variable_gives_value_delim_current(put, name, cur, value, delim):
    env = applied(put, {f"{name}.prepend": value, f"{name}.delim": delim}, {name: cur}, fresh_dir())
    assert env.get(name) == value + delim + cur


@property_test
@given(name=NAMES, value=VALUES, delim=VALUES, action=st.sampled_from(["append", "prepend"]))
def test_append_or_prepend_to_an_unset_variable_gives_the_value_without_delim(put, name, value, delim, action):
    env = applied(put, {f"{name}.{action}": value, f"{name}.delim": delim}, {}, fresh_dir())
    assert env.get(name) == value


@property_test
@given(name=NAMES, cur=NON_EMPTY, value=VALUES)
def test_default_never_changes_a_non_empty_value(put, name, cur, value):
    assert applied(put, {f"{name}.default": value}, {name: cur}, fresh_dir()).get(name) == cur


@property_test
@given(name=NAMES, cur=VALUES, value=VALUES, delim=VALUES, suffix=st.sampled_from(["", ".override"]))
def test_override_gives_the_value_whatever_the_current_value_and_delim(put, name, cur, value, delim, suffix):
    env = applied(put, {f"{name}{suffix}": value, f"{name}.delim": delim}, {name: cur}, fresh_dir())
    assert env.get(name) == value


@property_test
@given(name=NAMES, cur=VALUES, value=VALUES)
def test_platform_env_overrides_non_path_variables_with_the_raw_content(put, name, cur, value):
    name = f"X_{name}"
    platform = fresh_dir().parent
    env_dir(put, platform / "env", {name: value})
    assert Env({name: cur}).with_platform(platform).get(name) == value


@property_test
@given(cur=VALUES, value=VALUES, name=st.sampled_from(["PATH", "LD_LIBRARY_PATH", "CPATH"]))
def test_platform_env_path_variable_is_value_colon_current(put, cur, value, name):
    platform = fresh_dir().parent
    env_dir(put, platform / "env", {name: value})
    expected = value + (":" + cur if cur else "")
    assert Env({name: cur}).with_platform(platform).get(name) == expected


@property_test
@given(files=st.dictionaries(st.sampled_from(["V", "V.append", "V.default", "V.override", "V.prepend"]),
                             VALUES, min_size=1),
       cur=VALUES, delim=VALUES)
def test_files_of_one_directory_apply_one_by_one_in_name_order(put, files, cur, delim):
    directory = fresh_dir()
    env = applied(put, {**files, "V.delim": delim}, {"V": cur}, directory)
    expected = cur
    for name in sorted(files):
        expected = spec_rule(name.partition(".")[2] or "override", expected, files[name], delim)
    assert env.get("V") == expected


def spec_rule(action: str, cur: str, value: str, delim: str) -> str:
    """buildpacks/spec buildpack.md#environment-variable-modification-rules, written out independently of cnbsim.env."""
    if action == "override":
        return value
    if action == "default":
        return cur or value
    if action == "prepend":
        return value + delim + cur if cur else value
    return cur + delim + value if cur else value
