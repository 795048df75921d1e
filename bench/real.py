"""Real-mode build times against plain pip (a measurement, not a test).

Usage: .venv/bin/python bench/real.py [--runs N] [--wheelhouse DIR] APP...
For each app (default fixtures/apps/planqk-pip), the median of N runs of:
  cold  `cnbsim build --installer real --clear-cache` (no previous output, empty layer cache)
  warm  the same build again, requirements unchanged (cache and previous output kept)
  pip   `python3.X -m venv` + `pip install -r requirements.txt` into a fresh venv, with an empty
        pip cache (cold) and with the cache the first run left (warm), same interpreter, same index
        (no pip configuration of this host, as the build's pip has none; the --env pairs)
With --wheelhouse both install offline from DIR (pip --no-index --find-links DIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(argv: list[str], **kw: object) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=1800, **kw)
    if done.returncode != 0:
        sys.exit(f"{argv[0]} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--wheelhouse", type=Path)
    ap.add_argument("--python", default="/root/.pyenv/versions/3.10.13/bin/python3.10",
                    help="the interpreter for the pip baseline (the one the build selects)")
    ap.add_argument("--env", "-e", action="append", default=[], metavar="K=V",
                    help="a build env var for cnbsim build (e.g. PIP_CERT=... behind a TLS-intercepting proxy)")
    ap.add_argument("apps", nargs="*", type=Path, default=[REPO / "fixtures" / "apps" / "planqk-pip"])
    args = ap.parse_args()
    cnbsim = [str(Path(sys.executable).parent / "cnbsim"), "build"]
    index = ["--no-index", "--find-links", str(args.wheelhouse)] if args.wheelhouse else []
    # the baseline's pip sees what the build's pip sees: no pip configuration of this host (a
    # config file or PIP_* variables naming local mirrors would give it other sources), the --env pairs
    pip_env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    pip_env.update({"PIP_CONFIG_FILE": os.devnull, **dict(pair.split("=", 1) for pair in args.env)})
    for app in args.apps:
        if not app.is_dir() and (REPO / "fixtures" / "apps" / app).is_dir():
            app = REPO / "fixtures" / "apps" / app     # a fixture app by name
        figures: dict[str, list[float]] = {"cold": [], "warm": [], "pip cold": [], "pip warm": []}
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="cnbsim-bench-real-") as tmp:
                t = Path(tmp)
                build = [*cnbsim, str(app), "-o", str(t / "out"), "--cache-dir", str(t / "cache"),
                         "--installer", "real"]
                if args.wheelhouse:
                    build += ["--wheelhouse", str(args.wheelhouse)]
                for pair in args.env:
                    build += ["--env", pair]
                figures["cold"].append(timed([*build, "--clear-cache"]))
                figures["warm"].append(timed(build))
                for label in ("pip cold", "pip warm"):
                    shutil.rmtree(t / "venv", ignore_errors=True)
                    figures[label].append(
                        timed([args.python, "-m", "venv", str(t / "venv")], env=pip_env)
                        + timed([str(t / "venv" / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                                 "--cache-dir", str(t / "pipcache"), *index, "-r", str(app / "requirements.txt")],
                                env=pip_env))
        med = {k: statistics.median(v) for k, v in figures.items()}
        print(f"{app.name}: cold {med['cold']:.2f}s (pip {med['pip cold']:.2f}s, {med['cold'] / med['pip cold']:.2f}x)"
              f"  warm {med['warm']:.2f}s (pip {med['pip warm']:.2f}s)  [median of {args.runs}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
