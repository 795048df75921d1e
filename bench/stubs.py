"""Time every stub's bin/detect and bin/build (a measurement, not a test).

Usage: .venv/bin/python bench/stubs.py [RUNS]
Prints, per stub, the median wall time of RUNS runs (default 15) from process spawn to exit,
for detect and for a first (fresh) and a repeated (reusing) build of a typical plan.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "stubs"))

from stubrun import Lifecycle, entry

APP = {"requirements.txt": "flask==3.1.3\ngunicorn\n", "app.py": "print('hi')\n", "planqk.json": "{}\n",
       "Pipfile": '[packages]\nflask = "*"\n', "environment.yml": "dependencies:\n  - flask=2.0\n",
       "pyproject.toml": '[tool.poetry]\nname = "x"\n[tool.poetry.dependencies]\npython = "^3.10"\n'
                         'flask = "^3"\n[tool.poetry.scripts]\nserve = "x:main"\n',
       "Procfile": "web: gunicorn app:app\n"}
PLANS = {
    "cpython": [entry("cpython", build=True, launch=False, version="", version_source=""),
                entry("cpython", build=True), entry("cpython", launch=True)],
    "pip": [entry("pip", build=True)], "pip-install": [entry("site-packages", launch=True)],
    "pipenv": [entry("pipenv", build=True)], "pipenv-install": [entry("site-packages", launch=True)],
    "miniconda": [entry("conda", build=True)], "conda-env-update": [entry("conda-environment", launch=True)],
    "python-start": [], "poetry": [entry("poetry", build=True), entry("poetry", launch=True)],
    "poetry-install": [entry("poetry-venv", launch=True)], "poetry-run": [],
    "procfile": [entry("procfile", web="gunicorn app:app")],
    "ca-certificates": [entry("ca-certificates-helper")], "watchexec": [entry("watchexec", launch=True)],
    "environment-variables": [entry("environment-variables")], "image-labels": [entry("image-labels")],
}
ENV = {"BPE_GREETING": "hi", "BP_OCI_SOURCE": "https://example.org"}


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:6.1f}"


def main(runs: int) -> None:
    print(f"{'stub':22s} {'detect':>7s} {'build 1st':>10s} {'build again':>12s}   (median ms of {runs} runs)")
    for stub, plan in PLANS.items():
        detect, fresh, again = [], [], []
        for _ in range(runs):
            lc = Lifecycle(Path(tempfile.mkdtemp(prefix="cnbsim-timing-")))
            for name, text in APP.items():
                lc.write(name, text)
            detect.append(lc.detect(stub, ENV).seconds)
            first = lc.build(stub, plan, ENV)
            assert first.code == 0, (stub, first.stderr)
            fresh.append(first.seconds)
            again.append(lc.build(stub, plan, ENV).seconds)
        print(f"{stub:22s} {ms(detect):>7s} {ms(fresh):>10s} {ms(again):>12s}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
