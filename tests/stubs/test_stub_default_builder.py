"""The default (PlanQK) builder: PlanQK's three groups, then the composite's Poetry groups; a
project no group accepts gets a failure that says what each group looks for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import cnbsim
from cnbsim.model.builder import read_builder_toml

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "apps"
BUILDER = Path(cnbsim.__file__).parent / "builders" / "planqk" / "builder.toml"


def test_the_default_builder_has_poetry_groups_after_planqks_three() -> None:
    groups = [[e.id.removeprefix("paketo-buildpacks/") for e in g.group if not e.optional]
              for g in read_builder_toml(BUILDER).order]
    assert groups[3:] == [["cpython", "pip", "poetry", "poetry-install", "poetry-run", "planqk-buildpacks/job-template"],
                          ["cpython", "pip", "poetry", "poetry-install", "python-start",
                           "planqk-buildpacks/job-template"]]
    assert [g[-1] for g in groups] == ["planqk-buildpacks/job-template"] * 5


def test_a_poetry_project_builds_on_the_default_builder(tmp_path: Path) -> None:
    result = cnbsim.build(FIXTURES / "planqk-poetry", output=tmp_path / "out")
    ids = [e.id for e in result.detect.group]
    assert "paketo-buildpacks/poetry-install" in ids and ids[-1] == "planqk-buildpacks/job-template"
    assert (result.layers_dir / "paketo-buildpacks_poetry-install" / "poetry-venv.toml").is_file()


def test_a_project_no_group_accepts_is_told_what_each_group_looks_for(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(FIXTURES / "planqk-stdlib", app)
    (app / "pyproject.toml").write_text('[project]\nname = "svc"\nversion = "1.0"\ndependencies = ["loguru"]\n')
    with pytest.raises(cnbsim.DetectFailed) as failed:
        cnbsim.build(app, output=tmp_path / "out")
    text = failed.value.explain()
    for looked_for in ("Pipfile", "requirements.txt", "environment.yml or package-list.txt",
                       "pyproject.toml with a [tool.poetry] table", "--builder"):
        assert looked_for in text
    assert failed.value.exit_code == 20


def test_a_builder_without_a_hint_fails_detect_as_before(tmp_path: Path) -> None:
    builder = tmp_path / "builder.toml"
    text = BUILDER.read_text()
    builder.write_text(text[:text.index("[cnbsim]")] + text[text.index("# rebuilding"):])
    with pytest.raises(cnbsim.DetectFailed) as failed:
        cnbsim.build(FIXTURES / "planqk-stdlib", builder=builder, output=tmp_path / "out")
    assert "No group of the PlanQK builder" not in failed.value.explain()
