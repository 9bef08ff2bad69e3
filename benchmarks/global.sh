#!/usr/bin/env bash
# The report's main result on its global grid (issue 17, docs/results.md "The global grid"):
# the data (10/1/190), the CPU preset on Full_std and on Partial_std, the chosen network scored
# on all 190 test samples with the prior alone beside it and randomization (N = 1e4) on the
# first 4, and the report's skip-connection ordering on Partial_std with 3 seeds.
#   make global                      # or: bash benchmarks/global.sh [extra training overrides]
# Sequentially this is ~4 h on 2 CPU cores; docs/results.md ran the trainings two at a time.
# A GPU runs STEP=gpu: experiment=global (64 channels, 2e5 steps) instead of global_cpu.
set -euo pipefail
PY=${PY:-.venv/bin/python}
STORE=${GLOBAL_STORE:-sqlite:///mlflow.db}
PRESET=global_cpu
[[ "${STEP:-cpu}" == gpu ]] && PRESET=global
COMMON=(trainer.progress=false "logger.tracking_uri=$STORE")

"$PY" -m normcoef.generate dataset=full_std dataset.splits.train=10 dataset.splits.valid=1 \
  dataset.splits.test=190 workers="${WORKERS:-2}" progress=false

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

for standardization in full_std partial_std; do
  "$PY" -m normcoef.train "experiment=$PRESET" "dataset=$standardization" \
    "logger.run_name=$PRESET-$standardization" "${COMMON[@]}" "$@"
done

# CNN and prior on all 190 test samples, randomization beside them on the first 4 (~144 s
# each on one core); metrics, table and figures go to the Full_std run.
"$PY" -m normcoef.evaluate "$(run_id "$PRESET-full_std")" --tracking-uri "$STORE" \
  --max-samples 190 --randomization-max-samples 4 --progress
"$PY" -m normcoef.evaluate "$(run_id "$PRESET-partial_std")" --tracking-uri "$STORE" \
  --max-samples 190 -n 0

# The report's Table 4 on the grid it was made on: no skips vs concatenating skips on
# Partial_std, 3 seeds, at a CPU scale (16 channels, 500 steps, 20 test samples).
"$PY" -m normcoef.train -m experiment=skip_connections model=cnn,skip_concat trainer.seed=1,2,3 \
  experiment_name=skip_connections_global model.channels=16 trainer.steps=500 \
  trainer.eval_every=50 trainer.checkpoint_every=500 dataset.splits.test=20 \
  trainer.num_threads=1 "${COMMON[@]}"
"$PY" -m normcoef.report experiment=skip_connections experiment_name=skip_connections_global \
  "logger.tracking_uri=$STORE"
