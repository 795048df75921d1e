"""The build phase on real bin/build executables (buildpacks/spec buildpack.md#build, platform.md#builder)."""

from __future__ import annotations

import pytest

from cnbsim.errors import BuildError
from cnbsim.tomlio import read_toml

PROVIDE = 'printf "[[provides]]\\nname = \\"%s\\"\\n" "{0}" >> "$CNB_BUILD_PLAN_PATH"'
REQUIRE = 'printf "[[requires]]\\nname = \\"%s\\"\\n" "{0}" >> "$CNB_BUILD_PLAN_PATH"'

LAYER = '''
mkdir -p "$CNB_LAYERS_DIR/{name}"
printf '[types]\\nbuild = {build}\\nlaunch = {launch}\\ncache = false\\n' > "$CNB_LAYERS_DIR/{name}.toml"
'''


def env_file(layer: str, sub: str, name: str, value: str) -> str:
    return (f'mkdir -p "$CNB_LAYERS_DIR/{layer}/{sub}" && '
            f'printf %s "{value}" > "$CNB_LAYERS_DIR/{layer}/{sub}/{name}"\n')


def dump_env(tmp_path, var):
    return f'printf %s "${{{var}-<unset>}}" > {tmp_path}/{var}.seen\n'


@pytest.mark.parametrize("files, before, expected", [
    ({"V": "new"}, "old", "new"),                                   # no suffix = override (API >= 0.5)
    ({"V.override": "new"}, "old", "new"),
    ({"V.default": "new"}, "old", "old"),
    ({"V.default": "new"}, None, "new"),
    ({"V.append": "new"}, "old", "oldnew"),                          # no delim: plain concatenation
    ({"V.append": "new", "V.delim": ":"}, "old", "old:new"),
    ({"V.prepend": "new", "V.delim": ","}, "old", "new,old"),
    ({"V.prepend": "new"}, None, "new"),
    ({"V.append": "a", "V.prepend": "p", "V.delim": "|"}, "o", "p|o|a"),
    ({"V.foo.append": "x"}, "old", "old"),                           # unknown suffix ignored
])
def test_build_env_suffix_rules_seen_by_the_next_buildpack(lc, bps, tmp_path, files, before, expected):
    first = LAYER.format(name="l", build="true", launch="false")
    if before is not None:
        first += env_file("l", "env", "V", before)
    bps("z", build=first)
    body = LAYER.format(name="l", build="true", launch="false")
    body += "".join(env_file("l", "env.build", n, v) for n, v in files.items())
    bps("a", detect=PROVIDE.format("x"), build=body)
    bps("b", detect=REQUIRE.format("x"), build=dump_env(tmp_path, "V"))
    lc.build([[("z", "1.0"), ("a", "1.0"), ("b", "1.0")]])
    assert (tmp_path / "V.seen").read_text() == expected


def test_platform_value_beats_a_buildpack_override_of_a_non_path_variable(lc, bps, tmp_path):
    body = LAYER.format(name="l", build="true", launch="false") + env_file("l", "env", "V.override", "bp")
    bps("a", build=body)
    bps("b", build=dump_env(tmp_path, "V"))
    lc.platform_env("V", "user")
    lc.build([[("a", "1.0"), ("b", "1.0")]])
    assert (tmp_path / "V.seen").read_text() == "user"


def test_env_of_launch_only_layer_is_not_applied_at_build(lc, bps, tmp_path):
    body = LAYER.format(name="l", build="false", launch="true") + env_file("l", "env", "V", "x")
    bps("a", build=body)
    bps("b", build=dump_env(tmp_path, "V"))
    lc.build([[("a", "1.0"), ("b", "1.0")]])
    assert (tmp_path / "V.seen").read_text() == "<unset>"


def test_env_launch_dir_is_not_applied_at_build(lc, bps, tmp_path):
    body = LAYER.format(name="l", build="true", launch="true") + env_file("l", "env.launch", "V", "x")
    bps("a", build=body)
    bps("b", build=dump_env(tmp_path, "V"))
    lc.build([[("a", "1.0"), ("b", "1.0")]])
    assert (tmp_path / "V.seen").read_text() == "<unset>"


