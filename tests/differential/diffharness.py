"""Run one generated case through a lifecycle command and collect everything a user can observe.

Both sides get the same case in their own root and the same phase command line
(`<cmd> lifecycle detector|builder|launcher`, flags as /cnb/lifecycle/* takes them); the
observations are parsed (TOML and JSON as data, plan entries as a set, paths relative to the
root) so that only behaviour is compared, never formatting.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffcase import Case, Launch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
ORACLE_ENV = "CNB_LIFECYCLE_ORACLE"
ORACLE_NAME = "lifecycle-as-cnbsim"
TIMEOUT = 60
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Temporary plan files: the lifecycle's <tmp>/plan.NNN/plan.toml and <tmp>/<id>-NNN/<id>/plan.toml,
# cnbsim's own temp names; only the part a buildpack may rely on (the file name, its parent) is kept.
TMP_PLAN = re.compile(r"<ROOT>/tmp/[^/\s]+/((?:[^/\s]+/)?plan\.toml)")
ORACLE_PROCESS = re.compile(r"/tmp/cnb-process-[^/\s]+/")
SKIP_TOP = {"group.toml", "plan.toml", "analyzed.toml"}


@dataclass(frozen=True)
class Side:
    """A lifecycle implementation behind the `cnbsim lifecycle ...` command line."""

    name: str
    argv: tuple[str, ...]


def find_oracle() -> tuple[Path | None, str]:
    """The real lifecycle's drop-in command, or None and why it is not there."""
    given = os.environ.get(ORACLE_ENV)
    candidates = [Path(given)] if given else [
        REPO.parent / "shared" / "lifecycle-oracle", REPO.parent.parent / "shared" / "lifecycle-oracle"]
    for c in candidates:
        exe = c / ORACLE_NAME if c.is_dir() else c
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe, ""
    where = " or ".join(str(c) for c in candidates)
    return None, (f"the real lifecycle ({ORACLE_NAME}) is not at {where}; set {ORACLE_ENV} to its "
                  "directory to run the differential suite")


def cnbsim_side() -> Side:
    exe = Path(sys.executable).parent / "cnbsim"
    return Side("cnbsim", (str(exe),) if exe.exists() else (sys.executable, "-m", "cnbsim.cli"))


def materialize(case: Case, root: Path) -> None:
    for rel, (text, exe) in case.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if exe:
            path.chmod(0o755)
    for d in ("layers", "record", "tmp", "home", "platform"):
        (root / d).mkdir(exist_ok=True)


class _Norm:
    def __init__(self, root: Path) -> None:
        self.root = str(root)

    def text(self, s: str) -> str:
        s = ANSI.sub("", s).replace(self.root, "<ROOT>")
        return TMP_PLAN.sub(r"<TMP>/\1", s)

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                              errors="replace")
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, -999, str(exc.stdout or ""), f"timeout after {TIMEOUT}s")


def _base_env(root: Path, case: Case) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(root / "home"), "TMPDIR": str(root / "tmp"),
            "LANG": "C.UTF-8", "CNB_PLATFORM_API": case.platform_api, "HOSTNAME": "diffhost",
            "NO_COLOR": "1"}


def _parse_file(path: Path) -> Any:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"binary": len(raw)}
    try:
        if path.suffix in (".toml", ".plan"):
            return {"toml": tomllib.loads(text)}
        if path.suffix == ".json":
            return {"json": json.loads(text)}
    except (tomllib.TOMLDecodeError, ValueError):
        pass
    return {"text": text}


def tree(top: Path, norm: _Norm, skip_top: set[str] = frozenset()) -> dict[str, Any]:
    """Every entry under `top`: dirs, links, files (TOML/JSON parsed, executable bit)."""
    out: dict[str, Any] = {}
    if not top.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        rel_dir = here.relative_to(top)
        for name in sorted(dirnames):
            p = here / name
            rel = str(rel_dir / name)
            out[rel] = {"link": norm.text(os.readlink(p))} if p.is_symlink() else "dir"
        for name in sorted(filenames):
            if rel_dir == Path(".") and name in skip_top:
                continue
            p = here / name
            rel = str(rel_dir / name)
            if p.is_symlink():
                out[rel] = {"link": norm.text(os.readlink(p))}
                continue
            entry = norm.data(_parse_file(p))
            if os.access(p, os.X_OK):
                entry["exe"] = True
            out[rel] = entry
    return out


