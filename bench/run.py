"""cnbsim benchmarks: how fast cnbsim is, against the limit and against itself.

Run with `make bench` (or `.venv/bin/python bench/run.py [--quick] [--only NAME ...]`). Every
figure is the median of several runs after a warm-up, measured on this machine; the table is
printed and written as JSON to bench/results/latest.json. Nothing here is a test: no time is
asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cnbsim  # noqa: E402
from cnbsim import proc  # noqa: E402
from cnbsim.log import Logger  # noqa: E402

APPS = REPO / "fixtures" / "apps"
PIP_APP = APPS / "planqk-pip"
RESULTS = REPO / "bench" / "results"


def median_time(fn: Callable[[], object], runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


class Bench:
    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.rows: list[dict] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="cnbsim-bench-"))

    def add(self, name: str, seconds: float, note: str = "", **extra: object) -> None:
        row = {"name": name, "seconds": round(seconds, 5), "note": note, **extra}
        self.rows.append(row)
        print(f"  {name:<58} {seconds * 1000:10.1f} ms  {note}", flush=True)

    def ratio(self, name: str, value: float, target: str) -> None:
        self.rows.append({"name": name, "ratio": round(value, 3), "note": f"target {target}"})
        print(f"  {name:<58} {value:10.2f} x   (target {target})", flush=True)

    def out(self, name: str) -> Path:
        return self.tmp / "out" / name


def api_build(app: Path, out: Path, **kw: object) -> cnbsim.BuildResult:
    return cnbsim.build(app, output=out, log=Logger(stream=None), **kw)


def bench_end_to_end(b: Bench) -> None:
    print("End-to-end (stub mode, embedded PlanQK builder)")
    api = median_time(lambda: api_build(PIP_APP, b.out("api")), b.runs)
    b.add("API cnbsim.build(planqk-pip)", api)
    cli_cmd = [sys.executable, "-m", "cnbsim.cli", "build", str(PIP_APP), "-o", str(b.out("cli")),
               "--cache-dir", str(b.tmp / "cli-cache")]
    cli = median_time(lambda: subprocess.run(cli_cmd, check=True, capture_output=True), b.runs)
    b.add("CLI cnbsim build planqk-pip (new process)", cli)
    startup = median_time(lambda: subprocess.run([sys.executable, "-c", "import cnbsim.cli"], check=True), b.runs)
    b.add("  interpreter start-up + import cnbsim.cli", startup)
    for app in sorted(p for p in APPS.iterdir() if p.is_dir()):
        try:
            api_build(app, b.out(f"probe-{app.name}"))
        except cnbsim.CnbsimError as exc:
            fail = median_time(lambda app=app: _expect_fail(app, b.out(f"f-{app.name}")), b.runs)
            b.add(f"API build {app.name}", fail, f"fails as expected (exit {exc.exit_code})")
            continue
        b.add(f"API build {app.name}", median_time(lambda app=app: api_build(app, b.out(f"e-{app.name}")), b.runs))
    b.api_pip = api  # type: ignore[attr-defined]
    b.cli_pip = cli  # type: ignore[attr-defined]
    b.startup = startup  # type: ignore[attr-defined]


def _expect_fail(app: Path, out: Path) -> None:
    try:
        api_build(app, out)
    except cnbsim.CnbsimError:
        return


def bench_against_limit(b: Bench) -> None:
    """The same bin/detect and bin/build runs, with the same argv/env/cwd, straight from a loop."""
    print("Against the limit: the buildpack executables alone")
    api = getattr(b, "api_pip", None) or median_time(lambda: api_build(PIP_APP, b.out("api2")), b.runs)
    direct = _direct(b, "planqk-pip", PIP_APP)
    b.ratio("API / direct (planqk-pip, embedded builder)", api / direct, "<= 1.3x")
    cli = getattr(b, "cli_pip", None)
    if cli:
        b.ratio("(CLI - interpreter start-up) / direct", (cli - getattr(b, "startup", 0.0)) / direct, "<= 1.3x")
    # a three-buildpack group of small shell buildpacks (the core's own figure)
    root = b.tmp / "three-bps"
    _write_bp(root, "ex-python", 'printf \'[[provides]]\\nname = "python"\\n\' > "$2"',
              'mkdir -p "$1/python/env"; printf \'[types]\\nbuild = true\\nlaunch = true\\n\' > "$1/python.toml"; '
              'printf /opt/py > "$1/python/env/PYTHONPATH"')
    _write_bp(root, "ex-deps", 'printf \'[[requires]]\\nname = "python"\\n[[provides]]\\nname = "deps"\\n\' > "$2"',
              'echo "PYTHONPATH=$PYTHONPATH"')
    _write_bp(root, "ex-start", 'printf \'[[requires]]\\nname = "deps"\\n\' > "$2"',
              'printf \'[[processes]]\\ntype = "web"\\ncommand = ["python"]\\ndefault = true\\n\' > "$1/launch.toml"')
    app = b.tmp / "three-app"
    app.mkdir()
    bps = [root / n / "1" for n in ("ex-python", "ex-deps", "ex-start")]
    three = median_time(lambda: api_build(app, b.out("three"), buildpacks=bps), b.runs)
    b.add("API build, three-buildpack group (3 detect + 3 build)", three)
    b.ratio("API / direct (three-buildpack group)", three / _direct(b, "three-buildpack", app, buildpacks=bps), "<= 1.3x")


def _direct(b: Bench, label: str, app: Path, **kw: object) -> float:
    """Record the executables one build runs (argv, env, cwd, plan file), then time replaying them."""
    calls: list[tuple[list[str], dict[str, str], Path, str]] = []
    real_run = proc.run

    def recording(argv, *, env, cwd, timeout, on_line=None):
        calls.append((list(argv), dict(env), Path(cwd), Path(argv[-1]).read_text()))
        return real_run(argv, env=env, cwd=cwd, timeout=timeout, on_line=on_line)

    proc.run = recording
    try:
        api_build(app, b.out(f"record-{label}"), **kw)
    finally:
        proc.run = real_run
    out = b.out(f"record-{label}")

    def replay() -> None:
        shutil.rmtree(out / "layers", ignore_errors=True)
        (out / "layers").mkdir(parents=True)
        for argv, env, cwd, plan in calls:
            if argv[0].endswith("/build"):
                Path(argv[1]).mkdir(parents=True, exist_ok=True)
            Path(argv[-1]).parent.mkdir(parents=True, exist_ok=True)
            Path(argv[-1]).write_text(plan)
            subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    direct = median_time(replay, b.runs)
    b.add(f"direct: the {len(calls)} bin/detect + bin/build runs of {label}", direct)
    return direct


def _write_bp(root: Path, bp_id: str, body_detect: str, body_build: str = "exit 0") -> None:
    d = root / bp_id / "1"
    (d / "bin").mkdir(parents=True)
    (d / "buildpack.toml").write_text(f'api = "0.10"\n[buildpack]\nid = "{bp_id}"\nversion = "1"\n')
    for name, body in (("detect", body_detect), ("build", body_build)):
        (d / "bin" / name).write_text(f"#!/bin/sh\n{body}\n")
        (d / "bin" / name).chmod(0o755)


def bench_scale(b: Bench, quick: bool) -> None:
    print("Scale")
    from cnbsim.buildpacks import BuildpackStore
    from cnbsim.model.order import GroupElement, OrderGroup
    from cnbsim.phase.detect import detect as detect_phase
    from cnbsim.platform import Platform
    root = b.tmp / "scale-bps"
    groups = []
    for g in range(50):
        elements = []
        for e in range(5):
            bp_id = f"g{g}-bp{e}"
            last_fails = g < 49 and e == 4
            _write_bp(root, bp_id, "exit 100" if last_fails else "exit 0")
            elements.append(GroupElement(bp_id, "1"))
        groups.append(OrderGroup(tuple(elements)))
    app = b.tmp / "scale-app"
    app.mkdir()
    store = BuildpackStore()
    store.add_layout_dir(root)
    platform_dir = b.tmp / "scale-platform"
    (platform_dir / "env").mkdir(parents=True)

    def detect_all() -> None:
        detect_phase(tuple(groups), store, Platform(app_dir=app, platform_dir=platform_dir,
                                                    layers_dir=b.tmp / "scale-layers"), Logger(stream=None))
    b.add("detect: order of 50 groups x 5 buildpacks (250 bin/detect)", median_time(detect_all, max(3, b.runs // 2)))

    files, size_mb = (2000, 40) if quick else (10000, 200)
    bp_root = b.tmp / "big-bp"
    per_file = size_mb * 1024 * 1024 // files
    _write_bp(bp_root, "big", "exit 0", textwrap.dedent(f"""\
        mkdir -p "$CNB_LAYERS_DIR/big"
        printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/big.toml"
        python3 - "$CNB_LAYERS_DIR/big" <<'PY'
        import os, sys
        block = os.urandom({per_file})
        for i in range({files}):
            d = os.path.join(sys.argv[1], "d%03d" % (i // 100))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "f%05d" % i), "wb") as fh:
                fh.write(block[i % 97:] + block[:i % 97])
        PY"""))
    start = time.perf_counter()
    result = api_build(app, b.out("big"), buildpacks=[bp_root / "big" / "1"])
    total = time.perf_counter() - start
    from cnbsim.fs import tree_digest
    layer = result.layer("big", "big").path
    digest_t = median_time(lambda: tree_digest(layer), 3)
    tar_t = median_time(lambda: subprocess.run(f"tar -cf - -C {layer} . | sha256sum", shell=True, check=True,
                                               capture_output=True), 3)
    b.add(f"build with a {files}-file / {size_mb} MB layer (writing it included)", total)
    b.add("report digest of that layer, per MB", digest_t / size_mb, f"{digest_t:.2f}s total")
    b.add("tar | sha256sum of that layer, per MB", tar_t / size_mb, f"{tar_t:.2f}s total; "
          f"report/tar = {digest_t / tar_t:.2f}x")
    try:
        from cnbsim.phase.export import export_oci
        exp_t = median_time(lambda: export_oci(result.output, b.tmp / "big-oci", compress=False), 3)
        b.add("export (uncompressed OCI layout), per MB", exp_t / size_mb,
              f"{exp_t:.2f}s total; export/tar = {exp_t / tar_t:.2f}x")
    except ImportError:
        b.add("export", 0.0, "cnbsim.export not available")

    n = 20 if quick else 100
    test = b.tmp / "xdist" / "test_many.py"
    test.parent.mkdir()
    test.write_text(textwrap.dedent(f"""\
        import pytest
        @pytest.mark.parametrize("i", range({n}))
        def test_build(i, cnb_build):
            assert cnb_build({str(PIP_APP)!r}).process("web")
        """))
    xdist = median_time(lambda: subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider",
                                                str(test)], check=True, capture_output=True, cwd=test.parent), 1, 0)
    b.add(f"pytest -n 2: {n} fixture builds", xdist, f"{xdist / n * 1000:.0f} ms per build on 2 cores")


def _wheelhouse(tmp: Path) -> Path:
    """A tiny pure-Python wheel, written by hand, so the real-mode bench needs no network."""
    wh = tmp / "wheelhouse"
    wh.mkdir(exist_ok=True)
    name = "cnbsim_bench_dep"
    whl = wh / f"{name}-1.0-py3-none-any.whl"
    dist = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        z.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")
    return wh


def bench_rebuild(b: Bench) -> None:
    print("Rebuild, real mode (virtualenv + pip from a local wheelhouse)")
    app = b.tmp / "real-app"
    shutil.copytree(PIP_APP, app)
    (app / "requirements.txt").write_text("cnbsim_bench_dep==1.0\n")
    wh = _wheelhouse(b.tmp)
    out, cache = b.out("real"), b.tmp / "real-cache"
    opts = dict(options=cnbsim.BuildOptions(installer="real", wheelhouse=wh), cache_dir=cache)

    def cold() -> None:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
        api_build(app, out, **opts)
    cold_t = median_time(cold, 3)
    warm_t = median_time(lambda: api_build(app, out, **opts), 3)
    b.add("real mode: cold build of planqk-pip", cold_t)
    b.add("real mode: rebuild, requirements unchanged", warm_t)
    b.ratio("real mode: rebuild / cold", warm_t / cold_t, "<= 0.10x")


def bench_namespace(b: Bench) -> None:
    """The build namespace's cost: the CLI stub build of planqk-pip with and without it, the runs
    interleaved (A, B, A, B, ...) so that a noisy machine weighs on both alike."""
    print("Build namespace (CLI stub build of planqk-pip; cache warm, previous output in place)")
    from cnbsim import sandbox
    if sandbox.available():
        print(f"  skipped: {sandbox.available()}")
        return
    def cmd(mode: str) -> list[str]:
        return [sys.executable, "-m", "cnbsim.cli", "build", str(PIP_APP), "-o", str(b.out(f"ns-{mode}")),
                "--cache-dir", str(b.tmp / f"ns-cache-{mode}"), "--sandbox", mode]
    samples: dict[str, list[float]] = {"auto": [], "never": []}
    cpu: dict[str, list[float]] = {"auto": [], "never": []}
    for mode in samples:                     # warm-up: caches and the staged run-root dirs exist
        subprocess.run(cmd(mode), check=True, capture_output=True)
    for _ in range(b.runs):
        for mode in samples:
            before = os.times()
            start = time.perf_counter()
            subprocess.run(cmd(mode), check=True, capture_output=True)
            samples[mode].append(time.perf_counter() - start)
            after = os.times()
            cpu[mode].append(after.children_user + after.children_system
                             - before.children_user - before.children_system)
    with_ns, without = statistics.median(samples["auto"]), statistics.median(samples["never"])
    # no cpu figure for it: bwrap's init does not pass the usage of the processes it reaps up to cnbsim
    b.add("CLI build planqk-pip in the namespace (--sandbox auto)", with_ns)
    b.add("CLI build planqk-pip on the host (--sandbox never)", without,
          f"cpu {statistics.median(cpu['never']) * 1000:.0f} ms")
    b.ratio("namespace / host (wall)", with_ns / without, "<= 1.15")
    big = b.tmp / "big-line"
    (big / "bin").mkdir(parents=True)
    (big / "bin" / "build").write_text("#!/bin/sh\nhead -c 100000000 /dev/zero | tr '\\0' x\n")
    (big / "bin" / "build").chmod(0o755)
    start = time.perf_counter()
    done = proc.run([str(big / "bin" / "build")], env={"PATH": "/usr/bin:/bin"}, cwd=b.tmp, timeout=600)
    b.add("proc.run of a buildpack printing one 100 MB line", time.perf_counter() - start,
          f"{len(done.output) // 1_000_000} MB captured")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="runs per figure (median; default 7)")
    ap.add_argument("--quick", action="store_true", help="smaller scale figures")
    ap.add_argument("--only", nargs="*", choices=["e2e", "limit", "scale", "rebuild", "namespace"], help="run some parts only")
    args = ap.parse_args()
    b = Bench(args.runs)
    parts = args.only or ["e2e", "limit", "scale", "rebuild", "namespace"]
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
               "system": platform.platform(), "date": time.strftime("%Y-%m-%d")}
    print(f"cnbsim benchmarks on {machine['system']}, {machine['cpus']} CPUs, Python {machine['python']}")
    try:
        if "e2e" in parts:
            bench_end_to_end(b)
        if "limit" in parts:
            bench_against_limit(b)
        if "scale" in parts:
            bench_scale(b, args.quick)
        if "rebuild" in parts:
            bench_rebuild(b)
        if "namespace" in parts:
            bench_namespace(b)
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps({"machine": machine, "rows": b.rows}, indent=2) + "\n")
    print(f"written: {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
