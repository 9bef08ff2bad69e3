"""SQLite stores as files: the database file of a URI, and the lock beside it that processes
starting together take around a first connection or an upgrade (``normcoef.tracking.store``,
``normcoef.tracking.upgrade``)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for other URIs and in-memory SQLite."""
    if not uri.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url  # only SQLite URIs need SQLAlchemy

    database = make_url(uri).database
    return Path(database) if database and database != ":memory:" else None


@contextmanager
def sqlite_file_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` for a SQLite URI (nothing for other URIs)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
