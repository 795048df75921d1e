"""bin/build of the package-manager stubs in stub mode (pip-install, pipenv-install,
conda-env-update, poetry-install; paketo-buildpacks/<name> build.go) and of the process
stubs (python-start, poetry-run; §3.8, 3.11): nothing is installed, what would be is
recorded, and the layers, env files and reuse follow the real buildpacks."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

from stubrun import BASE_PYTHON, Lifecycle, entry, launch_env

XY = f"{sys.version_info[0]}.{sys.version_info[1]}"
SITE_PACKAGES = [entry("site-packages", launch=True)]


def markers(site: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(site.iterdir())}


def test_pip_install_records_requirements_without_installing_them(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "Flask==3.1.3  # web\ngunicorn==22.0.0 \\\n  --hash=sha256:00\n"
                                 "--index-url https://example.org/simple\n-r more/extra.txt\n")
    lc.write("more/extra.txt", "requests[socks]>=2 ; python_version > '3'\n-e ./local\n")
    run = lc.build("pip-install", SITE_PACKAGES)
    packages = run.layers / "packages"
    site = packages / "lib" / f"python{XY}" / "site-packages"
    assert run.code == 0, run.stderr
    assert (f"    Running 'pip install --exists-action=w --cache-dir={run.layers / 'cache'} --compile --user "
            "--disable-pip-version-check --requirement=requirements.txt'\n") in run.stdout
    requirements = ["Flask==3.1.3", "gunicorn==22.0.0", "requests[socks]>=2 ; python_version > '3'", "-e ./local"]
    assert markers(site) == {"flask.cnbsim-stub": "Flask==3.1.3\n", "gunicorn.cnbsim-stub": "gunicorn==22.0.0\n",
                             "local-1.cnbsim-stub": "-e ./local\n",
                             "requests.cnbsim-stub": "requests[socks]>=2 ; python_version > '3'\n"}
    meta = run.metadata("packages")["cnbsim"]
    assert (meta["installer"], meta["requirements"]) == ("stub", requirements)
    assert re.fullmatch(r"[0-9a-f]{64}", meta["inputs-sha256"])


def test_pip_install_layers_env_and_log_tables(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "flask\n")
    run = lc.build("pip-install", SITE_PACKAGES)
    site = f"{run.layers}/packages/lib/python{XY}/site-packages"
    assert run.types("packages") == {"build": False, "cache": True, "launch": True}
    # no requirements-hash key of the real buildpack's: only the stub's own table
    assert set(run.metadata("packages")) == {"cnbsim"}
    assert run.types("cache") == {"build": False, "cache": True, "launch": False}
    assert run.env_files("packages") == {"env/PYTHONPATH.prepend": site, "env/PYTHONPATH.delim": ":"}
    assert (f'  Configuring build environment\n    PYTHONPATH -> "{site}:$PYTHONPATH"\n\n'
            f'  Configuring launch environment\n    PYTHONPATH -> "{site}:$PYTHONPATH"\n\n') in run.stdout
    assert f"  Generating SBOM for {run.layers}/packages\n      Completed in 0s\n\n" in run.stdout


def test_pip_install_with_a_vendor_dir_runs_offline_and_leaves_no_cache(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "flask\n")
    lc.write("wheels/.keep", "")
    run = lc.build("pip-install", SITE_PACKAGES, {"BP_PIP_DEST_PATH": "wheels",
                                                  "BP_PIP_REQUIREMENT": "requirements.txt requirements.txt"})
    assert ("Running 'pip install --ignore-installed --exists-action=w --no-index --compile --user "
            "--disable-pip-version-check --requirement=requirements.txt --requirement=requirements.txt'") in run.stdout
    assert run.layer_names() == {"packages"}


def test_pip_install_reads_utf16_requirements_with_bom_and_crlf(lc: Lifecycle) -> None:
    (lc.app / "requirements.txt").write_bytes("flask==2.0.2\r\nloguru\r\n".encode("utf-16"))
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.metadata("packages")["cnbsim"]["requirements"] == ["flask==2.0.2", "loguru"]


def test_pip_install_keeps_its_layer_while_the_requirements_are_unchanged(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "flask\n")
    first = lc.build("pip-install", SITE_PACKAGES)
    sentinel = first.layers / "packages" / "sentinel"
    sentinel.write_text("x")
    again = lc.build("pip-install", SITE_PACKAGES)
    sha = first.metadata("packages")["cnbsim"]["inputs-sha256"]
    assert f"cnbsim stub: the requirements are unchanged (inputs sha256 {sha[:12]})" in again.stdout
    assert sentinel.exists() and again.layer_toml("packages") == first.layer_toml("packages")
    lc.write("requirements.txt", "flask\nloguru\n")
    changed = lc.build("pip-install", SITE_PACKAGES)
    assert not sentinel.exists()
    assert changed.metadata("packages")["cnbsim"]["requirements"] == ["flask", "loguru"]
    assert changed.metadata("packages")["cnbsim"]["inputs-sha256"] != sha


def test_pip_install_rebuilds_its_layer_for_another_interpreter(lc: Lifecycle, tmp_path: Path) -> None:
    lc.write("requirements.txt", "flask\n")
    first = lc.build("pip-install", SITE_PACKAGES)
    assert first.metadata("packages")["cnbsim"]["host-python"] == BASE_PYTHON
    sentinel = first.layers / "packages" / "sentinel"
    sentinel.write_text("x")
    other = tmp_path / "other-python" / Path(BASE_PYTHON).name
    other.parent.mkdir()
    other.symlink_to(BASE_PYTHON)
    again = lc.build("pip-install", SITE_PACKAGES, env={"CNBSIM_BASE_PYTHON": str(other)})
    assert again.code == 0, again.stderr
    assert not sentinel.exists()
    meta, first_meta = again.metadata("packages")["cnbsim"], first.metadata("packages")["cnbsim"]
    assert meta["host-python"] == str(other)
    # the checksum is of the inputs alone: the same on every host
    assert meta["inputs-sha256"] == first_meta["inputs-sha256"]


def test_pip_install_fails_on_a_missing_included_file(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "-r nope.txt\n")
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 1 and f"requirements file not found: {lc.app}/nope.txt" in run.stderr


def test_pip_install_refuses_a_5_mb_requirement_line_naming_the_file(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "flask\n" + "x" * 5_000_000 + "\n")
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 1
    assert "a line of requirements.txt is 5000000 characters long" in run.stderr


def test_pip_install_stops_at_once_on_a_2m_line_requirements_file_naming_it(lc: Lifecycle) -> None:
    # 46 MB: bounded reading (the stub reads at most 8 MiB + 1 byte of a file), one error
    (lc.app / "requirements.txt").write_text("".join(f"pkg{i}==1.0.{i}\n" for i in range(2_000_000)))
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 1
    assert "requirements.txt is larger than 8 MiB" in run.stderr and "check that file" in run.stderr
    assert not (run.layers / "packages").exists()


def test_pip_install_bounds_the_lines_of_a_file_and_the_requirements_in_all(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "#\n" * 199_999 + "flask\n")
    assert lc.build("pip-install", SITE_PACKAGES).code == 0           # 200,000 lines: read
    lc.write("requirements.txt", "#\n" * 200_001)
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 1 and "requirements.txt has more than 200000 lines" in run.stderr
    # 20,001 requirements over an include: the file that goes past the bound is named
    lc.write("requirements.txt", "".join(f"a{i}\n" for i in range(15_000)) + "-r more.txt\n")
    lc.write("more.txt", "".join(f"b{i}\n" for i in range(5_001)))
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 1
    assert "more.txt brings the requirements to more than 20000" in run.stderr


def test_pip_install_bounds_hold_for_crlf_continuations_nuls_and_a_missing_last_newline(lc: Lifecycle) -> None:
    # each used to pass a bound or take minutes: CRs and continuations were stripped over the whole text
    # (quadratic), lines were counted after joining, NUL bytes were not counted, a last line without
    # a newline was not counted
    lc.write("requirements.txt", "# x\r\n" * 180_000 + "".join(f"p{i}==1.0\r\n" for i in range(20_000)))
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 0, run.stderr
    reqs = run.metadata("packages")["cnbsim"]["requirements"]
    assert len(reqs) == 20_000 and reqs[-1] == "p19999==1.0"
    lc.write("requirements.txt", "flask\n" + "\r" * 1_000_000)
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 1 and "a line of requirements.txt is 1000000 characters long" in run.stderr
    lc.write("requirements.txt", "fla\\\n" * 200_001 + "sk\n")
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 1 and "has more than 200000 lines" in run.stderr
    lc.write("requirements.txt", "#\n" * 200_000 + "flask")
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 1 and "has more than 200000 lines" in run.stderr
    (lc.app / "requirements.txt").write_bytes(b"flask\n" + b"\0" * (9 << 20))
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 1 and "requirements.txt is larger than 8 MiB" in run.stderr


def test_pip_install_joins_continuation_lines_as_pip_does(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "fla\\\r\nsk==3.1 \\\n  --hash=sha256:abc\n# a comment \\\ngunicorn\nreq\\")
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 0, run.stderr
    assert run.metadata("packages")["cnbsim"]["requirements"] == ["flask==3.1", "gunicorn", "req"]


def test_pip_install_records_a_requirement_whose_name_is_longer_than_a_file_name(lc: Lifecycle) -> None:
    long_name = "a" * 300
    lc.write("requirements.txt", f"{long_name}==1.0\nflask\n")
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 0, run.stderr
    assert run.metadata("packages")["cnbsim"]["requirements"] == [f"{long_name}==1.0", "flask"]
    site = next((run.layers / "packages").glob("lib/python*/site-packages"))
    assert f"{long_name}==1.0\n" in [m.read_text() for m in site.glob("*.cnbsim-stub")]


def test_pip_install_names_an_include_cycle(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "-r ./requirements.txt\nflask\n")
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 0, run.stderr          # ./requirements.txt is the same file: read once, as pip
    lc.write("requirements.txt", "-r sub/../requirements.txt\nflask\n")
    (lc.app / "sub").mkdir()
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 1 and "requirements files include each other more than 50 deep" in run.stderr


def test_pip_install_reads_a_utf8_bom_and_a_large_file(lc: Lifecycle) -> None:
    names = [f"pkg{i}==1.0" for i in range(20_000)]
    (lc.app / "requirements.txt").write_bytes(b"\xef\xbb\xbf" + "\n".join(names).encode())
    run = lc.build("pip-install", SITE_PACKAGES)
    assert run.code == 0, run.stderr
    assert run.metadata("packages")["cnbsim"]["requirements"] == names


def test_pip_install_rejects_an_unknown_installer(lc: Lifecycle) -> None:
    lc.write("requirements.txt", "flask\n")
    run = lc.build("pip-install", SITE_PACKAGES, {"CNBSIM_INSTALLER": "conda"})
    assert run.code == 1 and "CNBSIM_INSTALLER must be 'stub' or 'real', not 'conda'" in run.stderr


PIPFILE = '[packages]\nflask = "==2.0.2"\ngunicorn = "*"\n\n[requires]\npython_version = "3.10"\n'
PIPFILE_LOCK = """{
    "_meta": {"requires": {"python_version": "3.10"}, "sources": []},
    "default": {
        "flask": {"hashes": [], "version": "==2.0.2"},
        "click": {"hashes": [], "markers": "python_version >= '3.7'", "version": "==8.1.7"}
    },
    "develop": {"pytest": {"version": "==8.0.0"}}
}
"""


def test_pipenv_install_makes_a_named_virtualenv_and_records_the_lock(lc: Lifecycle) -> None:
    lc.write("Pipfile", PIPFILE)
    lc.write("Pipfile.lock", PIPFILE_LOCK)
    run = lc.build("pipenv-install", SITE_PACKAGES)
    packages = run.layers / "packages"
    venvs = [p for p in packages.iterdir() if (p / "pyvenv.cfg").exists()]
    # named as pipenv names it for the lifecycle's /workspace, wherever the app is
    assert [v.name for v in venvs] == ["workspace-dqq3IVyd"]
    assert "    Running 'pipenv install --deploy'\n" in run.stdout
    assert "    Running 'pipenv clean'\n" in run.stdout
    assert run.env_files("packages") == {
        "env/PATH.prepend": f"{venvs[0]}/bin", "env/PATH.delim": ":",
        "env/PYTHONPATH.prepend": f"{packages}/lib/python{XY}/site-packages", "env/PYTHONPATH.delim": ":"}
    assert run.metadata("packages")["cnbsim"]["requirements"] == [
        "flask==2.0.2", "click==8.1.7 ; python_version >= '3.7'"]
    assert run.types("packages") == {"build": False, "cache": True, "launch": True}
    assert run.types("cache") == {"build": False, "cache": True, "launch": False}


def test_pipenv_install_without_lock_skips_the_lock_and_reads_the_pipfile(lc: Lifecycle) -> None:
    lc.write("Pipfile", PIPFILE)
    run = lc.build("pipenv-install", SITE_PACKAGES)
    assert "Running 'pipenv install --skip-lock'" in run.stdout and "pipenv clean" not in run.stdout
    assert run.metadata("packages")["cnbsim"]["requirements"] == ["flask==2.0.2", "gunicorn"]
    again = lc.build("pipenv-install", SITE_PACKAGES)
    assert "Pipfile and Pipfile.lock are unchanged" in again.stdout


ENVIRONMENT_YML = """name: sample
channels:
  - conda-forge