def _plan_set(data: Any) -> Any:
    """plan.toml entries as a set: the lifecycle writes them in Go map order (so a buildpack plan,
    which follows plan.toml's order, has its entries in that order too)."""
    if not isinstance(data, dict) or "toml" not in data:
        return data
    entries = data["toml"].get("entries", [])
    rest = {k: v for k, v in data["toml"].items() if k != "entries"}
    return {"entries": sorted(json.dumps(e, sort_keys=True) for e in entries), **rest}


def _records(root: Path, norm: _Norm, phase: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rec = root / "record"
    for p in sorted(rec.glob(f"*.{phase}.*")):
        kind = p.name.rsplit(".", 1)[1]
        key = p.name[: -len(f".{phase}.{kind}")]
        item = out.setdefault(key, {})
        raw = p.read_text(encoding="utf-8", errors="replace")
        if kind == "env":
            pairs = (e.partition("=") for e in raw.split("\0") if e)
            item["env"] = {k: norm.text(v) for k, _, v in pairs if k not in ("_", "SHLVL", "PWD", "OLDPWD")}
        elif kind == "args":
            item["args"] = [norm.text(a) for a in raw.split("\0")[:-1]]
        elif kind == "runs":
            item["runs"] = raw.count("run")
        elif kind == "plan":
            item["plan"] = _plan_set(norm.data(_parse_file(p)))
    return out


def _launch_copy(layers: Path, dest: Path) -> None:
    """The layers an exported image holds: launch = true layer dirs, config (lc phase/exporter.go)."""
    shutil.copytree(layers, dest, symlinks=True)
    for bp in dest.iterdir():
        if not bp.is_dir() or bp.name in ("config", "sbom"):
            continue
        for d in bp.iterdir():
            if not d.is_dir() or d.is_symlink():
                continue
            launch = False
            toml = bp / f"{d.name}.toml"
            try:
                launch = bool(tomllib.loads(toml.read_text()).get("types", {}).get("launch", False))
            except (OSError, tomllib.TOMLDecodeError, AttributeError):
                pass
            if not launch:
                shutil.rmtree(d)


def _process_types(layers: Path) -> list[str]:
    try:
        md = tomllib.loads((layers / "config" / "metadata.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return []
    return sorted(p.get("type", "") for p in md.get("processes", []))


def observe(case: Case, side: Side, root: Path) -> dict[str, Any]:
    """Run detect, build and each launch of `case` with `side` in `root`; return what it did."""
    materialize(case, root)
    norm = _Norm(root)
    env = _base_env(root, case)
    layers = root / "layers"
    flags = ["-app", str(root / "app"), "-buildpacks", str(root / "buildpacks"), "-group",
             str(layers / "group.toml"), "-plan", str(layers / "plan.toml"), "-layers", str(layers),
             "-platform", str(root / "platform"), "-log-level", "debug"]
    obs: dict[str, Any] = {}
    det = _run([*side.argv, "lifecycle", "detector", *flags, "-order", str(root / "order.toml")], env, root)
    obs["detect.exit"] = det.returncode
    obs["detect.log"] = norm.text(det.stdout + det.stderr)
    obs["detect.group"] = norm.data(_parse_file(layers / "group.toml")) if (layers / "group.toml").exists() else None
    obs["detect.plan"] = _plan_set(norm.data(_parse_file(layers / "plan.toml"))) \
        if (layers / "plan.toml").exists() else None
    obs["detect.runs"] = _records(root, norm, "detect")
    if det.returncode != 0:
        return obs
    bld = _run([*side.argv, "lifecycle", "builder", *flags], env, root)
    obs["build.exit"] = bld.returncode
    obs["build.log"] = norm.text(bld.stdout + bld.stderr)
    obs["build.layers"] = tree(layers, norm, SKIP_TOP)
    obs["build.runs"] = _records(root, norm, "build")
    if bld.returncode != 0:
        return obs
    for i, launch in enumerate(case.launches):
        obs[f"launch{i}"] = _launch(launch, side, root, layers, norm, env, i)
    return obs


def _launch(launch: Launch, side: Side, root: Path, layers: Path, norm: _Norm, base: dict[str, str],
            i: int) -> dict[str, Any]:
    known = _process_types(layers)
    process = launch.process
    if process and process.startswith("@"):
        process = known[int(process[1:]) % len(known)] if known else "web"
    if process and process not in known:
        # In an image /cnb/process/<type> exists only for the image's types; through the oracle's
        # symlink the lifecycle would act as /cnb/lifecycle/launcher. cnbsim names the missing type.
        return {"skipped": f"known difference: no process type {process!r} in this build"}
    copy = root / f"image{i}" / "layers"
    _launch_copy(layers, copy)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/cnb/process:/cnb/lifecycle", "HOME": base["HOME"],
           "CNB_LAYERS_DIR": str(copy), "CNB_APP_DIR": str(root / "app"),
           "CNB_PLATFORM_API": base["CNB_PLATFORM_API"], "CNB_DEPRECATION_MODE": "quiet", "NO_COLOR": "1",
           **launch.env}
    argv = [*side.argv, "lifecycle", "launcher"]
    if process:
        argv += ["--process", process]
    done = _run([*argv, *launch.args], env, root / "app")
    return {"exit": done.returncode, "stdout": _argv0(norm.text(done.stdout), side),
            "stderr": _pipeline_errors(_argv0(norm.text(done.stderr), side))}


NOT_FOUND = re.compile(r": line \d+: [^:\n]+: command not found$")


def _pipeline_errors(text: str) -> str:
    """bash starts a pipeline's commands side by side: when several are not found (a PATH without
    them), their "command not found" lines come in any order. Each run of such lines, sorted."""
    lines, out = text.split("\n"), []
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and NOT_FOUND.search(lines[j]):
            j += 1
        if j > i:
            out += sorted(lines[i:j])
            i = j
        else:
            out.append(lines[i])
            i += 1
    return "\n".join(out)


def _argv0(text: str, side: Side) -> str:
    """The oracle runs the launcher from its own dir (or a temp symlink named after the process type);
    in an image, as cnbsim names it, that is /cnb/lifecycle/launcher (or /cnb/process/<type>)."""
    launcher = str(Path(side.argv[0]).parent / "bin" / "launcher")
    return ORACLE_PROCESS.sub("/cnb/process/", text.replace(launcher, "/cnb/lifecycle/launcher"))


@dataclass(frozen=True)
class Difference:
    """One observable that differs: its class (`build.layers`, `launch0.stdout`, ...), where, both values."""

    cls: str
    where: str
    cnbsim: Any
    lifecycle: Any

    def __str__(self) -> str:
        return f"[{self.cls}] {self.where}:\n    cnbsim:    {_short(self.cnbsim)}\n    lifecycle: {_short(self.lifecycle)}"


def _short(value: Any, limit: int = 1500) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


HINT = re.compile(r" \([^()]*\)$")


def _launch_text(text: str) -> str:
    """cnbsim's errors end with a hint in parentheses; the lifecycle's message is the part before it."""
    return "\n".join(HINT.sub("", line) if line.startswith("ERROR: ") else line for line in text.split("\n"))


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> list[Difference]:
    """Every observable that differs, logs excepted (their wording and timing lines are not behaviour)."""
    diffs: list[Difference] = []
    for key in sorted(set(ours) | set(theirs)):
        if key.endswith(".log"):
            continue
        a, b = ours.get(key), theirs.get(key)
        if key.startswith("launch") and isinstance(a, dict) and isinstance(b, dict):
            for part in ("exit", "stdout", "stderr"):
                x, y = a.get(part), b.get(part)
                if part != "exit":
                    x, y = _launch_text(x or ""), _launch_text(y or "")
                if x != y:
                    diffs.append(Difference(f"{key[:6]}.{part}", key, x, y))
            continue
        _diff(key, key, a, b, diffs)
    return diffs


def _diff(cls: str, where: str, a: Any, b: Any, out: list[Difference]) -> None:
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict) and cls in ("build.layers", "detect.runs", "build.runs"):
        for k in sorted(set(a) | set(b)):
            _diff(cls, f"{where}/{k}", a.get(k), b.get(k), out)
        return
    out.append(Difference(cls, where, a, b))


def differences(case: Case, oracle: Path, work: Path) -> tuple[list[Difference], dict[str, Any], dict[str, Any]]:
    """Run `case` through cnbsim and through the real lifecycle; what differs, and both observations."""
    ours = observe(case, cnbsim_side(), work / "cnbsim")
    theirs = observe(case, Side("lifecycle", (str(oracle),)), work / "lifecycle")
    return compare(ours, theirs), ours, theirs
