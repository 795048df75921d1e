# Everything a fresh machine needs: `make demo` and `make test` set up the venv themselves.
# `make test PYTHON=python3.12` runs the suite on that interpreter, in its own venv
# (.venv-3.12), so that interpreters never share (or clobber) one; the default python3 uses .venv.
PYTHON ?= python3
ifeq ($(PYTHON),python3)
VENV   ?= .venv
else
PY_XY  := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifeq ($(PY_XY),)
$(error PYTHON=$(PYTHON) does not run: give an interpreter, e.g. PYTHON=python3.12 or a full path)
endif
VENV   ?= .venv-$(PY_XY)
endif
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint test-all venv system-tools golden bench package clean differential

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# System tools used by optional tests (bubblewrap for sandboxed runs, skopeo and
# umoci to check OCI output). Installed when we can (root + apt); otherwise the
# tests that need them are skipped with the reason.
system-tools:
	@./scripts/install-system-tools

# pytest's exit 5 (no tests collected) fails like any other non-zero exit.
test: lint system-tools
	$(BIN)/python -m pytest -n 2 -q

# ruff and mypy, with the rules and the strictness set in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check cnbsim tests bench scripts
	$(BIN)/mypy

# The suite on every supported Python found here (pyenv, /usr/bin, PATH), one after the other;
# absent versions are skipped with a line saying so.
test-all:
	@./scripts/test-all

# The differential suite alone, on more cases: cnbsim against the real lifecycle
# (`make differential N=5000 SEED=1a2b3c4d`; `CASE=17` replays one case of that seed).
N    ?= 5000
SEED ?=
CASE ?=
differential: $(STAMP)
	CNB_DIFF_N=$(N) CNB_DIFF_SEED=$(SEED) CNB_DIFF_CASE=$(CASE) $(BIN)/python -m pytest -n 2 -q tests/differential

demo: $(STAMP)
	@./scripts/demo

# The job-template buildpack as a buildpackage, as `pack buildpack package --format file` writes it.
package: $(STAMP)
	@mkdir -p dist
	$(BIN)/cnbsim package dist/planqk-buildpack-job-template.cnb --config buildpack/package.toml

golden: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_golden.py --cnb-update-golden

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf .venv .venv-[0-9]* cnbsim-out dist
