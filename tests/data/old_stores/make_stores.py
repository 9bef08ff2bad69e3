"""Makes the stores of tests/test_store_upgrade.py with the stack normcoef pinned before issue 27
(MLflow 3.16.1, Optuna 2.10.1, SQLAlchemy 1.4, alembic 1.13): a user's mlflow.db and Optuna
study of that day, as the new stack finds them.

    python3 -m venv /tmp/oldstack
    /tmp/oldstack/bin/pip install mlflow==3.16.1 optuna==2.10.1 "sqlalchemy<2" "alembic<1.14"
    /tmp/oldstack/bin/python tests/data/old_stores/make_stores.py tests/data/old_stores

Writes mlflow.db (experiment ``normcoef``: a sweep's parent run and a nested job with params,
metrics and a tag) and optuna.db (study ``old_search``: two COMPLETE trials, one FAIL), and
versions.json naming the versions that made them.
"""

import json
import sys
from pathlib import Path

import mlflow
import optuna
import sqlalchemy

folder = Path(sys.argv[1])
for name in ("mlflow.db", "optuna.db"):
    (folder / name).unlink(missing_ok=True)

mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
mlflow.set_experiment("normcoef")
with mlflow.start_run(run_name="sweep") as parent:
    mlflow.set_tag("normcoef.best_run", "job")
    with mlflow.start_run(run_name="elu", nested=True):
        mlflow.log_params({"activation": "elu", "trainer.steps": 10})
        for step, loss in enumerate((1.0, 0.5, 0.25)):
            mlflow.log_metric("train/loss", loss, step=step)
        mlflow.log_metric("test/cnn/eps_q", 0.0474)

study = optuna.create_study(
    study_name="old_search", storage=f"sqlite:///{folder / 'optuna.db'}", direction="minimize"
)
for value in (0.3, 0.2):
    trial = study.ask({"lr": optuna.distributions.LogUniformDistribution(1e-4, 1e-2)})
    study.tell(trial, value)
study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)

versions = {p.__name__: p.__version__ for p in (mlflow, optuna, sqlalchemy)}
(folder / "versions.json").write_text(json.dumps(versions, indent=1) + "\n")
print(versions)
