# Everything a fresh machine needs: `make demo` and `make test` set up the venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv system-tools golden bench package clean

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

test: $(STAMP) system-tools
	$(BIN)/python -m pytest -n 2 -q

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
	rm -rf $(VENV) cnbsim-out dist
