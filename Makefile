# Set-up and the two entry points of the README: `make demo` and `make test`.
# Both create or update the virtual environment in .venv when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo-output

.PHONY: demo test lint benchmark benchmark-bioscan benchmark-zef3d clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The demo trains a baseline, so it installs the train extra (PyTorch, torchvision, timm).
# The editable install puts the repository on sys.path (compat mode), so that a data folder named
# like one of the packages (./virada/ from 'sample virada --output virada') cannot shadow it.
EDITABLE := --config-settings editable_mode=compat

$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train]' $(EDITABLE)
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(EDITABLE)
	touch $@ $(VENV)/.installed-runtime

# The main jobs on generated sample data in the official layouts: evaluate MOT17 tracker output
# with the TrackEval-exact metrics, train and score the CT-GNN baseline on Sewer-ML frames,
# cluster BIOSCAN-5M barcodes and score the clusters by AMI, track zebrafish in 3D with the
# 3D-ZeF baseline, detect rain in VIRADA videos with labels made from gauge records, and write
# the leaderboard.
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
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness sample zef3d --output $(DEMO)/zef3d
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness prepare zef3d --source $(DEMO)/zef3d
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness run zef3d naive \
		--output $(DEMO)/run-zef3d-naive
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness sample virada --output $(DEMO)/virada
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness prepare virada \
		--source $(DEMO)/virada --gauges $(DEMO)/virada/gauges
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness run virada bossu \
		--output $(DEMO)/run-bossu
	FIELDHARNESS_HOME=$(DEMO)/home $(BIN)/python -m harness leaderboard --runs $(DEMO) \
		--include-sample --output $(DEMO)/leaderboard.csv
	@echo "Demo results: $(DEMO)/run-noisytracker, $(DEMO)/run-ctgnn, $(DEMO)/run-zsc," \
		"$(DEMO)/run-zef3d-naive, $(DEMO)/run-bossu and $(DEMO)/leaderboard.md"

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check harness motcom sewerml bioscan zef3d virada tests benchmarks

benchmark: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_mot_eval.py
	$(BIN)/python benchmarks/bench_sewerml_input.py
	$(BIN)/python benchmarks/bench_sewerml_train_step.py
	$(BIN)/python benchmarks/bench_virada_bossu.py

# 3D-ZeF evaluation against py-motmetrics 1.4.0, which needs its own environment (numpy < 2).
benchmark-zef3d: $(VENV)/.installed-dev
	test -x /tmp/mm14/bin/python || ($(PYTHON) -m venv /tmp/mm14 && /tmp/mm14/bin/pip install \
		--quiet "motmetrics==1.4.0" "numpy<2" "pandas<2" scipy)
	$(BIN)/python benchmarks/bench_zef3d_eval.py

# Full-size BIOSCAN-5M metadata against bioscan-dataset: about 11 minutes and 10.5 GB under /tmp.
benchmark-bioscan: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_bioscan_load.py --repeats 3

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .hypothesis
