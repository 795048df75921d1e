"""Bash or Python for the stubs: the per-process costs that decide it (a measurement, not a test).

Usage: .venv/bin/python bench/stub_toml.py [RUNS]
Interleaves RUNS runs (default 21) of each command and prints the medians: bash with the stubs'
libraries sourced, alone and reading the cpython stub's buildpack.toml (27 dependency rows) with
toml.sh's fast path (toml_scan) and its general reader (toml_load); the base interpreter with
`-I -S`, alone, importing tomllib, and parsing the same file. Then the CLI stub build of
fixtures/apps/planqk-pip (17 buildpack processes: 11 bin/detect, 6 bin/build).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STUBS = REPO / "cnbsim" / "stubs" / "paketo"
BASE = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
LIBS = ". lib/common.sh; . lib/toml.sh; . lib/deps.sh; . lib/python.sh; "
COMMANDS = {
    "bash + the stubs' libraries": ["bash", "-c", LIBS],
    "  + own [buildpack] info (toml_scan TABLE)": ["bash", "-c", LIBS + "_stub_bp_info"],
    "  + dependency table (toml_scan)": ["bash", "-c", LIBS + "deps_load"],
    "  + dependency table (toml_load)": ["bash", "-c", LIBS + "toml_load cpython/buildpack.toml"],
    "python -I -S": [BASE, "-I", "-S", "-c", "pass"],
    "  + import tomllib": [BASE, "-I", "-S", "-c", "import tomllib"],
    "  + tomllib.load(buildpack.toml)": [BASE, "-I", "-S", "-c",
                                         "import tomllib; tomllib.load(open('cpython/buildpack.toml', 'rb'))"],
    "  + import tomllib, json, hashlib, shutil": [BASE, "-I", "-S", "-c", "import tomllib, json, hashlib, shutil"],
}


def main(runs: int) -> None:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    env = {"PATH": "/usr/bin:/bin", "CNB_BUILDPACK_DIR": "cpython"}
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(argv, cwd=STUBS, env=env, check=True)
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:48s} {statistics.median(values) * 1000:7.1f} ms")
    cli = [str(Path(sys.executable).parent / "cnbsim"), "build", str(REPO / "fixtures" / "apps" / "planqk-pip")]
    builds = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(5, runs // 4)):
            start = time.perf_counter()
            subprocess.run([*cli, "-o", f"{tmp}/out", "--cache-dir", f"{tmp}/cache"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            builds.append(time.perf_counter() - start)
    print(f"{'CLI stub build of planqk-pip (warm cache)':48s} {statistics.median(builds) * 1000:7.1f} ms")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 21)
