"""Tracking stores: where MLflow writes, and SQLite stores (MLflow's, Optuna's) opened safely
by processes that start together.

The embedded store is ``sqlite:///mlflow.db`` in the working directory; browse it with
``mlflow ui --backend-store-uri sqlite:///mlflow.db``. ``logger.tracking_uri`` points at a
tracking server instead (``http://host:5000``), which several hosts can share.

MLflow creates the schema of a new SQLite store on its first connection, with no lock across
processes: two runs of a ``local_parallel`` sweep starting on a new ``mlflow.db`` race on the
``CREATE TABLE`` and Alembic migrations, and one dies ("table ... already exists", "duplicate
column name"). Optuna's RDB storage does the same for a new study database. Holding an
exclusive ``fcntl`` lock on ``<db>.lock`` around the first connection makes one process create
the schema while the others wait and then find it. SQLite on one host with a local disk only:
``flock`` is not reliable over NFS; several hosts need a server (docs/sweeps.md).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig

from normcoef.tracking.sqlite_files import sqlite_file_lock, sqlite_path

log = logging.getLogger(__name__)

# Attempts and first pause of the retry on a busy SQLite file (doubling each time).
LOCKED_RETRIES = 5
LOCKED_FIRST_PAUSE_S = 0.5
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The store runs go to: ``uri`` (``logger.tracking_uri``, ``--tracking-uri``, a sweep's
    record), else the embedded default. The one place that rule is written."""
    return uri or DEFAULT_TRACKING_URI


def configured_tracking_uri(logger: DictConfig) -> str:
    """The store of a training config's ``logger`` group (``logger=none`` has no URI: the
    default, where a report or a sweep's parent would look)."""
    return resolve_tracking_uri(logger.get("tracking_uri"))


def store_exists(uri: str) -> bool:
    """False for an embedded SQLite store whose file is missing (MLflow would create it)."""
    path = sqlite_path(uri)
    return path is None or path.exists()


SERVER_TIMEOUT_S = 5.0
"""How long a run waits for a tracking server or database to answer before it is refused."""


def uri_scheme(uri: str) -> str:
    """``sqlite``, ``postgresql+psycopg``, ``http``...; ``file`` for a bare path."""
    return uri.partition("://")[0] if "://" in uri else "file"


def tracking_store_problem(uri: str) -> str | None:
    """Why runs cannot be written to ``uri`` (a SQLite file that cannot be written, a file
    store MLflow no longer writes, a server or database that does not answer, a database
    driver not installed, a database store of an older MLflow), on one line with the fix; None
    when they can (a SQLite store of an older MLflow is upgraded after a backup). Checked before
    a run opens, so a refused command leaves the store as it was."""
    scheme = uri_scheme(uri)
    if scheme.startswith("sqlite"):
        return sqlite_store_problem(uri) or outdated_store_problem(uri)
    if scheme == "file":
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("1", "true"):
            return None
        return (
            f"logger.tracking_uri={uri} is a folder (MLflow's file store), which MLflow no "
            "longer writes to: use a database, e.g. logger.tracking_uri=sqlite:///mlflow.db"
        )
    if scheme in ("http", "https"):
        return server_problem(uri)
    if scheme in ("databricks", "uc"):
        return None  # hosted stores: MLflow's own credentials decide
    return database_problem(uri) or outdated_store_problem(uri)


class OutdatedStoreError(ValueError):
    """A database store of an older MLflow, which MLflow would upgrade with no backup."""


def outdated_store_problem(uri: str) -> str | None:
    """A store made by an older MLflow: upgraded after a backup, or refused in one line
    (``normcoef.tracking.upgrade``). A server (``http://``) or folder keeps its own schema."""
    from normcoef.tracking.upgrade import mlflow_store_problem

    scheme = uri_scheme(uri)
    if scheme in ("file", "http", "https", "databricks", "uc"):
        return None
    return mlflow_store_problem(uri)


def sqlite_store_problem(uri: str) -> str | None:
    """A SQLite store needs a writable file, or a writable folder to create it in."""
    path = sqlite_path(uri)
    if path is None:
        return None
    if path.exists():
        if path.is_dir() or not os.access(path, os.R_OK | os.W_OK):
            return (
                f"logger.tracking_uri={uri}: {path} is not a file this user can write; choose "
                "another store"
            )
        return None
    folder = next((p for p in path.absolute().parents if p.exists()), Path("/"))
    try:  # a real file: permissions say yes to root on read-only and virtual file systems
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as error:
        return (
            f"logger.tracking_uri={uri}: cannot create {path} ({error.strerror or error} in "
            f"{folder}); choose another store"
        )


