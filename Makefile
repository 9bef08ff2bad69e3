# normcoef: `make` lists the targets; `make run` = install + data + train + evaluate + MLflow.
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

.PHONY: help install run data global-data resolution-data resolution global smoke train beat test test-fast typecheck hooks bench bench-logging test-cluster bench-train orderings lint format sweep search ui dashboard clean

# `make` alone lists the targets: each one documents itself in a `## ` comment on its line.
.DEFAULT_GOAL := help
help: ## list the targets (the default)
	@awk -F ':.*## ' '/^[a-z-]+:.*## / {printf "%-15s %s\n", $$1, $$2}' $(firstword $(MAKEFILE_LIST))

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## create .venv: torch (TORCH_SPEC), then normcoef[dev] editable

data: install ## generate the DATASET data set (python) with WORKERS processes
	$(PY) -m normcoef.generate dataset=$(DATASET) workers=$(WORKERS) $(DATA_ARGS)

train: install ## train EXPERIMENT (quickstart) with the overrides in ARGS
	$(PY) -m normcoef.train experiment=$(EXPERIMENT) $(ARGS)

run: data train ## data, then train: the quickstart end to end
	@echo "Browse the run: make ui, then open http://$(MLFLOW_HOST):$(MLFLOW_PORT) (docs/reviewing.md)"

# Issue 10's recipe (conf/experiment/beat_randomization.yaml): its data set (python grid 64x128,
# 64/16/16 samples; generation resumes, so a second call only checks it), then the training.
# GPU-sized (64 channels, 30000 steps at batch 16); the CPU run of docs/results.md added
# ARGS="model.channels=32 trainer.batch_size=4 trainer.steps=4000" (58 min on one core).
BEAT_DATA := dataset=python dataset.splits.train=64 dataset.splits.valid=16 dataset.splits.test=16 \
	dataset.root=data/beat_randomization-64x128-seed0
beat: install ## issue 10's recipe: its data, then experiment=beat_randomization (ARGS)
	$(PY) -m normcoef.generate $(BEAT_DATA) workers=$(WORKERS)
	$(PY) -m normcoef.train experiment=beat_randomization $(ARGS)

# The report's global data set at its real size (10/1/190 samples of the 292x360 grid, exact
# Γ within 1e-6): ~20 minutes with 2 workers; resumable (run it again after a kill). Shared
# by dataset=full_std and dataset=partial_std (training reads at most dataset.splits of it).
GLOBAL_SPLITS := dataset.splits.train=10 dataset.splits.valid=1 dataset.splits.test=190
global-data: install ## the report's global data set, 10/1/190 samples (WORKERS processes)
	$(PY) -m normcoef.generate dataset=full_std $(GLOBAL_SPLITS) workers=$(WORKERS) $(DATA_ARGS)

