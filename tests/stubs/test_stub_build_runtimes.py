"""bin/build of the stubs that stand for the installers: cpython, pip, pipenv, miniconda,
poetry (paketo-buildpacks/<name> build.go): version resolution and its log, layers
with their types, metadata and env files, and reuse on rebuild."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile

import pytest
from stubrun import BASE_PYTHON, Lifecycle, descriptor, entry

PIP_GROUP_CPYTHON = [entry("cpython", build=True, launch=False, version="", version_source=""),
                     entry("cpython", build=True), entry("cpython", launch=True)]
JAMMY = {"CNB_STACK_ID": "io.buildpacks.stacks.jammy"}


def host_version() -> str:
    return subprocess.run([BASE_PYTHON, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def checksum(stub: str, dep_id: str, version: str, stack: str) -> str:
    for dep in descriptor(stub)["metadata"]["dependencies"]:
        if (dep["id"], dep["version"]) == (dep_id, version) and stack in dep["stacks"]:
            return dep.get("checksum") or dep["sha256"]
    raise LookupError(version)


def normalized(log: str) -> list[str]:
    """The log lines with durations fixed and the stub's own lines dropped."""
    lines = re.sub(r"Completed in \S+", "Completed in <d>", log).split("\n")
    return [line for line in lines if "cnbsim stub:" not in line and "Warning:" not in line]


def test_cpython_logs_like_the_real_one_in_the_pip_group(lc: Lifecycle) -> None:
    run = lc.build("cpython", PIP_GROUP_CPYTHON, JAMMY)
    layer = run.layers / "cpython"
    assert run.code == 0, run.stderr
    assert normalized(run.stdout) == [
        "Paketo Buildpack for CPython 1.11.0",
        "  Resolving CPython version",
        "    Candidate version sources (in priority order):",
        '                -> ""',
        '      <unknown> -> ""',
        "",
        "    Selected CPython version (using ): 3.10.13",
        "",
        "  Executing build process",
        "    Installing CPython 3.10.13",
        "      Completed in <d>",
        "",
        f"  Generating SBOM for {layer}",
        "      Completed in <d>",
        "",
        "",
        "  Configuring build environment",
        f'    PYTHONPATH          -> "{layer}"',
        '    PYTHONPYCACHEPREFIX -> "/tmp"',
        "",
        "  Configuring launch environment",
        f'    PYTHONPATH -> "{layer}"',
        "",
        ""]
    assert f"exposing the host's Python {host_version()} ({BASE_PYTHON})" in run.stdout


