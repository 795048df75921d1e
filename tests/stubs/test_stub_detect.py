"""bin/detect of every stub: verdicts, exit codes, fail messages and the plan TOML they write
(each paketo-buildpacks/<name> detect.go)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from stubrun import STUBS, Lifecycle

PACKIT_BUILD_REQ = {"build": True, "launch": False, "version": "", "version-source": ""}


def test_cpython_always_provides_cpython(lc: Lifecycle) -> None:
    run = lc.detect("cpython")
    assert (run.code, run.stdout, run.stderr) == (0, "", "")
    assert run.plan == {"provides": [{"name": "cpython"}]}


def test_cpython_requires_itself_with_bp_cpython_version_even_empty(lc: Lifecycle) -> None:
    for value in ("3.11.*", ""):
        run = lc.detect("cpython", {"BP_CPYTHON_VERSION": value, "BP_CPYTHON_CONFIGURE_FLAGS": "--x"})
        assert run.plan["requires"] == [{"name": "cpython", "metadata": {
            "version": value, "version-source": "BP_CPYTHON_VERSION", "configure-flags": "--x"}}]


def test_cpython_errors_on_buildpack_yml(lc: Lifecycle) -> None:
    lc.write("buildpack.yml", "python: {}\n")
    run = lc.detect("cpython")
    assert run.code == 1
    assert run.stderr == ("working directory contains deprecated 'buildpack.yml'; "
                          "use environment variables for configuration\n")


def test_pip_requires_cpython_with_all_four_metadata_keys(lc: Lifecycle) -> None:
    run = lc.detect("pip")
    assert run.code == 0
    assert run.plan == {"provides": [{"name": "pip"}],
                        "requires": [{"name": "cpython", "metadata": PACKIT_BUILD_REQ}]}


@pytest.mark.parametrize("value, version", [("23.3", "23.3.0"), ("23.3.1", "23.3.1"), ("23", "23")])
def test_pip_version_env_requires_pip_with_x_y_expanded(lc: Lifecycle, value: str, version: str) -> None:
    run = lc.detect("pip", {"BP_PIP_VERSION": value})
    assert run.plan["requires"][1] == {"name": "pip", "metadata": {
        "build": False, "launch": False, "version": version, "version-source": "BP_PIP_VERSION"}}


def test_pip_install_passes_with_requirements_txt(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "flask\n")
    run = lc.detect("pip-install")
    assert run.code == 0
    assert run.plan == {"provides": [{"name": "site-packages"}],
                        "requires": [{"name": "cpython", "metadata": {"build": True}},
                                     {"name": "pip", "metadata": {"build": True}}]}


def test_pip_install_fails_naming_every_missing_requirement_file(lc: Lifecycle) -> None:
    lc.write("base.txt", "flask\n")
    assert lc.detect("pip-install").stderr == "requirements file not found at: 'requirements.txt'\n"
    run = lc.detect("pip-install", {"BP_PIP_REQUIREMENT": "a.txt base.txt b.txt"})
    assert (run.code, run.stderr) == (100, "requirements file not found at: 'a.txt', 'b.txt'\n")
    assert lc.detect("pip-install", {"BP_PIP_REQUIREMENT": "base.txt"}).code == 0


def test_pipenv_requires_pip_and_cpython_and_pipenv_with_its_version(lc: Lifecycle) -> None:
    run = lc.detect("pipenv", {"BP_PIPENV_VERSION": "2023.10.20"})
    assert run.plan == {"provides": [{"name": "pipenv"}], "requires": [
        {"name": "pip", "metadata": PACKIT_BUILD_REQ},
        {"name": "cpython", "metadata": PACKIT_BUILD_REQ},
        {"name": "pipenv", "metadata": {"version-source": "BP_PIPENV_VERSION", "version": "2023.10.20",
                                        "build": False, "launch": False}}]}


def test_pipenv_install_needs_a_pipfile(lc: Lifecycle) -> None:
    run = lc.detect("pipenv-install")
    assert (run.code, run.stderr) == (100, "no 'Pipfile' found\n")


def test_pipenv_install_takes_the_python_version_from_the_lock_before_the_pipfile(lc: Lifecycle) -> None:
    lc.write("Pipfile", '[packages]\nflask = "*"\n\n[requires]\npython_version = "3.9"\n')
    run = lc.detect("pipenv-install")
    assert run.plan["requires"] == [
        {"name": "cpython", "metadata": {"build": True, "version": "3.9", "version-source": "Pipfile"}},
        {"name": "pipenv", "metadata": {"build": True, "version": "", "version-source": ""}}]
    lc.write("Pipfile.lock", '{\n    "_meta": {\n        "hash": {"sha256": "x"},\n        "requires": {\n'
                             '            "python_version": "3.10"\n        }\n    },\n    "default": {}\n}\n')
    cpython = lc.detect("pipenv-install").plan["requires"][0]
    assert cpython["metadata"] == {"build": True, "version": "3.10", "version-source": "Pipfile.lock"}


def test_pipenv_install_does_not_read_the_pipfile_when_the_lock_has_no_version(lc: Lifecycle) -> None:
    lc.write("Pipfile", '[requires]\npython_version = "3.9"\n')
    lc.write("Pipfile.lock", '{"_meta": {"requires": {}}, "default": {}}')
    cpython = lc.detect("pipenv-install").plan["requires"][0]
    assert cpython["metadata"] == {"build": True, "version": "", "version-source": ""}


def test_pipenv_install_errors_on_an_invalid_pipfile(lc: Lifecycle) -> None:
    lc.write("Pipfile", "[requires\n")
    run = lc.detect("pipenv-install")
    assert run.code == 1 and "Pipfile" in run.stderr


def test_miniconda_provides_conda_and_requires_nothing(lc: Lifecycle) -> None:
    assert lc.detect("miniconda").plan == {"provides": [{"name": "conda"}]}


def test_conda_env_update_needs_environment_yml_or_package_list(lc: Lifecycle) -> None:
    run = lc.detect("conda-env-update")
    assert (run.code, run.stderr) == (100, "no 'environment.yml' and 'package-list.txt' found\n")
    for name in ("environment.yml", "package-list.txt"):
        other = Lifecycle(lc.root / name)
        other.write(name, "x\n")
        assert other.detect("conda-env-update").plan == {
            "provides": [{"name": "conda-environment"}],
            "requires": [{"name": "conda", "metadata": {"build": True}}]}


@pytest.mark.parametrize("trigger", ["environment.yml", "requirements.txt", "package-list.txt",
                                     "pyproject.toml", "app.py", ".hidden.py"])
def test_python_start_offers_four_alternatives_for_each_trigger(lc: Lifecycle, trigger: str) -> None:
    lc.write(trigger, "\n")
    run = lc.detect("python-start")
    launch = {"launch": True}
    assert run.code == 0
    assert run.plan == {
        "provides": [], "requires": [{"name": "cpython", "metadata": launch},
                                     {"name": "site-packages", "metadata": launch}],
        "or": [{"provides": [], "requires": [{"name": "conda-environment", "metadata": launch}]},
               {"provides": [], "requires": [{"name": "cpython", "metadata": launch},
                                             {"name": "poetry", "metadata": launch},
                                             {"name": "poetry-venv", "metadata": launch}]},
               {"provides": [], "requires": [{"name": "cpython", "metadata": launch}]}]}


def test_python_start_fails_with_a_pipfile_alone_and_in_subdirs(lc: Lifecycle) -> None:
    lc.write("Pipfile", "\n")
    lc.write("src/app.py", "\n")
    run = lc.detect("python-start")
    assert (run.code, run.stderr) == (
        100, "No *.py, environment.yml, requirements.txt, pyproject.toml, or package-list.txt found\n")


def test_python_start_requires_watchexec_in_every_alternative_with_live_reload(lc: Lifecycle) -> None:
    lc.write("app.py", "\n")
    plan = lc.detect("python-start", {"BP_LIVE_RELOAD_ENABLED": "true"}).plan
    for alternative in [plan, *plan["or"]]:
        assert alternative["requires"][-1] == {"name": "watchexec", "metadata": {"launch": True}}
    run = lc.detect("python-start", {"BP_LIVE_RELOAD_ENABLED": "maybe"})
    assert run.code == 1 and "failed to parse BP_LIVE_RELOAD_ENABLED value maybe" in run.stderr


POETRY_PYPROJECT = """[tool.poetry]
name = "default_app"
version = "0.1.0"

