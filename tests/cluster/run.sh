#!/usr/bin/env bash
# make test-cluster: installs the engines (apt) and the `cluster` extra (pip), starts the
# engines (tests/cluster/engines.sh), runs the scenarios of tests/cluster/ against them and
# stops the engines, also when a scenario fails or the run is interrupted. As root.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
ENGINES=tests/cluster/engines.sh
export NORMCOEF_CLUSTER_STATE=${NORMCOEF_CLUSTER_STATE:-/tmp/normcoef-cluster}

bash "$ENGINES" install
# The `cluster` extra (pyproject.toml), unless an earlier run installed it.
"$PY" -c "import hydra_plugins.hydra_submitit_launcher, psycopg" 2>/dev/null ||
    "$PY" -m pip install -q -e ".[dev,cluster]"
bash "$ENGINES" stop # what an earlier, killed run left behind
rm -rf "$NORMCOEF_CLUSTER_STATE"
mkdir -p "$NORMCOEF_CLUSTER_STATE"
trap 'bash "$ENGINES" stop' EXIT
trap 'exit 130' INT TERM # through the EXIT trap
bash "$ENGINES" start
"$PY" -m pytest tests/cluster "$@"
# The study lock on PostgreSQL, held by one thread while another waits (tests/test_optuna_parallel.py)
NORMCOEF_PG_URI=postgresql://postgres@127.0.0.1:${NORMCOEF_PG_PORT:-55432} \
    "$PY" -m pytest tests/test_optuna_parallel.py -k study_lock
