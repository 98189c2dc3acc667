# Two commands from a fresh clone: `make demo` and `make test`. Both create .venv first.
# `make demo` installs only what the demo needs (the package and its pinned dependencies);
# `make test` adds the dev, physics (Pythia, fastjet, NEST) and cluster (submitit, Optuna) extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHECKSUM := $(shell cksum pyproject.toml | cut -d' ' -f1)
BASE := $(VENV)/.installed-base-$(CHECKSUM)
FULL := $(VENV)/.installed-full-$(CHECKSUM)

.PHONY: venv demo test test-isa margins lint docs-check bench notebooks clean-venv

$(BASE): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	rm -f $(VENV)/.installed-base-*
	touch $(BASE)

$(FULL): $(BASE)
	$(PY) -m pip install -q -e '.[dev,physics,cluster]'
	rm -f $(VENV)/.installed-full-*
	touch $(FULL)

venv: $(FULL)

demo: $(BASE)
	$(PY) -m jaxws experiment=quickstart

test: $(FULL)
	$(PY) -m ruff check jaxws tests bench experiments
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15
	$(MAKE) --no-print-directory test-isa

# The numerical tests again with other code generation: XLA limited to AVX2 (as on CPUs without
# AVX-512) and OpenBLAS's Haswell kernels (NumPy and SciPy), so a margin that only holds with
# this machine's last digits fails here, not on a user's CPU (docs/testing.md).
ISA_ENV := XLA_FLAGS=--xla_cpu_max_isa=AVX2 OPENBLAS_CORETYPE=Haswell
test-isa: $(FULL)
	$(ISA_ENV) $(PY) -m pytest -q -n 2 --dist loadfile -m numerical --durations=5

# The margin of every statistical assertion in standard errors, natively and in test-isa's mode,
# as the table of docs/testing.md (tests/margins_table.py; slow: runs the statistical tests twice).
margins: $(FULL)
	$(PY) tests/margins_table.py run --out .margins

lint: $(FULL)
	$(PY) -m ruff check jaxws tests bench experiments
	$(PY) -m ruff format --check jaxws tests bench experiments

# Numbers, defaults, paths and script lists quoted in README.md and docs/ against the code and
# the committed tables (seconds; also part of `make test`: tests/test_docs.py).
docs-check: $(BASE)
	$(PY) tests/docs_check.py

# Re-execute the tutorials and store their outputs and figures (the tests execute them too).
notebooks: $(FULL)
	$(PY) -m jupyter execute --inplace notebooks/*.ipynb

# The CPU comparison table of README.md ("Performance"): jaxws against PyTorch, side by side.
bench: $(BASE)
	$(PY) -m pip install -q -e '.[bench]'
	JAX_PLATFORMS=cpu $(PY) bench/compare.py step --model paper --forms im2col,shift --torch
	JAX_PLATFORMS=cpu $(PY) bench/compare.py step --model slim --forms im2col,shift --torch

clean-venv:
	rm -rf $(VENV)
