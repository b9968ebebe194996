# Set-up and the two entry points of the README: `make demo` and `make test`.
# Both create or update the virtual environment in .venv when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo-output

.PHONY: demo test lint benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-runtime

# The main job on bundled sample data: generate a small MOT17-style set in the official layout,
# prepare it, evaluate its noisy tracker with the TrackEval-exact metrics, write the leaderboard.
demo: $(VENV)/.installed-runtime
	rm -rf $(DEMO)
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness sample mot17 --output $(DEMO)/data
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness prepare mot17 --source $(DEMO)/data
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness eval mot17 \
		--tracker-dir $(DEMO)/data/trackers/noisytracker --output $(DEMO)/run-noisytracker
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness leaderboard --runs $(DEMO) \
		--include-sample --output $(DEMO)/leaderboard.csv
	@echo "Demo results: $(DEMO)/run-noisytracker and $(DEMO)/leaderboard.md"

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check harness motcom tests benchmarks

benchmark: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_mot_eval.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .hypothesis
