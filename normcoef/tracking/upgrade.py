"""Stores made by an older MLflow or Optuna: upgraded in place after a backup, or refused in one
line that gives the upgrade command; never a traceback, never a silent change.

A newer MLflow upgrades an older SQLite store by itself as it opens it, with no backup (it finds
the tables of its newer migrations missing and runs them all); a newer Optuna refuses an older
study with a RuntimeError. Both are checked here first, by the schema revision Alembic records
in each store:

- a SQLite file is copied beside itself (``mlflow.db`` -> ``mlflow.db.bak-<revision>``, through
  SQLite's backup API, under the store's file lock so that processes starting together upgrade
  it once) and then upgraded, with one line saying where the copy is;
- a database server's store is refused, naming ``mlflow db upgrade <uri>`` or ``optuna storage
  upgrade --storage <url>``: its backup is its administrator's (``pg_dump``), not a copy here;
- a store made by a newer release than the one installed is refused, naming the release to use.
"""

from __future__ import annotations

import logging
import sqlite3
import warnings
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from normcoef.tracking.sqlite_files import sqlite_file_lock, sqlite_path

log = logging.getLogger(__name__)


def backup_sqlite(path: Path, revision: str) -> Path:
    """A consistent copy of the SQLite file ``path`` beside it, named by the schema ``revision``
    it holds (``<name>.bak-<revision>``, then ``-2``, ``-3``... if taken)."""
    target = path.with_name(f"{path.name}.bak-{revision}")
    number = 2
    while target.exists():
        target = path.with_name(f"{path.name}.bak-{revision}-{number}")
        number += 1
    with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target


@contextmanager
def quietly() -> Iterator[None]:
    """No chatter from the check or a migration: Alembic's and MLflow's INFO lines (Optuna's
    migrations configure logging from their alembic.ini when the root logger has no handler)
    and the deprecation warnings that old rows raise as they are rewritten. The one line about
    an upgrade is ``upgraded_or_refused``'s."""
    root = logging.getLogger()
    placeholder = logging.NullHandler()
    # logging.disable, not the loggers' levels: MLflow sets Alembic's level as it is imported
    # (perhaps inside this block), which a restored level would undo.
    disabled = root.manager.disable
    root.addHandler(placeholder)
    logging.disable(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)
        root.removeHandler(placeholder)


def current_revision(url: str) -> str | None:
    """The Alembic revision recorded in the store at ``url``; None for a new or empty store."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    path = sqlite_path(url)
    if url.startswith("sqlite") and (path is None or not path.exists()):
        return None  # in memory, or not made yet: nothing to upgrade (and nothing to create)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgraded_or_refused(
    url: str, *, made_by: str, revisions: list[str], upgrade: Callable[[], None], command: str
) -> str | None:
    """The common rule (module docstring) for a store at ``url`` of the library ``made_by``,
    whose known schema ``revisions`` run newest first. None when the store is current, new, or
    upgraded here; else the refusal line. ``upgrade`` upgrades it in place; ``command`` is the
    user's own upgrade command."""
    current = current_revision(url)
    if current is None or current == revisions[0]:
        return None
    if current not in revisions:
        return (
            f"{url} was made by a newer {made_by} than the one installed (schema {current}): "
            f"install that {made_by} (pip install -U {made_by.lower()})"
        )
    path = sqlite_path(url)
    if path is None:
        return (
            f"{url} was made by an older {made_by} (schema {current}): back it up, then run "
            f"{command}"
        )
    with sqlite_file_lock(url):
        if current_revision(url) == revisions[0]:
            return None  # another process upgraded it while this one waited
        kept = backup_sqlite(path, current)
        upgrade()
    log.warning(
        "%s: upgraded from an older %s's schema; the store as it was is kept in %s",
        path,
        made_by,
        kept,
    )
    return None


def mlflow_store_problem(uri: str) -> str | None:
    """An MLflow tracking store (a database URI) made by an older MLflow: upgraded after a
    backup (SQLite) or refused (module docstring). None when it can be opened as it is now."""
    with quietly():  # Alembic's INFO lines as it loads ("setup plugin ...", "Context impl")
        return _mlflow_store_problem(uri)


def _mlflow_store_problem(uri: str) -> str | None:
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config, _upgrade_db
    from sqlalchemy import create_engine

    script = ScriptDirectory.from_config(_get_alembic_config(db_url=""))
    revisions = [revision.revision for revision in script.walk_revisions()]

    def upgrade() -> None:
        engine = create_engine(uri)
        try:
            _upgrade_db(engine)
        finally:
            engine.dispose()

    return upgraded_or_refused(
        uri,
        made_by="MLflow",
        revisions=revisions,
        upgrade=upgrade,
        command=f"mlflow db upgrade {uri}",
    )


def optuna_storage_problem(url: str) -> str | None:
    """An Optuna RDB storage made by an older Optuna (2.10's, before issue 27): upgraded after
    a backup (SQLite) or refused (module docstring). None when Optuna can open it now."""
    with quietly():
        return _optuna_storage_problem(url)


def _optuna_storage_problem(url: str) -> str | None:
    if current_revision(url) is None:
        return None
    from optuna.storages import RDBStorage

    # Neither creates tables nor checks the schema: the store stays as it is until upgraded.
    storage = RDBStorage(url, skip_compatibility_check=True, skip_table_creation=True)
    try:
        return upgraded_or_refused(
            url,
            made_by="Optuna",
            revisions=storage.get_all_versions(),
            upgrade=storage.upgrade,
            command=f"optuna storage upgrade --storage {url}",
        )
    finally:
        storage.engine.dispose()