[tool.poetry.dependencies]
python = "^3.10"
Flask = "3.1.3"

[tool.poetry.scripts]
my-script = "default_app.server:run"
"""


def test_poetry_requires_cpython_with_the_pyproject_constraint(lc: Lifecycle) -> None:
    lc.write("pyproject.toml", POETRY_PYPROJECT)
    run = lc.detect("poetry", {"BP_POETRY_VERSION": "1.6.1"})
    assert run.plan == {"provides": [{"name": "poetry"}], "requires": [
        {"name": "pip", "metadata": {"version-source": "", "build": True, "version": ""}},
        {"name": "cpython", "metadata": {"version-source": "pyproject.toml", "build": True, "version": "^3.10"}},
        {"name": "poetry", "metadata": {"version-source": "BP_POETRY_VERSION", "build": False, "version": "1.6.1"}}]}


def test_poetry_fails_without_pyproject_or_its_python_constraint(lc: Lifecycle) -> None:
    assert lc.detect("poetry").stderr == "pyproject.toml is not present\n"
    # 0.8.0 reads only [tool.poetry.dependencies] python, not [project] requires-python
    lc.write("pyproject.toml", '[project]\nname = "x"\nrequires-python = ">=3.10"\n')
    run = lc.detect("poetry")
    assert (run.code, run.stderr) == (100, "pyproject.toml must include [tool.poetry.dependencies.python], "
                                           "see https://python-poetry.org/docs/pyproject/#dependencies-and-dev-dependencies\n")


def test_poetry_errors_on_invalid_toml(lc: Lifecycle) -> None:
    lc.write("pyproject.toml", "[tool.poetry\n")
    assert lc.detect("poetry").code == 1


def test_poetry_install_needs_pyproject(lc: Lifecycle) -> None:
    assert lc.detect("poetry-install").stderr == "no 'pyproject.toml' found\n"
    lc.write("pyproject.toml", "[tool.poetry]\n")
    assert lc.detect("poetry-install").plan == {
        "provides": [{"name": "poetry-venv"}],
        "requires": [{"name": "cpython", "metadata": {"build": True}},
                     {"name": "poetry", "metadata": {"build": True}}]}


def test_poetry_run_needs_exactly_one_script_or_a_run_target(lc: Lifecycle) -> None:
    message = "Expects one and exactly one script defined in pyproject.toml\n"
    assert lc.detect("poetry-run").stderr == message
    lc.write("pyproject.toml", POETRY_PYPROJECT + 'other = "default_app.server:other"\n')
    assert (lc.detect("poetry-run").code, lc.detect("poetry-run").stderr) == (100, message)
    assert lc.detect("poetry-run", {"BP_POETRY_RUN_TARGET": "python -m app"}).code == 0
    lc.write("pyproject.toml", POETRY_PYPROJECT)
    run = lc.detect("poetry-run")
    assert run.plan == {"requires": [{"name": "cpython", "metadata": {"launch": True}},
                                     {"name": "poetry", "metadata": {"launch": True}},
                                     {"name": "poetry-venv", "metadata": {"launch": True}}]}


def test_procfile_offers_its_process_types_as_metadata(lc: Lifecycle) -> None:
    lc.write("Procfile", 'web: gunicorn server:app\r\nrun:   python -c "from sample import run; run()"\n'
                         "# comment\nnot a process\n")
    run = lc.detect("procfile")
    assert run.plan == {"provides": [{"name": "procfile"}], "requires": [{"name": "procfile", "metadata": {
        "run": 'python -c "from sample import run; run()"', "web": "gunicorn server:app"}}]}


def test_procfile_from_a_binding_wins_over_the_app(lc: Lifecycle) -> None:
    lc.write("Procfile", "web: python app.py\nworker: celery\n")
    binding = lc.platform / "bindings" / "my-procfile"
    binding.mkdir(parents=True)
    (binding / "type").write_text("Procfile\n")
    (binding / "Procfile").write_text("web: gunicorn app\n")
    assert lc.detect("procfile").plan["requires"][0]["metadata"] == {"web": "gunicorn app", "worker": "celery"}


def test_procfile_skips_without_a_procfile(lc: Lifecycle) -> None:
    run = lc.detect("procfile")
    assert (run.code, run.stdout) == (100, "SKIPPED: No procfile found from either source path or binding.\n")


def test_ca_certificates_offers_the_helper_alone_as_second_plan(lc: Lifecycle) -> None:
    run = lc.detect("ca-certificates")
    helper = {"name": "ca-certificates-helper"}
    assert run.plan == {"provides": [{"name": "ca-certificates"}, helper], "requires": [helper],
                        "or": [{"provides": [helper], "requires": [helper]}]}


def test_ca_certificates_without_runtime_binding_offers_only_the_primary(lc: Lifecycle) -> None:
    assert lc.detect("ca-certificates", {"BP_RUNTIME_CERT_BINDING_DISABLED": "true"}).plan == {
        "provides": [{"name": "ca-certificates"}]}
    assert lc.detect("ca-certificates", {"BP_ENABLE_RUNTIME_CERT_BINDING": "false"}).plan == {
        "provides": [{"name": "ca-certificates"}]}
    run = lc.detect("ca-certificates", {"BP_ENABLE_RUNTIME_CERT_BINDING": "nope"})
    assert run.code == 1 and "invalid value 'nope' for key 'BP_ENABLE_RUNTIME_CERT_BINDING'" in run.stderr


def test_ca_certificates_requires_the_certs_of_its_bindings(lc: Lifecycle) -> None:
    binding = lc.platform / "bindings" / "certs"
    binding.mkdir(parents=True)
    (binding / "type").write_text("ca-certificates")
    (binding / "b.pem").write_text("B")
    (binding / "a.pem").write_text("A")
    plan = lc.detect("ca-certificates").plan
    assert plan["requires"][0] == {"name": "ca-certificates",
                                   "metadata": {"paths": [str(binding / "a.pem"), str(binding / "b.pem")]}}


def test_watchexec_provides_watchexec(lc: Lifecycle) -> None:
    assert lc.detect("watchexec").plan == {"provides": [{"name": "watchexec"}]}


def test_environment_variables_passes_on_a_bpe_variable_of_the_platform(lc: Lifecycle) -> None:
    assert (lc.detect("environment-variables").code, lc.detect("environment-variables").stdout) == (100, "")
    run = lc.detect("environment-variables", {"BPE_GREETING": "hi"})
    both = [{"name": "environment-variables"}]
    assert run.plan == {"provides": both, "requires": both}


def test_image_labels_passes_on_labels_or_oci_variables(lc: Lifecycle) -> None:
    run = lc.detect("image-labels")
    assert (run.code, run.stdout) == (100, "SKIPPED: No supported environment variables were set\n")
    for env in ({"BP_IMAGE_LABELS": "a=b"}, {"BP_OCI_SOURCE": "https://x"}):
        both = [{"name": "image-labels"}]
        assert lc.detect("image-labels", env).plan == {"provides": both, "requires": both}


def test_api_0_8_detect_writes_the_plan_named_by_cnb_build_plan_path(lc: Lifecycle, tmp_path: Path) -> None:
    """packit: the env var wins over $2 (python-start declares Buildpack API 0.8)."""
    lc.write("app.py", "\n")
    by_arg, by_env = tmp_path / "arg-plan.toml", tmp_path / "env-plan.toml"
    env = {"PATH": os.environ["PATH"], "CNB_BUILDPACK_DIR": str(STUBS / "python-start"),
           "CNB_PLATFORM_DIR": str(lc.platform), "CNB_BUILD_PLAN_PATH": str(by_env)}
    proc = subprocess.run([str(STUBS / "python-start" / "bin" / "detect"), str(lc.platform), str(by_arg)],
                          cwd=lc.app, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert not by_arg.exists() and "[[or]]" in by_env.read_text()


def test_api_0_7_detect_needs_only_the_positional_args(lc: Lifecycle, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    env = {"PATH": os.environ["PATH"], "CNB_BUILDPACK_DIR": str(STUBS / "pip")}
    proc = subprocess.run([str(STUBS / "pip" / "bin" / "detect"), str(lc.platform), str(plan)],
                          cwd=lc.app, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and 'name = "pip"' in plan.read_text()