# One ocean at three resolutions (conf/dataset/one_ocean.yaml): ORCA2-like 146x180, ORCA1-like
# 292x360 and ORCA05-like 584x720, RES_TEST exact test samples each (and the one training
# sample a data set needs); resumable. Times per sample: docs/results.md, "One network for
# every resolution".
RES_TEST ?= 16
RES_SIZES ?= 146x180 292x360 584x720
resolution-data: install ## one ocean at 2°, 1° and ½° (dataset=one_ocean), RES_TEST test samples each
	for size in $(RES_SIZES); do \
		$(PY) -m normcoef.generate dataset=one_ocean dataset.height=$${size%x*} \
			dataset.width=$${size#*x} "dataset.splits={train: 1, valid: 0, test: $(RES_TEST)}" \
			workers=$(WORKERS) $(DATA_ARGS) || exit 1; \
	done

# The shipped 1° network on every grid of the one ocean, shown each at its own resolution
# (docs/results.md "One network for every resolution"); randomization (N = 1e4) on RES_RANDOM
# samples of each. Tables and figures go to outputs/resolution/<size>.
RES_RANDOM ?= 2
resolution: resolution-data ## the shipped network at 2°, 1° and ½° against the prior and randomization
	for size in $(RES_SIZES); do \
		$(PY) -m normcoef.evaluate --pretrained global --dataset data/one-ocean-$$size-seed0 \
			--max-samples $(RES_TEST) --randomization-max-samples $(RES_RANDOM) --no-log \
			--output-dir outputs/resolution/$$size || exit 1; \
	done

# Issue 17's runs (docs/results.md "The global grid"): the data, experiment=global_cpu on
# Full_std and Partial_std, the test evaluation (190 samples; randomization on 4), the skip
# ordering with 3 seeds. ~4 h on 2 CPU cores; STEP=gpu trains experiment=global instead.
global: install ## the report's main result on its global grid (benchmarks/global.sh)
	PY=$(PY) bash benchmarks/global.sh $(ARGS)

# The type check first (~30 s): CI runs this target (.ci/run).
test: install typecheck ## type check, then every test
	$(PY) -m pytest

# Skips the tests marked slow (subprocess sweeps, servers, interrupts): for the edit-test loop.
test-fast: install ## the tests not marked slow, no type check
	$(PY) -m pytest -m "not slow"

# The cluster path on real engines, as root (CI runs it after `test`): installs slurm-wlm,
# munge, MariaDB (SLURM's accounting), PostgreSQL and the `cluster` extra, starts a PostgreSQL
# server, an MLflow server over it and a single-node SLURM cluster, runs tests/cluster/ against
# them and stops them (tests/cluster/run.sh): ~7 minutes on 2 cores.
test-cluster: install ## SLURM, PostgreSQL and an MLflow server: sweeps on real engines (root)
	PY=$(PY) bash tests/cluster/run.sh $(ARGS)

typecheck: install ## mypy over normcoef and hydra_plugins ([tool.mypy], pyproject.toml)
	$(PY) -m mypy

# Git hooks that run ruff and mypy before each commit (.pre-commit-config.yaml).
hooks: install ## install the pre-commit hooks
	$(VENV)/bin/pre-commit install

bench: install bench-logging ## every benchmark
	$(PY) benchmarks/bench_normalization.py

# MLflow's cost per training step (target <= 5 %), ~1-2 minutes on 2 CPU cores.
bench-logging: install ## MLflow's cost per training step
	$(PY) benchmarks/bench_logging.py

# The training loop at the report's 200x360: samples/s, pixels/s, TFLOP/s, overhead over bare
# steps. CPU by default (~1.5 minutes); on a GPU: make bench-train BENCH_ARGS="--device cuda --steps 200"
BENCH_ARGS ?= --steps 4 --threads 1
bench-train: install ## training throughput (BENCH_ARGS)
	$(PY) benchmarks/bench_training.py $(BENCH_ARGS)

# The report's orderings, each ablation preset x 3 seeds x (target=gamma, prior_residual), at a
# CPU scale (python grid 32x64, 16 channels, 400 steps): ~1 h on 2 cores; docs/results.md.
orderings: install ## the report's orderings re-measured, 3 seeds, with and without the prior
	PY=$(PY) WORKERS=$(WORKERS) bash benchmarks/orderings.sh $(ARGS)

lint: install ## ruff check, ruff format --check
	$(PY) -m ruff check normcoef tests benchmarks hydra_plugins
	$(PY) -m ruff format --check normcoef tests benchmarks hydra_plugins

format: install ## ruff format
	$(PY) -m ruff format normcoef tests benchmarks hydra_plugins

# A sweep prints its report table when it ends (the parent-run callback, normcoef/sweeps/
# parent_run.py) and exits 3 when some jobs failed, 4 when all did (normcoef/sweeps/failures.py).
# CI-sized, end to end on a fresh clone (~2 minutes on 2 cores): the smoke presets' tiny data
# set (python grid 16x24, 3/1/1 samples; resumable), a grid sweep and an Optuna search of 3
# trials, all logged to ./mlflow.db (make ui). The train command names the data a preset lacks.
SMOKE_DATA := dataset=partial_std dataset.grid=python dataset.height=16 dataset.width=24 \
	dataset.splits.train=3 dataset.splits.test=1 dataset.root=data/python-16x24-seed0
smoke: install ## CI-sized: the smoke data, a smoke sweep and a smoke Optuna search
	$(PY) -m normcoef.generate $(SMOKE_DATA) progress=false
	$(PY) -m normcoef.train -m experiment=smoke/activation $(ARGS)
	$(PY) -m normcoef.train -m hparams_search=optuna_smoke $(ARGS)

sweep: install ## a Hydra multirun of EXPERIMENT with ARGS
	$(PY) -m normcoef.train -m experiment=$(EXPERIMENT) $(ARGS)

search: install ## a hyperparameter search (SEARCH: optuna)
	$(PY) -m normcoef.train -m hparams_search=$(SEARCH) $(ARGS)

# Where `make ui` listens, e.g. make ui MLFLOW_PORT=5001 (MLflow reads the same variables).
# No job runner: its 7 processes serve GenAI jobs, browsing runs needs none (docs/reviewing.md).
MLFLOW_HOST ?= 127.0.0.1
MLFLOW_PORT ?= 5000
# A store of an older MLflow is upgraded after a backup first (MLflow would upgrade it with none).
ui: install ## the MLflow UI on MLFLOW_HOST:MLFLOW_PORT
	$(PY) -m normcoef.cli.upgrade mlflow sqlite:///mlflow.db
	@echo "Starting the MLflow UI over ./mlflow.db: http://$(MLFLOW_HOST):$(MLFLOW_PORT) in ~10-40 s (Ctrl-C stops it)"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db \
		--host $(MLFLOW_HOST) --port $(MLFLOW_PORT)

# The Optuna dashboard (optuna-dashboard, the `dashboard` extra, installed on first use) over a
# search's study storage: history, parameter importances, slices, contour plots of every study
# in it (docs/reviewing.md). An older Optuna's study is upgraded after a backup first.
STUDY_STORAGE ?= sqlite:///multirun/optuna.db
DASHBOARD_PORT ?= 8080
dashboard: install ## the Optuna dashboard over STUDY_STORAGE on MLFLOW_HOST:DASHBOARD_PORT
	@$(PY) -c "import optuna_dashboard" 2>/dev/null || $(PY) -m pip install -q -e ".[dashboard]"
	$(PY) -m normcoef.cli.upgrade optuna $(STUDY_STORAGE)
	@echo "The Optuna dashboard over $(STUDY_STORAGE): http://$(MLFLOW_HOST):$(DASHBOARD_PORT) (Ctrl-C stops it)"
	$(VENV)/bin/optuna-dashboard $(STUDY_STORAGE) --host $(MLFLOW_HOST) --port $(DASHBOARD_PORT)

clean: ## remove outputs and caches
	rm -rf outputs .pytest_cache .ruff_cache .mypy_cache
