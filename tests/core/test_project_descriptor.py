"""pack's project descriptor (project.toml, schemas 0.2 and 0.1) through the Python API."""

from __future__ import annotations

import pytest

import cnbsim
from cnbsim.errors import ConfigError

SHOW = 'echo "MODE=${MODE:-unset}"; ls -A "$PWD" | sort | tr "\\n" " "; echo'


@pytest.fixture
def shower(bps):
    return bps("test/show", build=f'MODE="$(cat "$2/env/MODE" 2>/dev/null || true)"; {SHOW}')


def _write(app, text):
    (app / "project.toml").write_text(text)
    (app / "README.md").write_text("docs\n")
    (app / "secret.txt").write_text("x\n")


@pytest.mark.parametrize("schema", ["0.2", "0.1"])
def test_env_group_and_exclude(app, shower, tmp_path, schema):
    uri = shower.relative_to(app.parent)
    if schema == "0.2":
        text = f'''[_]\nschema-version = "0.2"\n[io.buildpacks]\nexclude = ["/README.md", "*.txt"]
[[io.buildpacks.group]]\nuri = "../{uri}"\n[[io.buildpacks.build.env]]\nname = "MODE"\nvalue = "descriptor"\n'''
    else:
        text = f'''[project]\nversion = "1"\n[build]\nexclude = ["/README.md", "*.txt"]
[[build.buildpacks]]\nuri = "../{uri}"\n[[build.env]]\nname = "MODE"\nvalue = "descriptor"\n'''
    _write(app, text)
    result = cnbsim.build(app, output=tmp_path / "out")
    out = result.output_of("test/show")
    assert "MODE=descriptor" in out
    assert "main.py project.toml" in out and "README.md" not in out and "secret.txt" not in out
    assert not (result.workspace / "secret.txt").exists()
    # flags over the descriptor, as pack: env= over its env, buildpacks= over its group
    other = cnbsim.build(app, output=tmp_path / "out2", env={"MODE": "flag"}, buildpacks=[shower])
    assert "MODE=flag" in other.output_of("test/show")


def test_include_keeps_only_matching_files(app, shower, tmp_path):
    (app / "src").mkdir()
    (app / "src" / "a.py").write_text("")
    _write(app, '[_]\nschema-version = "0.2"\n[io.buildpacks]\ninclude = ["*.py"]\n')
    result = cnbsim.build(app, output=tmp_path / "out", buildpacks=[shower])
    assert sorted(p.relative_to(result.workspace).as_posix() for p in result.workspace.rglob("*")) == [
        "main.py", "src", "src/a.py"]


@pytest.mark.parametrize("text, field, words", [
    ('[_]\nschema-version = "0.2"\n[io.buildpacks]\ninclude = ["a"]\nexclude = ["b"]\n', "io.buildpacks.include",
     "cannot have both include and exclude"),
    ('[_]\nschema-version = "9"\n', "_.schema-version", "unknown project descriptor schema version 9"),
    ('[_]\nschema-version = "0.2"\n[[io.buildpacks.group]]\nuri = "./x"\nversion = "1"\n',
     "io.buildpacks.group[0].version", "cannot have both uri and version"),
    ('[_]\nschema-version = "0.2"\n[[io.buildpacks.group]]\nversion = "1"\n', "io.buildpacks.group[0]",
     "must have an id or uri"),
    ('[_]\nschema-version = "0.2"\n[io.buildpacks]\nexclude = "x"\n', "io.buildpacks.exclude", "array of strings"),
])
def test_bad_descriptors_name_the_file_field_and_fix(app, shower, tmp_path, text, field, words):
    _write(app, text)
    with pytest.raises(ConfigError) as err:
        cnbsim.build(app, output=tmp_path / "out", buildpacks=[shower])
    assert err.value.field == field and words in str(err.value) and "project.toml" in str(err.value)


def test_bad_toml_syntax_is_a_config_error(app, shower, tmp_path):
    _write(app, "[_\n")
    with pytest.raises(ConfigError) as err:
        cnbsim.detect(app, buildpacks=[shower])
    assert "project.toml" in str(err.value)


def test_unknown_keys_are_warned_about_as_pack_does(app, shower, tmp_path):
    _write(app, '[_]\nschema-version = "0.2"\n[io.buildpacks]\nexclud = ["x"]\n')
    result = cnbsim.build(app, output=tmp_path / "out", buildpacks=[shower])
    assert "io.buildpacks.exclud" in result.log and "ignored" in result.log
