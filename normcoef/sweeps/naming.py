"""Folder names no other run takes, even one started in the same second or on another host.

Hydra's run folder was ``outputs/<date>/<HH-MM-SS>``: two trainings started in the same second
shared it, so one's ``best.pt`` and test metrics were the other's. A random suffix after the
timestamp keeps folders sorted by time and apart.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from omegaconf import OmegaConf

RESOLVER = "unique_id"
JOB_DIR_RESOLVER = "job_dir"
MAX_JOB_DIR_BYTES = 200
"""File systems cap a folder name at 255 bytes; a sweep over many keys exceeds it."""


def unique_suffix() -> str:
    """Six random hex digits: a collision needs ~16 million runs started in one second."""
    return secrets.token_hex(3)


def timestamped_name(now: datetime | None = None) -> str:
    """``YYYY-MM-DD_HH-MM-SS_<suffix>``: sorts by start time, unique per call."""
    return f"{now or datetime.now():%Y-%m-%d_%H-%M-%S}_{unique_suffix()}"


def job_dir_name(num: int | str, override_dirname: str) -> str:
    """``<job number>_<overrides>``, the sweep's job folder (conf/train.yaml ``sweep.subdir``).

    A ``/`` in a value (``dataset.root=data/x``) would nest folders, so it becomes ``_``; a
    name over ``MAX_JOB_DIR_BYTES`` is cut and ends with a hash of the whole overrides, so
    it stays unique. The job's overrides themselves live in its ``.hydra/`` files and tags.
    """
    name = f"{num}_{override_dirname}".replace("/", "_")
    encoded = name.encode()
    if len(encoded) <= MAX_JOB_DIR_BYTES:
        return name
    digest = hashlib.sha256(override_dirname.encode()).hexdigest()[:12]
    head = encoded[: MAX_JOB_DIR_BYTES - len(digest) - 1].decode(errors="ignore")
    return f"{head}_{digest}"


def register_resolvers() -> None:
    """``${unique_id:}`` in configs (conf/train.yaml's ``hydra.run.dir`` and ``sweep.dir``), and
    ``${job_dir:num,overrides}`` (its ``sweep.subdir``).

    Cached like Hydra's ``${now:}``: one value per config, and Hydra copies the cache to the
    configs of a sweep's jobs, so workers of a parallel launcher resolve the same folder.
    """
    OmegaConf.register_resolver(RESOLVER, unique_suffix, use_cache=True, replace=True)
    OmegaConf.register_resolver(JOB_DIR_RESOLVER, job_dir_name, replace=True)
