"""Project files the pipenv-install and poetry-install stubs read in Python (lock files).

Run as `python -I stubtool.py COMMAND ARG...` by lib/python.sh (standard library only; on
Python < 3.11 `tomli` is used when importable). Output is plain lines on stdout; an error
is one line on stderr and exit status 1, the way the real buildpacks fail.

Commands:
  pipenv-plan APP           the virtualenv name pipenv gives the project, then pip
                            requirements for Pipfile.lock's default packages (or Pipfile's)
  poetry-plan APP X.Y       the virtualenv name poetry gives the project, then pip
                            requirements for poetry.lock's main packages (or pyproject's)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    try:
        import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]


class StubError(Exception):
    """A message for the user, printed as the buildpack's error."""


def read_toml(path: Path) -> dict[str, Any]:
    if tomllib is None:
        raise StubError("reading TOML needs Python 3.11+ or the tomli package (set CNBSIM_PYTHON)")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise StubError(f"{path.name}: {exc}") from None


def pipenv_requirements(app: Path) -> list[str]:
    """Pinned `default` packages of Pipfile.lock, else the Pipfile's [packages]."""
    lock = app / "Pipfile.lock"
    if lock.exists():
        default = json.loads(lock.read_text(encoding="utf-8")).get("default") or {}
        return [_pipenv_requirement(name, spec) for name, spec in default.items()]
    packages = read_toml(app / "Pipfile").get("packages") or {}
    return [_pipenv_requirement(name, spec) for name, spec in packages.items()]


def _pipenv_requirement(name: str, spec: Any) -> str:
    if isinstance(spec, str):
        return name if spec in ("", "*") else f"{name}{spec}"
    extras = f"[{','.join(spec['extras'])}]" if spec.get("extras") else ""
    if spec.get("path"):
        return str(Path(spec["path"]))
    if spec.get("git"):
        ref = f"@{spec['ref']}" if spec.get("ref") else ""
        return f"{name}{extras} @ git+{spec['git']}{ref}"
    version = spec.get("version", "")
    req = f"{name}{extras}{'' if version in ('', '*') else version}"
    return f"{req} ; {spec['markers']}" if spec.get("markers") else req


def poetry_requirements(app: Path) -> list[str]:
    """poetry.lock's packages of the main group, else pyproject's dependencies."""
    lock = app / "poetry.lock"
    if lock.exists():
        out = []
        for pkg in read_toml(lock).get("package") or []:
            groups = pkg.get("groups")
            category = pkg.get("category")
            if (groups is not None and "main" not in groups) or (category is not None and category != "main"):
                continue
            req = f"{pkg['name']}=={pkg['version']}"
            markers = pkg.get("markers")
            out.append(f"{req} ; {markers}" if isinstance(markers, str) and markers else req)
        return out
    data = read_toml(app / "pyproject.toml")
    out = list((data.get("project") or {}).get("dependencies") or [])
    deps = ((data.get("tool") or {}).get("poetry") or {}).get("dependencies") or {}
    for name, spec in deps.items():
        if name.lower() == "python":
            continue
        req = _poetry_requirement(name, spec, app)
        if req:
            out.append(req)
    return out


def _poetry_requirement(name: str, spec: Any, app: Path) -> str:
    if isinstance(spec, list):  # multiple-constraint dependency: the first one
        spec = spec[0] if spec else "*"
    if isinstance(spec, str):
        return f"{name}{poetry_constraint(spec)}"
    if spec.get("optional"):
        return ""
    extras = f"[{','.join(spec['extras'])}]" if spec.get("extras") else ""
    if spec.get("path"):
        return str((app / spec["path"]).resolve())
    if spec.get("git"):
        ref = spec.get("rev") or spec.get("tag") or spec.get("branch")
        return f"{name}{extras} @ git+{spec['git']}{'@' + ref if ref else ''}"
    if spec.get("url"):
        return f"{name}{extras} @ {spec['url']}"
    req = f"{name}{extras}{poetry_constraint(spec.get('version', '*'))}"
    return f"{req} ; {spec['markers']}" if spec.get("markers") else req


def poetry_constraint(spec: str) -> str:
    """Poetry's constraint syntax (^, ~, bare versions, wildcards) as a PEP 440 specifier."""
    spec = spec.strip()
    if spec in ("", "*") or "||" in spec:
        return ""  # pip cannot express "or": any version
    return ",".join(_poetry_single(part.strip()) for part in re.split(r"\s*,\s*|\s+(?=[<>=!~^])", spec)
                    if part.strip())


def _poetry_single(part: str) -> str:
    match = re.fullmatch(r"(\^|~(?!=)|)\s*v?(\d+(?:\.\d+)*)(\.\*)?", part)
    if not match:
        return part.replace(" ", "")  # already PEP 440 (>=, <, ==, !=, ~=)
    op, version, star = match.groups()
    if star:
        return f"=={version}.*"
    nums = [int(n) for n in version.split(".")]
    if op == "":
        return f"=={version}"
    if op == "^":
        first = next((i for i, n in enumerate(nums) if n != 0), len(nums) - 1)
        upper = nums[: first + 1]
        upper[-1] += 1
    else:  # ~: the minor when given, else the major
        upper = nums[:2] if len(nums) > 1 else nums[:1]
        upper[-1] += 1
    return f">={version},<{'.'.join(map(str, upper))}"


# The lifecycle runs every build in /workspace; the venv names derive from that path, not
# from where cnbsim keeps the app, so that the layers do not depend on the host.
APP_DIR = Path("/workspace")


def _path_hash(text: str, size: int) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()[:size]).decode()


def pipenv_venv_name() -> str:
    """pipenv: the project dir's name and a hash of the Pipfile's path (workspace-dqq3IVyd,
    as pipenv's virtualenv_name() makes it)."""
    return f"{APP_DIR.name}-{_path_hash(str(APP_DIR / 'Pipfile'), 6)}"


def poetry_venv_name(app: Path, python_xy: str) -> str:
    """poetry: the normalized project name, a hash of the project dir and the Python version."""
    data = read_toml(app / "pyproject.toml")
    name = ((data.get("tool") or {}).get("poetry") or {}).get("name") \
        or (data.get("project") or {}).get("name") or "virtualenv"
    name = re.sub(r"[-_.]+", "-", name).lower()
    name = re.sub(r'[ $`!*@"\\\r\n\t]', "_", name)[:42]
    return f"{name}-{_path_hash(str(APP_DIR), 32)[:8]}-py{python_xy}"


COMMANDS = {
    "pipenv-plan": lambda a: [pipenv_venv_name(), *pipenv_requirements(Path(a[0]))],
    "poetry-plan": lambda a: [poetry_venv_name(Path(a[0]), a[1]), *poetry_requirements(Path(a[0]))],
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: stubtool.py {{{','.join(COMMANDS)}}} ARG...", file=sys.stderr)
        return 2
    try:
        lines = COMMANDS[argv[0]](argv[1:])
    except StubError as exc:
        print(exc, file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"{argv[0]}: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        if line:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
