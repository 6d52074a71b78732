# posterml: `make demo` runs the main job, `make test` the fast tests (no `slow` marker),
# `make test-all` every test (what CI runs); all install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db

.PHONY: install demo test test-all lint format clean mlproject ocr-engine

install: $(STAMP)

# The recipe reads the words on posters with Debian's Tesseract (not a pip package): as root
# it is installed, otherwise the line to run is printed.
ocr-engine:
	@command -v tesseract >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends tesseract-ocr tesseract-ocr-eng; \
	  else \
	    echo "posterml reads the words on posters with Tesseract OCR: run"; \
	    echo "  sudo apt-get install tesseract-ocr   (macOS: brew install tesseract)"; \
	    exit 1; \
	  fi; }

# Reinstall only when the dependency list changes; an editable install picks up code edits.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo runs the recipe we ship (entry point `main`), whose backbone works offline.
demo: install ocr-engine
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . --experiment-name posterml \
		-P n_trials=5 --env-manager local
	@$(BIN)/python -m posterml.cli where

# The fast lane: tests marked slow (servers, TensorFlow training, benchmark smoke runs) are left
# to test-all.
test: install ocr-engine
	$(BIN)/python -m pytest -q -m "not slow"

test-all: install ocr-engine
	$(BIN)/python -m pytest -q

lint:
	$(BIN)/ruff check posterml experiments benchmarks research tests
	$(BIN)/ruff format --check posterml experiments benchmarks research tests

format:
	$(BIN)/ruff format posterml experiments benchmarks research tests
	$(BIN)/ruff check --fix posterml experiments benchmarks research tests

# MLproject is generated from the settings dataclasses and the commands' parsers.
mlproject: install
	$(BIN)/python -m posterml.modeling.mlproject

clean:
	rm -rf $(VENV) mlflow.db mlruns mlartifacts optuna.db .pytest_cache
