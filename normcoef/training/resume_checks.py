"""What a resumed run must share with its checkpoint besides the network's tensors
(``checkpoint.check_resumable``): the prior the weights correct, and the data they were fit
to. Each is refused in one line before a run opens."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from normcoef.data.info import DatasetInfo, fact_differences
from normcoef.data.priors import recorded_prior
from normcoef.data.torch_dataset import Standardizer
from normcoef.training.checkpoint import CheckpointError

STANDARDIZATION_KEYS = {
    "mode": "dataset.standardization",
    "distance_metric": "distance_map.metric",
    "distance_walls": "distance_map.walls",
    "target_mode": "target.name",
}
"""The standardizer's record of each setting, and the config key that sets it."""


def check_same_data(standardizer: Standardizer, state: dict, path: Path) -> None:
    """A run resumes on the data its weights were fit to: the same operator (M, periodicity),
    grid, standardization and statistics; on other data its next steps would fit another
    problem with inputs scaled for the first."""
    fix = "resume with the config and data set it was trained with (config.yaml beside it)"
    if "dataset" in state:
        trained = DatasetInfo.from_dict(state["dataset"])
        wrong, doubtful = fact_differences(trained, standardizer.info, "this run's data set")
        if wrong or doubtful:
            raise CheckpointError(f"cannot resume from {path}: {'; '.join(wrong + doubtful)}")
    stored, now = state.get("standardizer") or {}, standardizer.to_dict()
    for key, setting in STANDARDIZATION_KEYS.items():
        if stored.get(key, False) != now.get(key, False) and "inputs" in stored:
            raise CheckpointError(
                f"cannot resume from {path}: it was trained with {setting}="
                f"{stored.get(key, False)}, this config sets {now.get(key, False)}; {fix}"
            )
    for part in ("inputs", "target"):
        if part in stored and not _same_statistics(stored[part], now[part]):
            raise CheckpointError(
                f"cannot resume from {path}: its {part} statistics differ from this data set's "
                f"(another data set, or other samples of it); {fix}"
            )


def _same_statistics(stored: dict, now: dict) -> bool:
    """Equal within float32 rounding: the same samples give the same statistics."""
    pairs = [(np.asarray(stored[key]), np.asarray(now[key])) for key in ("mean", "std")]
    return all(a.shape == b.shape and np.allclose(a, b, rtol=1e-6, atol=0) for a, b in pairs)


def check_same_prior(standardizer: Standardizer, state: dict, path: Path) -> None:
    """A run resumes on the prior it was trained on: the weights correct that prior only."""
    stored = state.get("standardizer") or {}
    if "prior_stats" not in stored or not standardizer.uses_prior:
        return
    was = recorded_prior(stored.get("prior"))["name"]
    if was != standardizer.prior_name:
        raise CheckpointError(
            f"cannot resume from {path}: it was trained on prior={was}, this config uses "
            f"prior={standardizer.prior_name}; resume with prior={was}"
        )
