# normcoef: `make run` (install + data + train + evaluate + MLflow), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch installs in seconds here; for a GPU: make install TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
# The main job: a CPU-sized run on the python grid (conf/experiment/quickstart.yaml).
EXPERIMENT ?= quickstart
ARGS ?=
DATASET ?= python
DATA_ARGS ?=
# Processes computing samples in parallel (one core each).
WORKERS ?= 2
SEARCH ?= optuna

.PHONY: install run data train test bench lint format sweep search ui clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

data: install
	$(PY) -m normcoef.generate dataset=$(DATASET) workers=$(WORKERS) $(DATA_ARGS)

train: install
	$(PY) -m normcoef.train experiment=$(EXPERIMENT) $(ARGS)

run: data train
	@echo "Browse the run: $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db"

test: install
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/bench_normalization.py

lint: install
	$(PY) -m ruff check normcoef tests benchmarks
	$(PY) -m ruff format --check normcoef tests benchmarks

format: install
	$(PY) -m ruff format normcoef tests benchmarks

sweep: install
	$(PY) -m normcoef.train -m experiment=$(EXPERIMENT) $(ARGS)
	$(PY) -m normcoef.report experiment=$(EXPERIMENT)

search: install
	$(PY) -m normcoef.train -m hparams_search=$(SEARCH) $(ARGS)
	$(PY) -m normcoef.report hparams_search=$(SEARCH)

ui: install
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db

clean:
	rm -rf outputs .pytest_cache .ruff_cache