def server_problem(uri: str) -> str | None:
    """A tracking server must answer (any HTTP status will do: it is there)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=SERVER_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return (
            f"logger.tracking_uri={uri}: the MLflow server does not answer ({reason}); start it "
            "(docs/reviewing.md) or choose another store"
        )


def database_problem(uri: str) -> str | None:
    """A database store needs its SQLAlchemy driver, and the database must answer."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        engine = create_engine(uri)
    except (ArgumentError, NoSuchModuleError) as error:
        return f"logger.tracking_uri={uri}: not a store MLflow knows ({one_line_error(error)})"
    except ImportError as error:
        return (
            f"logger.tracking_uri={uri} needs the database driver {error.name or error}: "
            "pip install 'normcoef[cluster]' (PostgreSQL), or the driver of your database"
        )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        return (
            f"logger.tracking_uri={engine.url!r}: the database does not answer "
            f"({one_line_error(error)})"
        )
    finally:
        engine.dispose()
    return None


def one_line_error(error: BaseException) -> str:
    """The first line of an exception's message (drivers add SQL and links below it)."""
    return (str(getattr(error, "orig", None) or error).strip().splitlines() or [""])[0]


def is_database_locked(error: Exception) -> bool:
    """MLflow reports SQLite's busy file as ``TEMPORARILY_UNAVAILABLE`` (an OperationalError)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE, ErrorCode

    return (
        isinstance(error, MlflowException)
        and error.error_code == ErrorCode.Name(TEMPORARILY_UNAVAILABLE)
        and "database is locked" in str(error)
    )


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
"""The experiment tag the MLflow UI (3.x) reads to open an experiment on its model-training
view (runs, metrics, charts) rather than the GenAI one (traces, evaluations)."""


REVIEW_VIEW_KEY = "normcoef"
"""The share key of the experiment's review view: ``<UI>/#/experiments/<id>/runs?
viewStateShareKey=normcoef`` opens the runs table with the columns below. The MLflow UI shows
no metric or param column by default and keeps a user's columns in their browser only; a view
shared through an experiment tag is the one server-side way to open it with numbers."""
REVIEW_COLUMNS = (
    "attributes.`Duration`",
    *(
        f"metrics.`{key}`"
        for key in (
            "best/val/eps_q",
            "test/cnn/eps_q",
            "test/cnn/eps_max",
            "test/cnn/eps_mean",
            "test/randomization/eps_q",
        )
    ),
    *(
        f"params.`{key}`"
        for key in ("model", "activation", "loss", "target", "model.layers", "optimizer.lr")
    ),
)
REVIEW_VIEW_TAG = f"mlflow.sharedViewState.{REVIEW_VIEW_KEY}"
REVIEW_WIDTHS = {"metrics": 150, "params": 110, "attributes": 90}
"""Pixels per column: MLflow 3.17's default cuts ``test/cnn/eps_max`` and ``test/cnn/eps_mean``
alike to ``test/cnn/eps_m``; the view's ``columnWidths`` apply to the columns of its
``columnOrder``."""
REVIEW_VIEW = json.dumps(
    {
        "selectedColumns": list(REVIEW_COLUMNS),
        "columnOrder": list(REVIEW_COLUMNS),
        "columnWidths": {
            column: REVIEW_WIDTHS[column.partition(".")[0]] for column in REVIEW_COLUMNS
        },
    }
)


def experiment_tags_to_set(tags: dict[str, str]) -> dict[str, str]:
    """The experiment tags normcoef sets that ``tags`` lacks or holds otherwise: the
    model-training layout and the review view."""
    wanted = {EXPERIMENT_KIND_TAG: MODEL_TRAINING, REVIEW_VIEW_TAG: REVIEW_VIEW}
    return {key: value for key, value in wanted.items() if tags.get(key) != value}


def review_url(ui: str, experiment_id: str) -> str:
    """The runs table of the experiment in the MLflow UI at ``ui``, with the review columns."""
    runs = f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs"
    # workflowType: the model-training layout (sidebar and run pages), which the UI otherwise
    # sets only when the experiment is opened from the experiments list.
    return f"{runs}?viewStateShareKey={REVIEW_VIEW_KEY}&workflowType=machine_learning"


def prepare_tracking_store(uri: str, experiment: str) -> str:
    """Point MLflow at ``uri``, create its schema and ``experiment`` if new; the experiment id.
    A store of an older MLflow is upgraded after a backup (SQLite) or refused
    (``OutdatedStoreError``, one line).

    Under the lock, so processes starting together on one new SQLite store neither race on the
    schema nor both create the experiment. MLflow already waits 20 s on a busy SQLite file
    (``PRAGMA busy_timeout``); when many writers exceed that, it raises "database is locked",
    which is retried here a few times before giving up.
    """
    import mlflow

    if (problem := outdated_store_problem(uri)) is not None:  # before the lock: it takes it
        raise OutdatedStoreError(problem)
    mlflow.set_tracking_uri(uri)
    pause = LOCKED_FIRST_PAUSE_S
    attempt = 1
    while True:
        try:
            with sqlite_file_lock(uri):
                found = mlflow.set_experiment(experiment)
                for key, value in experiment_tags_to_set(found.tags).items():
                    mlflow.MlflowClient(uri).set_experiment_tag(found.experiment_id, key, value)
                return found.experiment_id
        except Exception as error:
            if attempt == LOCKED_RETRIES or not is_database_locked(error):
                raise
        log.warning("MLflow store %s is locked; retrying in %.1f s", uri, pause)
        time.sleep(pause)
        pause *= 2
        attempt += 1
