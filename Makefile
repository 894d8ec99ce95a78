# The two quick-start commands: `make serve` and `make test`. Each sets up .venv on first use.
# `make test` leaves out the tests marked slow (benchmark and soak scripts run end to end);
# `make test-slow` runs only those, `make test-all` runs everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# FlashInfer at the pinned version and what its import needs, outside site-packages: tests bind our calls to its
# signatures and import it in a subprocess; nothing else sees it. --no-deps: it never pulls a CUDA build of torch.
FLASHINFER_SOURCE := $(VENV)/flashinfer-source
HOST ?= 127.0.0.1
PORT ?= 30000
ARGS ?=

.PHONY: serve test test-slow test-all lint venv clean

$(STAMP): pyproject.toml scripts/gpu_wheels.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: this version comes as a CPU build; anything else pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,ray]'
	rm -rf $(FLASHINFER_SOURCE)
	$(BIN)/pip install -q --no-deps --target $(FLASHINFER_SOURCE) $$($(BIN)/python scripts/gpu_wheels.py --import-specs)
	touch $(STAMP)

venv: $(STAMP)

serve: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m server.launch_server --is-embedding --host $(HOST) --port $(PORT) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Two workers, a file each at a time (its module-scoped servers launch once): start-ups and model loads are
# single-threaded, so two of them fill both cores. The slow tests measure memory and speed: one at a time.
test: $(STAMP) lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile

test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

test-all: $(STAMP) lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