def test_bin_and_lib_of_build_layers_are_prepended_later_layer_first(lc, bps, tmp_path):
    body = ""
    for name in ("aa", "bb"):
        body += LAYER.format(name=name, build="true", launch="false")
        body += f'mkdir -p "$CNB_LAYERS_DIR/{name}/bin" "$CNB_LAYERS_DIR/{name}/lib"\n'
    bps("a", build=body)
    bps("b", build=dump_env(tmp_path, "PATH") + dump_env(tmp_path, "LIBRARY_PATH"))
    lc.build([[("a", "1.0"), ("b", "1.0")]])
    layers = lc.layers / "a"
    path = (tmp_path / "PATH.seen").read_text().split(":")
    assert path[:2] == [str(layers / "bb" / "bin"), str(layers / "aa" / "bin")]
    assert (tmp_path / "LIBRARY_PATH.seen").read_text() == f"{layers / 'bb' / 'lib'}:{layers / 'aa' / 'lib'}"


def test_a_buildpack_does_not_see_its_own_layers_env(lc, bps, tmp_path):
    body = LAYER.format(name="l", build="true", launch="false") + env_file("l", "env", "V", "x")
    bps("a", build=body + dump_env(tmp_path, "V"))
    lc.build([[("a", "1.0")]])
    assert (tmp_path / "V.seen").read_text() == "<unset>"


def test_layer_without_types_is_renamed_to_ignore(lc, bps):
    bps("a", build='mkdir -p "$CNB_LAYERS_DIR/junk"; echo "[metadata]" > "$CNB_LAYERS_DIR/junk.toml"')
    outcome = lc.build([[("a", "1.0")]])
    assert (lc.layers / "a" / "junk.ignore").is_dir()
    assert not (lc.layers / "a" / "junk").exists()
    assert outcome.buildpacks[0].layers == ()


@pytest.mark.parametrize("bad", ["launch", "build"])
def test_a_malformed_launch_or_build_toml_fails_where_the_layer_walk_reaches_it(lc, bps, bad):
    # lifecycle buildpack/build.go eachLayer decodes every *.toml in name order: the untyped layer
    # before the bad file is renamed, the one after it is left as the buildpack wrote it.
    bps("a", build=f'''cd "$CNB_LAYERS_DIR"; mkdir aa zz; echo "[metadata]" > aa.toml; cp aa.toml zz.toml
echo "[[processes]" > {bad}.toml''')
    with pytest.raises(BuildError, match=f"invalid TOML in {bad}.toml"):
        lc.build([[("a", "1.0")]])
    assert sorted(p.name for p in (lc.layers / "a").iterdir() if p.is_dir()) == ["aa.ignore", "zz"]


def test_layer_metadata_and_types_are_read(lc, bps):
    bps("a", build='''mkdir -p "$CNB_LAYERS_DIR/deps"
cat > "$CNB_LAYERS_DIR/deps.toml" <<'EOF'
[types]
launch = true
cache = true
[metadata]
checksum = "abc"
EOF''')
    (layer,) = lc.build([[("a", "1.0")]]).buildpacks[0].layers
    assert (layer.name, layer.launch, layer.build, layer.cache) == ("deps", True, False, True)
    assert layer.metadata.metadata == {"checksum": "abc"}


def test_top_level_layer_flags_are_rejected_with_the_file_named(lc, bps):
    bps("a", build='printf "launch = true\\n" > "$CNB_LAYERS_DIR/l.toml"')
    with pytest.raises(BuildError) as info:
        lc.build([[("a", "1.0")]])
    assert info.value.exit_code == 52
    assert "should be in the types table" in str(info.value) and "l.toml" in str(info.value)


def test_a_layer_that_is_a_symlink_out_of_the_layers_dir_is_rejected(lc, bps, tmp_path):
    bps("a", build=f'ln -s {tmp_path} "$CNB_LAYERS_DIR/esc"; '
                   'printf "[types]\\nlaunch = true\\n" > "$CNB_LAYERS_DIR/esc.toml"')
    with pytest.raises(BuildError, match="symbolic link"):
        lc.build([[("a", "1.0")]])


