# autoopt: the two quick-start commands are `make demo` and `make test`.
# Needs only python3 (>= 3.11), pip and cargo; everything else is installed into .venv.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test install bench bench-lean bench-report lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Builds the Rust extension (maturin) and installs autoopt (its built-in plugins included), the TFT
# trainer's and exchange source's extras (PyTorch from PyPI, ccxt) and the test tools.
install: $(BIN)/python
	$(PIP) install ".[test,tft,exchanges]"

## Run autoopt's main job end to end on the embedded NATS server.
demo: install
	$(BIN)/autoopt demo

## Run the whole test suite: lint, Rust unit tests, then pytest (real nats-server, real models).
test: install
	$(BIN)/ruff check python plugins tests benches
	cargo test --manifest-path rust/Cargo.toml --no-default-features
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m pytest benches/bench_*.py --benchmark-only --benchmark-columns=min,median,mean,ops -s

## Start-up time and memory of autoopt's processes (issue 23); BEFORE=<worktree> compares with an
## older commit in the same run (see benches/bench_startup.py). Results: benches/RESULTS.md.
bench-lean: install
	$(BIN)/python benches/bench_startup.py $(if $(BEFORE),--before $(BEFORE))

## Per-core ratios of the native kernels against their peers (1 thread and all threads, min of 5
## interleaved rounds) into benches/RESULTS.md; exits 1 when a ratio fell > 20% against HEAD's.
bench-report: install
	$(BIN)/python scripts/bench_report.py

lint: install
	$(BIN)/ruff check python plugins tests benches

clean:
	rm -rf $(VENV) target .pytest_cache .benchmarks
