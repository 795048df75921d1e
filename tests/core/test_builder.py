"""builder.toml, `--buildpack` references and package.toml, resolved offline."""

from __future__ import annotations

from pathlib import Path

import pytest

import cnbsim
from cnbsim.builder import (
    BUILDERS_DIR,
    STUBS_DIR,
    job_template_dir,
    read_builder_toml,
    resolve_builder,
    resolve_sources,
    stub_for_uri,
)
from cnbsim.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("uri", [
    "gcr.io/paketo-buildpacks/pip", "gcr.io/paketo-buildpacks/pip:0.20.0", "docker://gcr.io/paketo-buildpacks/pip",
    "docker.io/paketobuildpacks/pip:latest", "paketobuildpacks/pip", "urn:cnb:registry:paketo-buildpacks/pip@0.20.0",
    "paketo-buildpacks/pip@sha256:" + "a" * 64,
])
def test_registry_references_of_a_paketo_buildpack_resolve_to_its_stub(uri):
    assert stub_for_uri(uri) == STUBS_DIR / "pip"


@pytest.mark.parametrize("uri", ["docker://planqk-buildpack-job-template", "planqk-buildpacks/job-template",
                                 "docker://registry.example/planqk-buildpack-job-template:0.0.1"])
def test_job_template_references_resolve_to_this_repository(uri):
    assert stub_for_uri(uri) == job_template_dir()


@pytest.mark.parametrize("uri", ["gcr.io/paketo-buildpacks/nodejs", "docker://example.com/other/bp", "heroku/python"])
def test_unknown_references_do_not_resolve(uri):
    assert stub_for_uri(uri) is None


def test_planqk_builder_resolves_offline_with_notices():
    sources = resolve_builder(read_builder_toml(BUILDERS_DIR / "planqk" / "builder.toml"))
    assert len(sources.order) == 5   # PlanQK's three groups, then cnbsim's two Poetry groups
    assert [el.id for el in sources.order[1].group][-1] == "planqk-buildpacks/job-template"
    assert sources.order[1].group[-1].version == "1.0.0"       # the order entry had no version
    assert any("gcr.io/paketo-buildpacks/cpython: using the offline stub paketo-buildpacks/cpython@1.11.0" in n
               for n in sources.notices)
    assert sources.builder.stack["id"] == "io.buildpacks.stacks.jammy"   # recorded, not used


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_local_uri_is_relative_to_the_builder_and_order_version_is_filled_in(tmp_path, bps, app):
    bps("local/bp", "2.0", detect="exit 0")
    builder = write(tmp_path / "b" / "builder.toml", '''
[[buildpacks]]
uri = "../buildpacks/local_bp/2.0"
[[order]]
[[order.group]]
id = "local/bp"
''')
    result = cnbsim.detect(app, builder=builder)
    assert [(e.id, e.version) for e in result.group] == [("local/bp", "2.0")]


def test_a_pinned_version_other_than_the_stubs_is_played_by_the_stub(tmp_path, app):
    (app / "requirements.txt").write_text("")
    builder = write(tmp_path / "builder.toml", '''
[[buildpacks]]
uri = "docker://gcr.io/paketo-buildpacks/cpython:1.18.0"
[[order]]
[[order.group]]
id = "paketo-buildpacks/cpython"
version = "1.18.0"
''')
    sources = resolve_builder(read_builder_toml(builder))
    assert any("paketo-buildpacks/cpython@1.18.0 requested; the stand-in paketo-buildpacks/cpython@1.11.0 plays"
               in n for n in sources.notices)
    assert sources.store.lookup("paketo-buildpacks/cpython", "1.18.0").root == STUBS_DIR / "cpython"


def test_an_unresolvable_uri_says_how_to_provide_it(tmp_path):
    builder = write(tmp_path / "builder.toml", '''
[[buildpacks]]
uri = "docker://example.com/acme/secret-buildpack:1"
[[order]]
[[order.group]]
id = "acme/secret"
''')
    with pytest.raises(ConfigError) as info:
        resolve_builder(read_builder_toml(builder))
    text = str(info.value)
    assert "cannot resolve buildpack 'docker://example.com/acme/secret-buildpack:1' offline" in text
    assert "buildpacks[0].uri" in text and "--buildpack DIR" in text and str(builder) in text


@pytest.mark.parametrize("text, message", [
    ("[[buildpacks]\n", "invalid TOML in builder.toml"),
    ('[[buildpacks]]\nuri = "x"\n', "has no [[order]] groups"),
    ('[[buildpacks]]\nversion = "1"\n[[order]]\n[[order.group]]\nid = "a"\n', "needs a uri"),
])
def test_bad_builder_toml_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        read_builder_toml(write(tmp_path / "builder.toml", text))


def test_buildpack_ids_form_one_group_like_pack_build_buildpack(app):
    (app / "requirements.txt").write_text("")
    sources = resolve_sources(buildpacks=["paketo-buildpacks/python", "planqk-buildpacks/job-template@1.0.0"])
    assert [el.id for el in sources.order[0].group] == ["paketo-buildpacks/python", "planqk-buildpacks/job-template"]
    assert sources.store.lookup("paketo-buildpacks/pip-install", "0.6.1")   # the composite's parts came along


def test_unknown_buildpack_id_lists_what_is_known():
    with pytest.raises(ConfigError) as info:
        resolve_sources(buildpacks=["acme/nope"])
    assert "unknown buildpack 'acme/nope'" in str(info.value) and "paketo-buildpacks/pip" in str(info.value)


def test_package_toml_adds_the_buildpack_and_its_dependencies(tmp_path, bps, app):
    bps("inner/bp", "1.0", detect="exit 0")
    outer = tmp_path / "outer"
    write(outer / "buildpack.toml", 'api = "0.10"\n[buildpack]\nid = "outer/meta"\nversion = "3.0"\n'
                                    '[[order]]\n[[order.group]]\nid = "inner/bp"\nversion = "1.0"\n')
    write(outer / "package.toml", '[buildpack]\nuri = "."\n[[dependencies]]\nuri = "../buildpacks/inner_bp/1.0"\n')
    result = cnbsim.detect(app, buildpacks=[outer / "package.toml"])
    assert [e.id for e in result.group] == ["inner/bp"]


def test_the_job_template_readme_builder_builds_a_poetry_service(tmp_path):
    result = cnbsim.build(REPO / "fixtures" / "apps" / "planqk-poetry",
                          builder=BUILDERS_DIR / "paketo-python-job-template" / "builder.toml", output=tmp_path / "o")
    assert "paketo-buildpacks/poetry-install" in [e.id for e in result.group]
    assert result.process("web").command == ("python", "-m", "app")
