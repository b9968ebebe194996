# Set-up and the two entry points of the README: `make demo` and `make test`.
# Both create or update the virtual environment in .venv when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo-output

.PHONY: demo test lint benchmark benchmark-bioscan clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The demo trains a baseline, so it installs the train extra (PyTorch, torchvision, timm).
$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-runtime

# The main jobs on generated sample data in the official layouts: evaluate MOT17 tracker output
# with the TrackEval-exact metrics, train and score the CT-GNN baseline on Sewer-ML frames,
# cluster BIOSCAN-5M barcodes and score the clusters by AMI, and write the leaderboard.
demo: $(VENV)/.installed-runtime
	rm -rf $(DEMO)
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness sample mot17 --output $(DEMO)/mot17
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness prepare mot17 --source $(DEMO)/mot17
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness eval mot17 \
		--tracker-dir $(DEMO)/mot17/trackers/noisytracker --output $(DEMO)/run-noisytracker
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness sample sewerml --output $(DEMO)/sewerml
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness prepare sewerml \
		--source $(DEMO)/sewerml
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness run sewerml ctgnn \
		--output $(DEMO)/run-ctgnn
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness sample bioscan-5m \
		--output $(DEMO)/bioscan5m
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness prepare bioscan-5m \
		--source $(DEMO)/bioscan5m
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness run bioscan-5m zsc \
		--output $(DEMO)/run-zsc
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness leaderboard --runs $(DEMO) \
		--include-sample --output $(DEMO)/leaderboard.csv
	@echo "Demo results: $(DEMO)/run-noisytracker, $(DEMO)/run-ctgnn, $(DEMO)/run-zsc and" \
		"$(DEMO)/leaderboard.md"

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check harness motcom sewerml bioscan tests benchmarks

benchmark: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_mot_eval.py
	$(BIN)/python benchmarks/bench_sewerml_input.py
	$(BIN)/python benchmarks/bench_sewerml_train_step.py

# Full-size BIOSCAN-5M metadata against bioscan-dataset: about 11 minutes and 10.5 GB under /tmp.
benchmark-bioscan: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_bioscan_load.py --repeats 3

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .hypothesis
