"""What tests share besides fixtures: the tiny data set's spec, its config overrides, the
Hydra compose call, and reference paths the package itself no longer takes.

``from helpers import ...`` works because pytest puts tests/ on ``sys.path`` (rootdir
conftest, the default ``prepend`` import mode). Fixtures live in conftest.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from normcoef.config import CONF_DIR, register_configs
from normcoef.data.fields import FieldParameters
from normcoef.data.generation import GenerationSpec
from normcoef.data.standardization import ChannelStatistics, Mode, standardize
from normcoef.data.transforms import transform_cells, transform_fields
from normcoef.physics.geometry_prior import GeometryTable

# --- the tiny data set and runs on it ----------------------------------------------------


def tiny_spec(test: int | None = 2, steps: int | None = None) -> GenerationSpec:
    """The tiny data set: a 16x24 python grid, 3 train, 1 valid and ``test`` samples (no test
    split when None), M = ``steps`` diffusion steps (FieldParameters' default when None)."""
    splits = {"train": 3, "valid": 1} if test is None else {"train": 3, "valid": 1, "test": test}
    fields = FieldParameters() if steps is None else FieldParameters(steps=steps)
    return GenerationSpec(grid="python", height=16, width=24, splits=splits, fields=fields)


def tiny_overrides(
    *, test: int = 2, layers: int = 2, steps: int = 3, eval_every: int = 1
) -> list[str]:
    """conf/train.yaml overrides of a CPU run of seconds on the tiny data set (3/1/``test``
    samples; ``dataset.root`` is the caller's): a ``layers``-layer 4-channel CNN trained for
    ``steps`` steps, validated every ``eval_every``, without a progress bar."""
    return [
        "dataset.height=16",
        "dataset.width=24",
        f"dataset.splits={{train: 3, valid: 1, test: {test}}}",
        f"model.layers={layers}",
        "model.channels=4",
        f"trainer.steps={steps}",
        f"trainer.eval_every={eval_every}",
        "trainer.progress=false",
        "trainer.device=cpu",
    ]


def compose_config(name: str, *overrides: str, hydra: bool = False) -> DictConfig:
    """conf/``name``.yaml composed with ``overrides`` as the entry point would, without running
    it; ``hydra=True`` keeps the ``hydra`` node (run directories, choices)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        return compose(name, overrides=list(overrides), return_hydra_config=hydra)


# --- test-only reference transforms ------------------------------------------------------


def destandardize(image: np.ndarray, stats: ChannelStatistics) -> np.ndarray:
    """Inverse of ``standardize`` on the cells it did not zero."""
    return image * stats.std[:, None, None] + stats.mean[:, None, None]


def select_channels(stats: ChannelStatistics, channels: list[int]) -> ChannelStatistics:
    """The statistics of some channels only, in the order given."""
    return ChannelStatistics(stats.mean[channels], stats.std[channels])


def transform_standardized(
    name: str,
    image: np.ndarray,
    mask: np.ndarray,
    stats: ChannelStatistics,
    mode: Mode,
    periodic_x: bool = True,
    periodic_y: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Transform a standardized input (C, H, W); return it and the transformed mask.

    The reference for augmenting standardized images the long way: each channel is
    standardized with its own statistics, and quarter turns move A_j's values into the A_i
    channel: so destandardize, transform the physical fields, standardize again (report
    section 6.1). Partial standardization erased land, but a flip moves the face south (west)
    of an ocean cell onto its north (east) face, and that face may belong to a land cell:
    faces touching land are 0 by convention, so land A_i, A_j are restored as 0.
    """
    raw = destandardize(np.asarray(image, dtype=np.float64), stats)
    mask = np.asarray(mask, dtype=bool)
    if mode == "partial":
        raw[:2, ~mask] = 0.0
    moved = transform_fields(name, raw, periodic_x, periodic_y)
    moved_mask = transform_cells(name, mask)
    return standardize(moved, stats, mode, moved_mask), moved_mask


def transform_standardized_tensor(
    name: str,
    image: torch.Tensor,
    mask: torch.Tensor,
    stats: ChannelStatistics,
    mode: Mode,
    periodic_x: bool = True,
    periodic_y: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``transform_standardized`` for torch tensors (same dtype and device back)."""
    moved, moved_mask = transform_standardized(
        name,
        image.detach().cpu().numpy(),
        mask.detach().cpu().numpy(),
        stats,
        mode,
        periodic_x,
        periodic_y,
    )
    return torch.from_numpy(moved).to(image), torch.from_numpy(moved_mask).to(mask)


def count_table_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one each time a geometry table is built (not read) in the test."""
    built: list[int] = []
    build = GeometryTable.build
    monkeypatch.setattr(
        GeometryTable, "build", classmethod(lambda cls, *a, **k: built.append(1) or build(*a, **k))
    )
    return built


# --- what a refused command prints -------------------------------------------------------


def one_error_line(stderr: str, prefix: str = "error: ", *, usage: bool = False) -> str:
    """The one line a refused command wrote to stderr, checked to be all it wrote: a traceback,
    a warning or a second message besides it fails. ``usage``: argparse's usage block (a
    ``usage: `` line and its indented continuations), which argparse prints before its error,
    comes first."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    if usage:
        assert lines and lines[0].startswith("usage: "), stderr
        lines = [line for line in lines[1:] if not line.startswith(" ")]
    assert len(lines) == 1 and lines[0].startswith(prefix), stderr
    return lines[0]
