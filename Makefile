# autovault — the two commands the README opens with, and the benchmarks.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install -q -c constraints.txt
# llama-cpp-python compiles on install: portable build, no -march=native surprises on another CPU.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
VAULT  ?= vault.yml

.PHONY: demo test lint bench bench-faults bench-safety bench-gpu deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip wheel setuptools

# systemd-python builds against libsystemd; install the headers when we can (root + apt), else say what to do.
deps:
	@if ! pkg-config --exists libsystemd 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq libsystemd-dev pkg-config >/dev/null; \
	  else echo "autovault needs libsystemd headers: sudo apt-get install libsystemd-dev pkg-config" >&2; exit 1; fi; \
	fi

$(VENV)/.base: pyproject.toml constraints.txt | $(BIN)/python deps
	$(PIP) -e .
	touch $@

$(VENV)/.full: pyproject.toml constraints.txt $(VENV)/.base
	$(PIP) -e '.[gpu,test]'
	touch $@

# The demo works on a fresh copy of the example vault, so the tracked files never change under it, with a
# deterministic profile (examples/demo_profile.py) so that each verification decides on 3 paired inputs.
DEMO := .autovault/demo
DEMO_CYCLES ?= 6
demo: $(VENV)/.base
	$(BIN)/autovault --config $(VAULT) check
	rm -rf $(DEMO) && mkdir -p $(DEMO) && cp -R examples/seed-vault $(DEMO)/vault
	$(BIN)/python examples/demo_profile.py $(VAULT) $(DEMO)/vault.yml
	$(BIN)/autovault --config $(DEMO)/vault.yml ingest $(DEMO)/vault/heartbeat/logs
	$(BIN)/autovault --config $(DEMO)/vault.yml run-task --all
	$(BIN)/autovault --config $(DEMO)/vault.yml status --signatures
	$(BIN)/autovault --config $(DEMO)/vault.yml loop --max-cycles $(DEMO_CYCLES)
	$(BIN)/autovault --config $(DEMO)/vault.yml ledger --tsv

lint: $(VENV)/.full
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(VENV)/.full lint
	$(BIN)/pytest -q

bench: $(VENV)/.full
	$(BIN)/python -m benchmarks

bench-faults: $(VENV)/.full
	$(BIN)/python -m benchmarks.bench_faults

# Issue 14 in one line: hostile proposals, kill -9 at every apply step, bad log lines, bad vault.yml files.
bench-safety: $(VENV)/.full
	$(BIN)/python -m benchmarks.bench_safety

# The LoRA step: steps/s and tokens/s here; MFU against the device's peak on a GPU (target >= 40 %).
bench-gpu: $(VENV)/.full
	$(BIN)/python -m benchmarks.bench_gpu

clean:
	rm -rf $(VENV) .autovault .pytest_cache .mypy_cache .ruff_cache
