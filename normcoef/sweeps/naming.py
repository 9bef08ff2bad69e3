"""Folder names no other run takes, even one started in the same second or on another host.

Hydra's run folder was ``outputs/<date>/<HH-MM-SS>``: two trainings started in the same second
shared it, so one's ``best.pt`` and test metrics were the other's. A random suffix after the
timestamp keeps folders sorted by time and apart.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from omegaconf import OmegaConf

RESOLVER = "unique_id"


def unique_suffix() -> str:
    """Six random hex digits: a collision needs ~16 million runs started in one second."""
    return secrets.token_hex(3)


def timestamped_name(now: datetime | None = None) -> str:
    """``YYYY-MM-DD_HH-MM-SS_<suffix>``: sorts by start time, unique per call."""
    return f"{now or datetime.now():%Y-%m-%d_%H-%M-%S}_{unique_suffix()}"


def register_resolvers() -> None:
    """``${unique_id:}`` in configs (conf/train.yaml's ``hydra.run.dir`` and ``sweep.dir``).

    Cached like Hydra's ``${now:}``: one value per config, and Hydra copies the cache to the
    configs of a sweep's jobs, so workers of a parallel launcher resolve the same folder.
    """
    OmegaConf.register_new_resolver(RESOLVER, unique_suffix, use_cache=True, replace=True)