def test_cpython_layer_exposes_the_host_python_with_the_real_env_and_metadata(lc: Lifecycle) -> None:
    run = lc.build("cpython", PIP_GROUP_CPYTHON, JAMMY)
    layer = run.layers / "cpython"
    assert run.types("cpython") == {"build": True, "cache": True, "launch": True}
    assert run.metadata("cpython") == {
        "dependency-sha": checksum("cpython", "python", "3.10.13", "io.buildpacks.stacks.jammy"),
        "cnbsim": {"host-python": BASE_PYTHON, "selected-version": "3.10.13"}}
    assert run.env_files("cpython") == {"env.build/PYTHONPYCACHEPREFIX.default": "/tmp",
                                        "env/PYTHONPATH.default": str(layer)}
    assert os.readlink(layer / "bin" / "python") == "python3"
    out = subprocess.run([str(layer / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == subprocess.run([BASE_PYTHON, "-c", "import sys; print(sys.prefix)"],
                                 capture_output=True, text=True, check=True).stdout.strip()


def test_cpython_exec_d_sets_the_pycache_prefix_at_launch_unless_set(lc: Lifecycle) -> None:
    exec_d = lc.build("cpython", PIP_GROUP_CPYTHON).layers / "cpython" / "exec.d" / "0-env"
    assert os.access(exec_d, os.X_OK)

    def run(env: dict[str, str]) -> str:
        """What the exec.d program writes to fd 3 (the launcher's contract)."""
        return subprocess.run(["bash", "-c", '"$0" 3>&1 1>/dev/null', str(exec_d)], check=True, timeout=30,
                              env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True).stdout

    assert run({"HOME": "/home/cnb"}) == 'PYTHONPYCACHEPREFIX = "/home/cnb/.pycache"\n'
    assert run({"HOME": "/home/cnb", "PYTHONPYCACHEPREFIX": "/x"}) == ""


def test_cpython_layer_is_launch_only_in_the_no_package_manager_group(lc: Lifecycle) -> None:
    run = lc.build("cpython", [entry("cpython", launch=True)])
    assert run.types("cpython") == {"build": False, "cache": False, "launch": True}
    assert "Selected CPython version (using <unknown>): 3.10.13" in run.stdout


@pytest.mark.parametrize("entries, selected", [
    ([entry("cpython", build=True, version="", version_source=""),
      entry("cpython", build=True, version="3.9", version_source="Pipfile.lock")],
     "Selected CPython version (using Pipfile.lock): 3.9.18"),
    ([entry("cpython", build=True, version="^3.8", version_source="pyproject.toml"),
      entry("cpython", version="3.11.*", version_source="BP_CPYTHON_VERSION")],
     "Selected CPython version (using BP_CPYTHON_VERSION): 3.11.6"),
    ([entry("cpython", build=True, version="^3.8", version_source="pyproject.toml")],
     "Selected CPython version (using pyproject.toml): 3.12.0"),
])
def test_cpython_picks_the_highest_priority_source_and_highest_matching_version(
        lc: Lifecycle, entries: list, selected: str) -> None:
    run = lc.build("cpython", entries, JAMMY)
    assert selected in run.stdout


def test_cpython_candidates_table_pads_the_sources(lc: Lifecycle) -> None:
    run = lc.build("cpython", [entry("cpython", build=True, version="", version_source=""),
                               entry("cpython", build=True, version="^3.10", version_source="pyproject.toml"),
                               entry("cpython", launch=True)])
    assert ('    Candidate version sources (in priority order):\n'
            '      pyproject.toml -> "^3.10"\n'
            '                     -> ""\n'
            '      <unknown>      -> ""\n\n') in run.stdout


def test_cpython_fails_on_a_version_it_does_not_have_listing_the_stack_versions(lc: Lifecycle) -> None:
    run = lc.build("cpython", [entry("cpython", version="3.13", version_source="BP_CPYTHON_VERSION")], JAMMY)
    assert run.code == 1
    assert run.stderr == (
        'failed to satisfy "python" dependency version constraint "3.13": no compatible versions on '
        '"io.buildpacks.stacks.jammy" stack. Supported versions are: [3.8.17, 3.8.17, 3.8.18, 3.8.18, '
        "3.9.17, 3.9.17, 3.9.18, 3.9.18, 3.10.12, 3.10.12, 3.10.13, 3.10.13, 3.11.5, 3.11.5, 3.11.6, "
        "3.11.6, 3.12.0, 3.12.0]\n")


def test_cpython_reuses_its_layer_when_the_dependency_and_interpreter_are_the_same(lc: Lifecycle) -> None:
    first = lc.build("cpython", PIP_GROUP_CPYTHON)
    sentinel = first.layers / "cpython" / "sentinel"
    sentinel.write_text("kept while reused")
    again = lc.build("cpython", PIP_GROUP_CPYTHON)
    assert again.stdout.endswith(f"  Reusing cached layer {first.layers / 'cpython'}\n\n")
    assert "Executing build process" not in again.stdout and sentinel.exists()
    assert again.layer_toml("cpython") == first.layer_toml("cpython")
    other = lc.build("cpython", [entry("cpython", version="3.11", version_source="BP_CPYTHON_VERSION")])
    assert "Executing build process" in other.stdout and not sentinel.exists()


def test_cpython_falls_back_to_python3_on_path_and_says_so(lc: Lifecycle) -> None:
    run = lc.build("cpython", PIP_GROUP_CPYTHON, {"CNBSIM_BASE_PYTHON": None, "CNBSIM_PYTHON": None})
    assert run.code == 0, run.stderr
    assert "cnbsim stub: CNBSIM_BASE_PYTHON is not set: exposing" in run.stdout
    assert os.path.exists(run.layers / "cpython" / "bin" / "python")


def test_pip_logs_resolution_install_and_both_env_tables(lc: Lifecycle) -> None:
    run = lc.build("pip", [entry("pip", build=True)])
    pip, source = run.layers / "pip", run.layers / "pip-source"
    site = f"{pip}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"
    assert normalized(run.stdout) == [
        "Paketo Buildpack for Pip 0.20.0",
        "  Resolving Pip version",
        "    Candidate version sources (in priority order):",
        '      <unknown> -> ""',
        "",
        "    Selected Pip version (using <unknown>): 23.3.1",
        "",
        "  Executing build process",
        "    Installing Pip 23.3.1",
        "      Completed in <d>",
        "",
        f"  Generating SBOM for {pip}",
        "      Completed in <d>",
        "",
        "  Configuring build environment",
        f'    PIP_FIND_LINKS -> "$PIP_FIND_LINKS {source}"',
        "",
        "  Configuring build environment",
        f'    PYTHONPATH -> "{site}:$PYTHONPATH"',
        "",
        "  Configuring launch environment",
        f'    PYTHONPATH -> "{site}:$PYTHONPATH"',
        "",
        ""]
    assert run.types("pip") == {"build": True, "cache": True, "launch": False}
    assert run.types("pip-source") == {"build": True, "cache": True, "launch": False}
    assert run.metadata("pip") == {"dependency_checksum": checksum("pip", "pip", "23.3.1", "*")}
    assert run.metadata("pip-source") == {}
    assert run.env_files("pip") == {"env/PYTHONPATH.prepend": site, "env/PYTHONPATH.delim": ":"}
    assert run.env_files("pip-source") == {"env.build/PIP_FIND_LINKS.append": str(source),
                                           "env.build/PIP_FIND_LINKS.delim": " "}


def test_pip_reuse_prints_two_lines_and_no_blank_line(lc: Lifecycle) -> None:
    first = lc.build("pip", [entry("pip", build=True)])
    again = lc.build("pip", [entry("pip", build=True)])
    assert again.stdout.endswith(f"  Reusing cached layer {first.layers / 'pip'}\n"
                                 f"  Reusing cached layer {first.layers / 'pip-source'}\n")
    assert lc.build("pip", [entry("pip", build=True), entry("pip", version="23.3.0", version_source="BP_PIP_VERSION")]
                    ).stdout.count("Installing Pip 23.3.0") == 1


def test_pip_shim_runs_the_pip_of_the_python_on_path(lc: Lifecycle) -> None:
    cpython = lc.build("cpython", PIP_GROUP_CPYTHON)
    pip = lc.build("pip", [entry("pip", build=True)]).layers / "pip" / "bin" / "pip"
    env = {"PATH": f"{cpython.layers / 'cpython' / 'bin'}:{os.environ['PATH']}"}
    out = subprocess.run([str(pip), "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("pip ")


def test_pipenv_resolves_its_version_and_reuses_without_blank_line(lc: Lifecycle) -> None:
    entries = [entry("pipenv", build=True, version="", version_source="")]
    run = lc.build("pipenv", entries)
    assert '       -> ""' in run.stdout and "Selected Pipenv version (using ): 2023.10.24" in run.stdout
    assert run.types("pipenv") == {"build": True, "cache": True, "launch": False}
    assert run.metadata("pipenv") == {"dependency_checksum": checksum("pipenv", "pipenv", "2023.10.24", "*")}
    assert set(run.env_files("pipenv")) == {"env/PYTHONPATH.prepend", "env/PYTHONPATH.delim"}
    assert os.access(run.layers / "pipenv" / "bin" / "pipenv", os.X_OK)
    again = lc.build("pipenv", entries)
    assert again.stdout.endswith(f"  Reusing cached layer {run.layers / 'pipenv'}\n")


def test_miniconda_makes_a_build_layer_with_a_bare_sha256_and_python(lc: Lifecycle) -> None:
    run = lc.build("miniconda", [entry("conda", build=True)])
    layer = run.layers / "conda"
    assert normalized(run.stdout) == [
        "Paketo Buildpack for Miniconda 0.9.0", "  Executing build process", "    Installing Miniconda 23.10.0",
        "      Completed in <d>", "", f"  Generating SBOM for {layer}", "      Completed in <d>", "", ""]
    assert run.types("conda") == {"build": True, "cache": True, "launch": False}
    assert run.metadata("conda") == {"dependency-sha": checksum("miniconda", "miniconda3", "23.10.0", "*")}
    assert re.fullmatch(r"[0-9a-f]{64}", run.metadata("conda")["dependency-sha"])
    assert subprocess.run([str(layer / "bin" / "python"), "-c", "pass"], timeout=60).returncode == 0
    assert run.env_files("conda") == {}
    again = lc.build("miniconda", [entry("conda", build=True)])
    assert again.stdout.endswith(f"  Reusing cached layer {layer}\n\n")


def test_poetry_resolves_with_the_pip_priority_quirk_and_merges_types(lc: Lifecycle) -> None:
    entries = [entry("poetry", build=True), entry("poetry", launch=True),
               entry("poetry", version="1.6.1", version_source="BP_POETRY_VERSION")]
    run = lc.build("poetry", entries)
    # upstream's priority list names BP_PIP_VERSION, so plan order decides: the first entry
    assert "Selected Poetry version (using <unknown>): 1.7.1" in run.stdout
    assert run.types("poetry") == {"build": True, "cache": True, "launch": True}
    assert run.metadata("poetry") == {"dependency-checksum": checksum("poetry", "poetry", "1.7.1", "*")}
    assert set(run.env_files("poetry")) == {"env/PYTHONPATH.prepend", "env/PYTHONPATH.delim"}
    again = lc.build("poetry", entries)
    assert again.stdout.endswith(f"  Reusing cached layer {run.layers / 'poetry'}\n\n")


def test_a_plan_written_as_inline_tables_reads_the_same(lc: Lifecycle) -> None:
    """tomli-w writes short plans as inline tables, the lifecycle as [[entries]] tables."""
    inline = ('entries = [\n    { name = "cpython", metadata = { build = true, version = "3.9", '
              'version-source = "Pipfile" } },\n    { name = "cpython", metadata = { launch = true } },\n]\n')
    tables = ('[[entries]]\n  name = "cpython"\n  [entries.metadata]\n    build = true\n    version = "3.9"\n'
              '    version-source = "Pipfile"\n\n[[entries]]\n  name = "cpython"\n  [entries.metadata]\n'
              '    launch = true\n')
    one, two = (Lifecycle(lc.root / n) for n in ("inline", "tables"))
    a, b = one.build("cpython", inline), two.build("cpython", tables)
    assert "(using Pipfile): 3.9.18" in a.stdout and a.types("cpython") == b.types("cpython") == {
        "build": True, "cache": True, "launch": True}


def test_pip_real_mode_takes_its_wheel_from_the_dependency_cache_without_downloading(lc: Lifecycle, tmp_path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    with zipfile.ZipFile(deps / "pip-23.3.1-py3-none-any.whl", "w") as whl:
        whl.writestr("pip/__init__.py", "")
    # no index to download from: pip would fail, so the wheel can only come from the cache
    env = {"CNBSIM_INSTALLER": "real", "CNBSIM_DEPS_DIR": str(deps), "PIP_INDEX_URL": "http://127.0.0.1:9/",
           "PIP_RETRIES": "0", "PIP_TIMEOUT": "1"}
    run = lc.build("pip", [entry("pip", build=True)], env)
    assert run.code == 0, run.stderr
    assert f"the pip 23.3.1 wheel from the dependency cache {deps}" in run.stdout
    assert "downloading" not in run.stdout
    assert (run.layers / "pip-source" / "pip-23.3.1-py3-none-any.whl").read_bytes() == \
        (deps / "pip-23.3.1-py3-none-any.whl").read_bytes()


def test_pip_real_mode_drops_a_damaged_wheel_from_the_dependency_cache(lc: Lifecycle, tmp_path) -> None:
    deps = tmp_path / "deps"
    deps.mkdir()
    (deps / "pip-23.3.1-py3-none-any.whl").write_bytes(b"PK\x03\x04 cut short")
    env = {"CNBSIM_INSTALLER": "real", "CNBSIM_DEPS_DIR": str(deps), "PIP_INDEX_URL": "http://127.0.0.1:9/",
           "PIP_RETRIES": "0", "PIP_TIMEOUT": "1"}
    run = lc.build("pip", [entry("pip", build=True)], env)
    assert run.code == 0, run.stderr
    assert "pip-23.3.1-py3-none-any.whl is not a valid wheel: removed, downloading it again" in run.stdout
    assert not list(deps.iterdir())
    assert not list((run.layers / "pip-source").glob("*.whl"))     # no index here: a warning, the bundled pip
    assert "Warning: no pip-23.3.1 wheel" in run.stdout