dependencies:
  - python=3.9   # the runtime
  - flask=2.0
  - "Werkzeug==2.2.2"
  - conda-forge::numpy>=1.20
  - pip
  - pip:
    - -r requirements.txt
    - loguru
"""


def test_conda_env_update_records_conda_and_pip_packages(lc: Lifecycle) -> None:
    lc.write("environment.yml", ENVIRONMENT_YML)
    run = lc.build("conda-env-update", [entry("conda-environment", launch=True)])
    env = run.layers / "conda-env"
    cache = run.layers / "conda-env-cache"
    assert run.code == 0, run.stderr
    assert (f"    Running 'CONDA_PKGS_DIRS={cache} conda env update --prefix {env} --file "
            f"{lc.app}/environment.yml'\n") in run.stdout
    assert f"    Running 'conda clean --packages --tarballs'\n    Removing {env}/conda-meta/history\n" in run.stdout
    meta = run.metadata("conda-env")
    assert meta["lockfile-sha"] == ""
    assert meta["cnbsim"]["requirements"] == ["flask==2.0.*", "Werkzeug==2.2.2", "numpy>=1.20",
                                              "-r requirements.txt", "loguru"]
    # python-start needs it at launch only: the real buildpack does not cache it then
    assert run.types("conda-env") == {"build": False, "cache": False, "launch": True}
    assert run.types("conda-env-cache") == {"build": False, "cache": True, "launch": False}
    assert run.env_files("conda-env") == {}
    assert (env / "bin" / "python").exists()


def test_conda_env_update_reuses_by_lockfile_sha_like_the_real_one(lc: Lifecycle) -> None:
    lc.write("environment.yml", ENVIRONMENT_YML)
    text = "# platform: linux-64\n@EXPLICIT\nhttps://conda.example/flask-2.0.2.tar.bz2\n"
    lc.write("package-list.txt", text)
    first = lc.build("conda-env-update", [entry("conda-environment", launch=True)])
    assert first.metadata("conda-env")["lockfile-sha"] == hashlib.sha256(text.encode()).hexdigest()
    assert f"--file {lc.app}/package-list.txt --prefix {first.layers}/conda-env --yes --quiet'" in first.stdout
    (first.layers / "conda-env").rename(first.layers / "gone")  # cache = false: only the metadata comes back
    again = lc.build("conda-env-update", [entry("conda-environment", launch=True)])
    assert again.stdout.endswith(f"  Reusing cached layer {first.layers}/conda-env\n\n")
    assert again.metadata("conda-env")["lockfile-sha"] == first.metadata("conda-env")["lockfile-sha"]


def test_poetry_install_makes_poetrys_virtualenv_and_env(lc: Lifecycle) -> None:
    lc.write("pyproject.toml", '[tool.poetry]\nname = "Default_App"\n\n[tool.poetry.dependencies]\n'
                               'python = "^3.10"\nflask = "^2.0.3"\ngunicorn = "~20.1"\nrich = "13.7.0"\n'
                               'dev-only = { version = "*", optional = true }\n')
    run = lc.build("poetry-install", [entry("poetry-venv", launch=True)])
    root = run.layers / "poetry-venv"
    venvs = [p for p in root.iterdir() if (p / "pyvenv.cfg").exists()]
    assert [v.name for v in venvs] == [f"default-app-xS3fZVNL-py{XY}"]
    assert (f"    Running 'POETRY_CACHE_DIR={run.layers}/cache POETRY_VIRTUALENVS_PATH={root} "
            "poetry install'\n") in run.stdout
    assert run.env_files("poetry-venv") == {
        "env/POETRY_VIRTUALENVS_PATH.default": str(root),
        "env/PYTHONPATH.prepend": f"{venvs[0]}/lib/python{XY}/site-packages", "env/PYTHONPATH.delim": ":",
        "env/PATH.prepend": f"{venvs[0]}/bin", "env/PATH.delim": ":"}
    assert run.metadata("poetry-venv")["cnbsim"]["requirements"] == [
        "flask>=2.0.3,<3", "gunicorn>=20.1,<20.2", "rich==13.7.0"]
    assert run.types("poetry-venv") == {"build": False, "cache": True, "launch": True}


def test_poetry_install_prefers_the_locks_main_group(lc: Lifecycle) -> None:
    lc.write("pyproject.toml", '[tool.poetry]\nname = "x"\n[tool.poetry.dependencies]\npython = "^3.10"\n')
    lc.write("poetry.lock", '[[package]]\nname = "flask"\nversion = "3.1.3"\ncategory = "main"\n\n'
                            '[[package]]\nname = "pytest"\nversion = "8.0.0"\ncategory = "dev"\n\n'
                            '[[package]]\nname = "click"\nversion = "8.1.7"\ngroups = ["main"]\n'
                            'markers = "python_version >= \\"3.7\\""\n')
    run = lc.build("poetry-install", [entry("poetry-venv", launch=True)])
    assert run.metadata("poetry-venv")["cnbsim"]["requirements"] == [
        "flask==3.1.3", 'click==8.1.7 ; python_version >= "3.7"']


def test_python_start_assigns_the_default_web_process(lc: Lifecycle) -> None:
    run = lc.build("python-start")
    assert run.stdout == ("Paketo Buildpack for Python Start 0.14.15\n  Assigning launch processes:\n"
                          "    web (default): python\n\n")
    assert run.launch() == {"processes": [{"type": "web", "command": "python", "direct": True, "default": True}]}
    assert run.layer_names() == set()


def test_poetry_run_runs_the_one_script_or_the_run_target(lc: Lifecycle) -> None:
    lc.write("pyproject.toml", '[tool.poetry.scripts]\nmy-script = "default_app.server:run"\n')
    run = lc.build("poetry-run")
    assert "    web (default): poetry run my-script\n" in run.stdout
    assert run.launch() == {"processes": [{"type": "web", "command": "poetry", "args": ["run", "my-script"],
                                           "direct": True, "default": True}]}
    target = lc.build("poetry-run", env={"BP_POETRY_RUN_TARGET": "python -m  app"})
    assert target.launch()["processes"][0]["args"] == ["run", "python", "-m", "", "app"]


def test_poetry_run_with_live_reload_defaults_to_reload_web(lc: Lifecycle) -> None:
    lc.write("pyproject.toml", '[tool.poetry.scripts]\nserve = "app:main"\n')
    run = lc.build("poetry-run", env={"BP_LIVE_RELOAD_ENABLED": "true"})
    assert ("    reload-web (default): watchexec --restart --watch "
            f"{lc.app} --shell none -- poetry run serve\n"
            "    web:                  poetry run serve\n") in run.stdout
    reload_web, web = run.launch()["processes"]
    assert reload_web == {"type": "reload-web", "command": "watchexec", "direct": True, "default": True,
                          "args": ["--restart", "--watch", str(lc.app), "--shell", "none", "--",
                                   "poetry", "run", "serve"]}
    assert web == {"type": "web", "command": "poetry", "args": ["run", "serve"], "direct": True}


def test_the_poetry_run_process_runs_the_script_at_launch(lc: Lifecycle) -> None:
    lc.write("pyproject.toml", '[tool.poetry]\nname = "default_app"\n\n[tool.poetry.dependencies]\n'
                               'python = "^3.10"\n\n[tool.poetry.scripts]\nmy-script = "default_app.server:run"\n')
    lc.write("default_app/__init__.py", "")
    lc.write("default_app/server.py", "import sys\n\ndef run():\n    print('served by', sys.prefix.rsplit('/', 1)[-1])\n")
    runs = []
    for stub, entries in [("cpython", [entry("cpython", build=True), entry("cpython", launch=True)]),
                          ("pip", [entry("pip", build=True)]),
                          ("poetry", [entry("poetry", build=True), entry("poetry", launch=True)]),
                          ("poetry-install", [entry("poetry-venv", launch=True)]), ("poetry-run", [])]:
        run = lc.build(stub, entries)
        assert run.code == 0, run.stderr
        lc.with_layers_env(run)
        runs.append(run)
    process = runs[-1].launch()["processes"][0]
    out = subprocess.run([process["command"], *process["args"]], cwd=lc.app, env=launch_env(runs),
                         capture_output=True, text=True, timeout=60)
    venv = next(p for p in (runs[3].layers / "poetry-venv").iterdir() if p.is_dir() and p.name != "env")
    assert out.stdout == f"served by {venv.name}\n", out.stderr
