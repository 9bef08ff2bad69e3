#!/usr/bin/env bash
# Which Optuna sampler finds the better validation eps_Q in the same number of trials (issue 27;
# docs/sweeps.md "Samplers"): the smoke search's space (hparams_search=optuna_smoke: model,
# layers, activation, loss, log learning rate) on the smoke data, 60 steps a trial, TRIALS
# trials, SEEDS seeds per sampler, n_startup_trials=STARTUP for the model-based ones. Untracked
# (logger=none); one SQLite storage whose studies `make dashboard STUDY_STORAGE=...` shows.
# Prints one line per study (best value, trial of the best) and the median per sampler.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TRIALS=${TRIALS:-12}
SEEDS=${SEEDS:-"1 2"}
STARTUP=${STARTUP:-4}
OUT=${OUT:-multirun/samplers}
STORAGE=sqlite:///$OUT/samplers.db
mkdir -p "$OUT"
declare -A SAMPLERS=(
    [random]="hydra/sweeper/sampler=random"
    [tpe]="hydra/sweeper/sampler=tpe hydra.sweeper.sampler.n_startup_trials=$STARTUP"
    [tpe_multivariate]="hydra/sweeper/sampler=tpe hydra.sweeper.sampler.n_startup_trials=$STARTUP hydra.sweeper.sampler.multivariate=true hydra.sweeper.sampler.constant_liar=true"
    [gp]="hydra/sweeper/sampler=gp hydra.sweeper.sampler.n_startup_trials=$STARTUP"
)
for name in random tpe tpe_multivariate gp; do
    for seed in $SEEDS; do
        study=${name}_seed$seed
        # shellcheck disable=SC2086
        "$PY" -m normcoef.train -m hparams_search=optuna_smoke logger=none \
            trainer.steps=60 trainer.eval_every=20 trainer.checkpoint_every=60 \
            evaluation.randomization_samples=0 ${SAMPLERS[$name]} \
            hydra.sweeper.sampler.seed="$seed" hydra.sweeper.n_trials="$TRIALS" \
            hydra.sweeper.storage="$STORAGE" hydra.sweeper.study_name="$study" \
            hydra.sweep.dir="$OUT/$study" >"$OUT/$study.log" 2>&1 ||
            echo "$study failed: $OUT/$study.log" >&2
    done
done
"$PY" - "$STORAGE" <<'PY'
import statistics
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
best: dict[str, list[float]] = {}
for summary in optuna.get_all_study_summaries(sys.argv[1]):
    study = optuna.load_study(study_name=summary.study_name, storage=sys.argv[1])
    trial = study.best_trial
    print(f"{summary.study_name}: best val eps_Q {trial.value:.4g} at trial {trial.number}")
    best.setdefault(summary.study_name.rsplit("_seed", 1)[0], []).append(trial.value)
for name, values in best.items():
    print(f"{name}: median best {statistics.median(values):.4g} over {len(values)} seeds")
PY
