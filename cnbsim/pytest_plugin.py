"""pytest plugin (entry point `pytest11`): build, run and compare CNB builds in tests.

Fixtures: `cnb_build`, `cnb_detect`, `cnb_run`, `cnb_start`, `cnb_shell`, `assert_matches_golden`. Options:
`--cnb-update-golden` rewrites golden files instead of comparing; `--cnb-registry` runs
tests marked `registry`. Markers: `bwrap` (skipped without a working bubblewrap),
`registry` (skipped unless `--cnb-registry`). Builds run in `tmp_path`, so the fixtures
are safe under pytest-xdist.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

GOLDEN_OUTPUT_LINES = 10   # of a failed buildpack's output, in its golden


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnbsim", "cnbsim: Cloud Native Buildpacks builds in tests")
    group.addoption("--cnb-update-golden", action="store_true", default=False,
                    help="rewrite golden files from the current results instead of comparing")
    group.addoption("--cnb-registry", action="store_true", default=False,
                    help="run tests marked 'registry' (they need the Python package registry)")
    parser.addini("cnb_golden_dir", "directory of golden files, relative to the rootdir",
                  default="fixtures/golden")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bwrap: needs a working bubblewrap (bwrap); skipped otherwise")
    config.addinivalue_line("markers", "registry: needs the Python package registry; run with --cnb-registry")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("registry") and not config.getoption("--cnb-registry"):
            item.add_marker(pytest.mark.skip(reason="needs the package registry: run with --cnb-registry"))
        if item.get_closest_marker("bwrap"):
            from cnbsim.sandbox import available
            reason = available()
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"sandbox tests skipped: {reason}"))


@pytest.fixture
def cnb_build(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """`cnb_build(app, builder=None, buildpacks=None, env=None, installer="stub", clear_cache=False, **options)
    -> BuildResult`: each call builds into its own output with its own cache; `result.rebuild(**changes)`
    builds again with both."""
    import cnbsim

    def build(app: Path | str, builder: Path | str | None = None, buildpacks: Sequence[Path | str] | None = None,
              env: Mapping[str, str] | None = None, installer: str = "stub", output: Path | None = None,
              cache_dir: Path | None = None, clear_cache: bool = False, **options: Any) -> cnbsim.BuildResult:
        out = output or tmp_path_factory.mktemp("cnb-build") / Path(app).name
        cache = cache_dir or tmp_path_factory.mktemp("cnb-cache")
        return cnbsim.build(app, builder=builder, buildpacks=buildpacks, output=out, cache_dir=cache,
                            clear_cache=clear_cache,
                            options=cnbsim.BuildOptions(env=dict(env or {}), installer=installer, **options))
    return build


@pytest.fixture
def cnb_detect() -> Callable[..., Any]:
    """`cnb_detect(app, builder=None, buildpacks=None, env=None) -> DetectResult` (raises DetectFailed)."""
    import cnbsim

    def detect(app: Path | str, builder: Path | str | None = None, buildpacks: Sequence[Path | str] | None = None,
               env: Mapping[str, str] | None = None, **options: Any) -> cnbsim.DetectResult:
        return cnbsim.detect(app, builder=builder, buildpacks=buildpacks,
                             options=cnbsim.BuildOptions(env=dict(env or {}), **options))
    return detect


@dataclass(frozen=True)
class RunResult:
    """What `cnb_run` observed: the exit code, the output, and the PlanQK result if one was printed."""

    exit_code: int
    stdout: str
    stderr: str
    found: bool
    result: Any


@pytest.fixture
def cnb_run() -> Callable[..., RunResult]:
    """`cnb_run(result_or_output, data=None, params=None, process=None, env=None, args=(), sandbox="auto",
    inputs=None, network="bridge")`: as `cnbsim run` (a container of the image when bubblewrap works
    here); `inputs` ({name: JSON value}) mounts every input in PlanQK's v2 layout."""
    from cnbsim.output import BuiltOutput
    from cnbsim.runner import RunRequest, start

    def run(built: Any, data: Any = None, params: Any = None, process: str | None = None,
            env: Mapping[str, str] | None = None, args: Sequence[str] = (), sandbox: str = "auto",
            timeout: float = 120, inputs: Mapping[str, Any] | None = None, network: str = "bridge") -> RunResult:
        output = BuiltOutput.open(getattr(built, "output", built))
        job = start(RunRequest(output, process, tuple(args), dict(env or {}), data, params, sandbox,
                               inputs=dict(inputs or {}), network=network),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = job.process.communicate(timeout=timeout)
            stdout = out.decode("utf-8", errors="replace")
            found, value = job.result(stdout)     # the v2 output file, else the result block
        finally:
            if job.process.poll() is None:
                job.process.kill()
            job.close()
        return RunResult(job.process.returncode, stdout, err.decode("utf-8", errors="replace"), found, value)
    return run


@pytest.fixture
def cnb_start() -> Callable[..., contextlib.AbstractContextManager[Any]]:
    """`with cnb_start(result, process=None, env=None, port=None, timeout=30, args=(), sandbox="auto",
    network="bridge") as app:` starts a process through the launcher as `cnbsim run` does (a container of
    the image), publishes `port` on 127.0.0.1 at a free host port (as `docker run -p 127.0.0.1::PORT`),
    and waits until the process listens on it. `app.url` (`http://127.0.0.1:HOSTPORT`),
    `app.address_for_port(port)`, `app.logs()` (output so far), `app.stdout`, `app.stderr`,
    `app.exit_code`, `app.stop()`; on leaving the block the whole process tree is stopped."""
    from cnbsim.output import BuiltOutput
    from cnbsim.runner import Running, RunRequest, free_port, start

    @contextlib.contextmanager
    def started(built: Any, process: str | None = None, env: Mapping[str, str] | None = None,
                port: int | None = None, timeout: float = 30, args: Sequence[str] = (), sandbox: str = "auto",
                network: str = "bridge") -> Iterator[Running]:
        output = BuiltOutput.open(getattr(built, "output", built))
        publish = ((free_port(), port),) if port is not None else ()
        job = start(RunRequest(output, process, tuple(args), dict(env or {}), sandbox=sandbox, network=network,
                               publish=publish), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        running = Running(job)
        try:
            running.wait_listening(timeout)
            yield running
        finally:
            running.stop()
    return started


@pytest.fixture
def cnb_shell() -> Callable[..., RunResult]:
    """`cnb_shell(result, "command", env=None, timeout=120, sandbox="auto", network="bridge") -> RunResult`:
    the command runs through the launcher as a user-provided command, in bash with the launch env
    (`docker run --entrypoint launcher IMAGE "command"`; libcnb-test's `run_shell_command`)."""
    from cnbsim.output import BuiltOutput
    from cnbsim.runner import RunRequest, start

    def shell(built: Any, command: str, env: Mapping[str, str] | None = None, timeout: float = 120,
              sandbox: str = "auto", network: str = "bridge") -> RunResult:
        output = BuiltOutput.open(getattr(built, "output", built))
        job = start(RunRequest(output, None, (command,), dict(env or {}), sandbox=sandbox, network=network,
                               user_command=True), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = job.process.communicate(timeout=timeout)
        finally:
            job.close()
        return RunResult(job.process.returncode, out.decode("utf-8", errors="replace"),
                         err.decode("utf-8", errors="replace"), False, None)
    return shell


def golden_view(subject: Any) -> dict[str, Any]:
    """What a golden file holds, the same on every host: the report as `report.comparable` gives it, or the
    failure (exit code, message, each group's reasons, the failing buildpack and the last lines of its output)
    with the host interpreter as placeholders."""
    from cnbsim.errors import BuildError, CnbsimError
    from cnbsim.report import HostPython, comparable
    if isinstance(subject, CnbsimError):
        from cnbsim.phase.detect import DetectFailed
        failure: dict[str, Any] = {"exit_code": subject.exit_code, "error": type(subject).__name__,
                                   "message": subject.message}
        if isinstance(subject, DetectFailed):
            failure["groups"] = [g.explain() for g in subject.groups]
        if isinstance(subject, BuildError) and subject.buildpack:
            failure["buildpack"] = subject.buildpack
            failure["output_tail"] = subject.image_output.rstrip("\n").splitlines()[-GOLDEN_OUTPUT_LINES:]
        return {"failure": HostPython.current().neutral_value(failure)}
    report = getattr(subject, "report", subject)
    return comparable(report)


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def describe_changes(expected: Any, actual: Any, path: str = "") -> list[str]:
    """One line per changed value, addressed like `buildpacks[2].layers[0].types.launch`."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{sub}: removed (was {json.dumps(expected[key])[:80]})")
            elif key not in expected:
                out.append(f"{sub}: added {json.dumps(actual[key])[:80]}")
            else:
                out.extend(describe_changes(expected[key], actual[key], sub))
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        out = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            out.extend(describe_changes(e, a, f"{path}[{i}]"))
        return out
    if expected != actual:
        return [f"{path or '(root)'}: {json.dumps(expected)[:120]} -> {json.dumps(actual)[:120]}"]
    return []


IGNORED = "<ignored>"
_PATH_PART = re.compile(r"\.?([^.\[\]]+)|\[(\*|\d+)\]")


def _parse_pattern(pattern: str) -> list[str | int | None]:
    """`buildpacks[*].layers[0].digest` as steps: a key (`*` any key), an index, or None (any index)."""
    steps: list[str | int | None] = []
    pos = 0
    while pos < len(pattern):
        match = _PATH_PART.match(pattern, pos)
        if not match or (pos == 0 and pattern.startswith(".")):
            raise ValueError(f"ignore pattern {pattern!r}: cannot read it at {pattern[pos:]!r} (write fields "
                             "as in the golden file: buildpacks[*].layers[0].digest, metadata.*)")
        key, index = match.groups()
        steps.append(key if key is not None else (None if index == "*" else int(index)))
        pos = match.end()
    if not steps:
        raise ValueError("ignore pattern '': give a field path, e.g. buildpacks[*].layers[*].digest")
    return steps


def ignore_fields(value: Any, patterns: Sequence[str]) -> tuple[Any, list[str]]:
    """`value` with every field a pattern names replaced by `<ignored>`, and the patterns that named nothing."""
    unmatched = []

    def walk(node: Any, steps: list[str | int | None]) -> tuple[Any, bool]:
        step, rest = steps[0], steps[1:]
        if isinstance(step, str) and isinstance(node, dict):
            keys = list(node) if step == "*" else [step] if step in node else []
        elif not isinstance(step, str) and isinstance(node, list):
            keys = list(range(len(node))) if step is None else [step] if -len(node) <= step < len(node) else []
        else:
            return node, False
        node = dict(node) if isinstance(node, dict) else list(node)
        hit = False
        for key in keys:
            if rest:
                node[key], found = walk(node[key], rest)
            else:
                node[key], found = IGNORED, True
            hit = hit or found
        return node, hit

    for pattern in patterns:
        value, hit = walk(value, _parse_pattern(pattern))
        if not hit:
            unmatched.append(pattern)
    return value, unmatched


@pytest.fixture
def assert_matches_golden(request: pytest.FixtureRequest) -> Callable[..., None]:
    """`assert_matches_golden(result_or_error, name, ignore=[...])`: compare with `<golden dir>/<name>.json`;
    the fields `ignore` names (`buildpacks[*].layers[*].digest`, `metadata.*`) read `<ignored>` on both sides."""
    import difflib
    config = request.config
    golden_dir = Path(config.rootpath) / config.getini("cnb_golden_dir")

    def check(subject: Any, name: str, ignore: Sequence[str] = ()) -> None:
        path = golden_dir / f"{name}.json"
        if isinstance(ignore, str):
            ignore = [ignore]
        try:
            actual, unmatched = ignore_fields(golden_view(subject), ignore)
        except ValueError as exc:
            pytest.fail(str(exc), pytrace=False)
        if unmatched:
            pytest.fail(f"ignore pattern(s) {', '.join(map(repr, unmatched))} name no field of the build "
                        f"'{name}' (see the field paths in {path.name} or the failure's change list)", pytrace=False)
        if config.getoption("--cnb-update-golden"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_dumps(actual), encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(f"no golden file {path}; create it with: pytest --cnb-update-golden", pytrace=False)
        expected = ignore_fields(json.loads(path.read_text(encoding="utf-8")), ignore)[0]
        if expected == actual:
            return
        changes = describe_changes(expected, actual)
        diff = "".join(difflib.unified_diff(_dumps(expected).splitlines(True), _dumps(actual).splitlines(True),
                                            fromfile=f"golden/{name}.json", tofile="actual", n=2))
        pytest.fail(f"build of '{name}' differs from {path}:\n  " + "\n  ".join(changes[:40])
                    + f"\n\n{diff}\nIf the change is intended, rewrite the golden file: pytest --cnb-update-golden",
                    pytrace=False)
    return check
