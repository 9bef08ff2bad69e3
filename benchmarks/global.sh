#!/usr/bin/env bash
# The report's main result on its global grid (docs/results.md, "The coast, solved by physics"):
# the data (40/1/190: the report's 10 training grids are the first 10), the priors alone, the
# CPU preset on the geometry prior with the report's 10 grids and with 40, each scored on all
# 190 test samples with the prior alone beside it and randomization (N = 1e4) on the first 4,
# and the report's skip-connection ordering on the geometry prior with 3 seeds.
#   make global                      # or: bash benchmarks/global.sh [extra training overrides]
# Sequentially this is ~4 h on 2 CPU cores; docs/results.md ran the trainings two at a time.
# A GPU runs STEP=gpu: experiment=global (64 channels, 2e5 steps) instead of global_cpu.
set -euo pipefail
PY=${PY:-.venv/bin/python}
STORE=${GLOBAL_STORE:-sqlite:///mlflow.db}
PRESET=global_cpu
[[ "${STEP:-cpu}" == gpu ]] && PRESET=global
COMMON=(trainer.progress=false "logger.tracking_uri=$STORE")

"$PY" -m normcoef.generate dataset=full_std dataset.splits.train=40 dataset.splits.valid=1 \
  dataset.splits.test=190 workers="${WORKERS:-2}" progress=false
DATA=data/global-292x360-seed0

# The two priors alone on the 190 test samples (nodes on the first 10 training grids).
"$PY" benchmarks/prior_alone.py "$DATA" --train 10 -n 190 --out docs/img/prior-run

run_id() {  # the MLflow run id of the latest run named $1
  "$PY" - "$STORE" "$1" <<'EOF'
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
runs = client.search_runs(
    [e.experiment_id for e in client.search_experiments()],
    filter_string=f"attributes.run_name = '{sys.argv[2]}'",
    order_by=["attributes.start_time DESC"],
    max_results=1,
)
print(runs[0].info.run_id)
EOF
}

# The preset on the geometry prior: the report's 10 training grids, then 40 (test on 4 at the
# end of training; all 190 below).
for train in 10 40; do
  "$PY" -m normcoef.train "experiment=$PRESET" "dataset.splits.train=$train" \
    dataset.splits.test=4 "logger.run_name=$PRESET-geometry-$train" "${COMMON[@]}" "$@"
done

# CNN and prior on all 190 test samples, randomization beside them on the first 4 (~144 s
# each on one core); metrics, table and figures go to the runs.
"$PY" -m normcoef.evaluate "$(run_id "$PRESET-geometry-10")" --tracking-uri "$STORE" \
  --max-samples 190 --randomization-max-samples 4 --progress
"$PY" -m normcoef.evaluate "$(run_id "$PRESET-geometry-40")" --tracking-uri "$STORE" \
  --max-samples 190 -n 0

# The report's Table 4 on the geometry prior: no skips vs concatenating skips on Partial_std,
# 3 seeds, at a CPU scale (16 channels, 400 steps, 20 test samples).
"$PY" -m normcoef.train -m experiment=skip_connections model=cnn,skip_concat trainer.seed=1,2,3 \
  experiment_name=skip_connections_global_geometry target=prior_residual prior=geometry \
  model.channels=16 trainer.steps=400 trainer.eval_every=50 trainer.checkpoint_every=400 \
  dataset.splits.test=20 trainer.num_threads=1 "${COMMON[@]}"
"$PY" -m normcoef.report experiment=skip_connections \
  experiment_name=skip_connections_global_geometry "logger.tracking_uri=$STORE"