def test_failing_bin_build_is_exit_51_and_stops_the_group(lc, bps, tmp_path):
    bps("a", build="echo 'compiling failed'; exit 3")
    bps("b", build=f"touch {tmp_path}/b-ran")
    with pytest.raises(BuildError) as info:
        lc.build([[("a", "1.0"), ("b", "1.0")]])
    assert info.value.exit_code == 51
    assert "exit status 3" in str(info.value)
    assert not (tmp_path / "b-ran").exists()
    assert not (lc.layers / "config" / "metadata.toml").exists()


def test_hanging_bin_build_is_killed(lc, bps):
    bps("a", build="sleep 30")
    with pytest.raises(BuildError, match="timed out"):
        lc.build([[("a", "1.0")]], build_timeout=0.5)


def test_a_bin_build_that_closes_its_output_and_works_on_is_waited_for(lc, bps):
    # the lifecycle waits for the process, not for the end of its output
    bps("a", build='echo started; exec >/dev/null 2>&1; sleep 0.3; echo done > "$CNB_LAYERS_DIR/late"')
    lc.build([[("a", "1.0")]])
    assert (lc.layers / "a" / "late").read_text() == "done\n"


def test_a_bin_build_that_closes_its_output_still_times_out(lc, bps):
    bps("a", build="exec >/dev/null 2>&1; sleep 30")
    with pytest.raises(BuildError, match="timed out"):
        lc.build([[("a", "1.0")]], build_timeout=0.5)


def test_later_buildpack_process_of_same_type_replaces_earlier_and_default_is_kept(lc, bps):
    bps("a", api="0.8", build='printf \'[[processes]]\\ntype = "web"\\ncommand = "python"\\ndefault = true\\n'
                              '[[processes]]\\ntype = "worker"\\ncommand = "w"\\n\' > "$CNB_LAYERS_DIR/launch.toml"')
    bps("b", api="0.10", build='printf \'[[processes]]\\ntype = "web"\\ncommand = ["python", "-m", "app"]\\n'
                               'default = true\\n\' > "$CNB_LAYERS_DIR/launch.toml"')
    lc.build([[("a", "1.0"), ("b", "1.0")]])
    md = read_toml(lc.layers / "config" / "metadata.toml")
    assert md["buildpack-default-process-type"] == "web"
    assert [p["type"] for p in md["processes"]] == ["web", "worker"]    # sorted by type
    web = md["processes"][0]
    assert web == {"type": "web", "command": ["python", "-m", "app"], "direct": True, "buildpack-id": "b"}
    assert md["processes"][1] == {"type": "worker", "command": ["w"], "direct": False, "buildpack-id": "a"}


def test_redefining_the_default_without_default_clears_it(lc, bps):
    bps("a", build='printf \'[[processes]]\\ntype = "web"\\ncommand = ["x"]\\ndefault = true\\n\' '
                   '> "$CNB_LAYERS_DIR/launch.toml"')
    bps("b", build='printf \'[[processes]]\\ntype = "web"\\ncommand = ["y"]\\n\' > "$CNB_LAYERS_DIR/launch.toml"')
    outcome = lc.build([[("a", "1.0"), ("b", "1.0")]])
    assert outcome.metadata.default_process == ""
    assert any("redefining the following default process type" in m for _, m in lc.log.records)


def test_web_is_not_implicitly_default(lc, bps):
    bps("a", build='printf \'[[processes]]\\ntype = "web"\\ncommand = ["x"]\\n\' > "$CNB_LAYERS_DIR/launch.toml"')
    assert lc.build([[("a", "1.0")]]).metadata.default_process == ""


@pytest.mark.parametrize("api, launch, message", [
    ("0.8", 'command = ["python"]', "must be a string for Buildpack API 0.8"),
    ("0.9", 'command = "python"', "must be an array of strings for Buildpack API 0.9"),
    ("0.9", 'command = ["python"]\ndirect = true', "process.direct is not supported"),
    ("0.10", 'command = ["x"]\ndefault = true\n[[processes]]\ntype = "b"\ncommand = ["y"]\ndefault = true',
     "multiple default process types"),
])
def test_launch_toml_api_rules(lc, bps, api, launch, message):
    bps("a", api=api, build=f"cat > \"$1/launch.toml\" <<'EOF'\n[[processes]]\ntype = \"a\"\n{launch}\nEOF")
    with pytest.raises(BuildError, match=message) as info:
        lc.build([[("a", "1.0")]])
    assert info.value.exit_code == 52 and "launch.toml" in str(info.value)


