#!/usr/bin/env bash
# The report's orderings re-measured (issue 10, docs/results.md "Orderings"): each ablation
# preset of conf/experiment x 3 seeds x (target=gamma, target=prior_residual), at a scale two
# CPU cores run in about an hour: the python grid at 32x64 (16/4/8 samples), 16 channels
# (layers as the preset says), 400 steps at batch 4. Each sweep prints its table (best row
# chosen on validation) and logs it to MLflow (ORDERINGS_STORE).
#   make orderings                       # or: bash benchmarks/orderings.sh [extra overrides]
# A GPU runs the presets at their own scale: drop SCALE's overrides (docs/results.md).
set -euo pipefail
PY=${PY:-.venv/bin/python}
STORE=${ORDERINGS_STORE:-sqlite:///orderings.db}
ROOT=data/python-32x64-seed0
SPLITS='{train:16,valid:4,test:8}'
"$PY" -m normcoef.generate dataset=python dataset.height=32 dataset.width=64 \
  "dataset.splits=$SPLITS" workers="${WORKERS:-2}" progress=false
SCALE=(dataset.grid=python dataset.height=32 dataset.width=64 "dataset.splits=$SPLITS"
  "dataset.root=$ROOT" model.channels=16 trainer.steps=400 trainer.batch_size=4
  trainer.eval_every=50 trainer.checkpoint_every=400 trainer.progress=false
  "logger.tracking_uri=$STORE" trainer.seed=1,2,3)
for experiment in ${EXPERIMENTS:-activation skip_connections loss distance_map layers}; do
  for target in gamma prior_residual; do
    "$PY" -m normcoef.train -m "experiment=$experiment" "target=$target" \
      "experiment_name=${experiment}_${target}" "${SCALE[@]}" "$@"
  done
done
