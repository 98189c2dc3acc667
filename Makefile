# Two commands from a fresh clone: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: venv demo test test-isa lint bench notebooks clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,physics,cluster]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m jaxws experiment=quickstart

test: $(STAMP)
	$(PY) -m ruff check jaxws tests bench experiments
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15
	$(MAKE) --no-print-directory test-isa

# The numerical tests again with other code generation: XLA limited to AVX2 (as on CPUs without
# AVX-512) and OpenBLAS's Haswell kernels (NumPy and SciPy), so a margin that only holds with
# this machine's last digits fails here, not on a user's CPU (docs/testing.md).
ISA_ENV := XLA_FLAGS=--xla_cpu_max_isa=AVX2 OPENBLAS_CORETYPE=Haswell
test-isa: $(STAMP)
	$(ISA_ENV) $(PY) -m pytest -q -n 2 --dist loadfile -m numerical --durations=5

lint: $(STAMP)
	$(PY) -m ruff check jaxws tests bench experiments
	$(PY) -m ruff format --check jaxws tests bench experiments

# Re-execute the tutorials and store their outputs and figures (the tests execute them too).
notebooks: $(STAMP)
	$(PY) -m jupyter execute --inplace notebooks/*.ipynb

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) bench/train_throughput.py

clean-venv:
	rm -rf $(VENV)