def test_working_dir_is_ignored_with_a_warning_for_api_0_7(lc, bps):
    bps("a", api="0.7", build='printf \'[[processes]]\\ntype = "web"\\ncommand = "x"\\nworking-dir = "sub"\\n\' '
                              '> "$1/launch.toml"')
    outcome = lc.build([[("a", "1.0")]])
    assert outcome.metadata.processes[0].working_dir == ""
    assert any(level == "warn" and "working-dir" in m for level, m in lc.log.records)


def test_buildpack_plan_holds_the_entries_it_provides_and_unmet_passes_them_on(lc, bps, tmp_path):
    bps("a", detect=PROVIDE.format("py"),
        build=f'cp "$CNB_BP_PLAN_PATH" {tmp_path}/a-plan; printf \'[[unmet]]\\nname = "py"\\n\' > "$1/build.toml"')
    bps("b", detect=PROVIDE.format("py") + "\n" + REQUIRE.format("py"), build=f'cp "$3" {tmp_path}/b-plan')
    lc.build([[("a", "1.0"), ("b", "1.0")]])
    assert read_toml(tmp_path / "a-plan") == {"entries": [{"name": "py"}]}
    assert read_toml(tmp_path / "b-plan") == {"entries": [{"name": "py"}]}


def test_met_entry_is_not_given_to_the_next_provider(lc, bps, tmp_path):
    bps("a", detect=PROVIDE.format("py"))
    bps("b", detect=PROVIDE.format("py") + "\n" + REQUIRE.format("py"), build=f'cp "$3" {tmp_path}/b-plan')
    lc.build([[("a", "1.0"), ("b", "1.0")]])
    assert (tmp_path / "b-plan").read_text() == ""


def test_unmet_name_not_in_plan_is_an_error(lc, bps):
    bps("a", build='printf \'[[unmet]]\\nname = "nope"\\n\' > "$1/build.toml"')
    with pytest.raises(BuildError, match="must match a requested dependency"):
        lc.build([[("a", "1.0")]])


@pytest.mark.parametrize("api, expected", [
    ("0.7", {"CNB_BUILDPACK_DIR"}),
    ("0.8", {"CNB_BUILDPACK_DIR", "CNB_PLATFORM_DIR", "CNB_BP_PLAN_PATH", "CNB_LAYERS_DIR"}),
    ("0.10", {"CNB_BUILDPACK_DIR", "CNB_PLATFORM_DIR", "CNB_BP_PLAN_PATH", "CNB_LAYERS_DIR", "CNB_TARGET_OS",
              "CNB_TARGET_ARCH"}),
])
def test_build_gets_args_and_cnb_variables_of_its_api(lc, bps, tmp_path, api, expected):
    bps("my/bp", api=api, build=f'env | grep ^CNB_ | cut -d= -f1 | sort > {tmp_path}/vars; '
                                f'echo "$#|$1|$2|$PWD" > {tmp_path}/args')
    lc.build([[("my/bp", "1.0")]])
    seen = set((tmp_path / "vars").read_text().split()) - {"CNB_TARGET_DISTRO_NAME", "CNB_TARGET_DISTRO_VERSION"}
    assert seen == expected
    count, layers_arg, platform_arg, cwd = (tmp_path / "args").read_text().strip().split("|")
    assert (count, layers_arg, platform_arg, cwd) == ("3", str(lc.layers / "my_bp"), str(lc.platform_dir),
                                                      str(lc.app))


def test_labels_slices_and_store_are_collected(lc, bps):
    bps("a", build='''cat > "$1/launch.toml" <<'EOF'
[[labels]]
key = "org.example.team"
value = "quantum"
[[slices]]
paths = ["static/*"]
EOF
printf '[metadata]\\nruns = 1\\n' > "$1/store.toml"''')
    outcome = lc.build([[("a", "1.0")]])
    md = read_toml(lc.layers / "config" / "metadata.toml")
    assert md["labels"] == [{"key": "org.example.team", "value": "quantum"}]
    assert md["slices"] == [{"paths": ["static/*"]}]
    assert outcome.buildpacks[0].store.metadata == {"runs": 1}
