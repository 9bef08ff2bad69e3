"""Generate a data set with exact normalization coefficients, resumably."""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import Grid, make_grid
from normcoef.data.standardization import MODES, compute_statistics
from normcoef.data.storage import (
    GRID,
    METADATA,
    SPLITS,
    STATISTICS,
    DatasetError,
    has_sample,
    load_split,
    read_json,
    write_json,
    write_sample,
)
from normcoef.physics import DiffusionOperator, exact_normalization

FORMAT = "normcoef-dataset/1"


@dataclass
class GenerationSpec:
    """Everything that determines a generated data set (and so its files)."""

    grid: str = "python"
    height: int | None = None
    width: int | None = None
    seed: int = 0
    splits: dict[str, int] = field(default_factory=lambda: {"train": 16, "valid": 4, "test": 8})
    fields: FieldParameters = field(default_factory=FieldParameters)
    tolerance: float = 1e-8

    def __post_init__(self) -> None:
        unknown = set(self.splits) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; use {SPLITS}")
        if any(n < 0 for n in self.splits.values()):
            raise ValueError(f"split sizes must be >= 0; got {self.splits}")
        if not self.splits.get("train"):
            raise ValueError("the train split needs at least one sample")

    def describe(self) -> dict:
        """Metadata that must match for an existing directory to be resumed."""
        return {
            "format": FORMAT,
            "grid": self.grid,
            "height": self.height,
            "width": self.width,
            "seed": self.seed,
            "fields": asdict(self.fields),
            "tolerance": self.tolerance,
        }


# Each split draws its sample indices from its own range, so that changing one split's size
# never renumbers another's samples (files on disk stay valid when a data set grows).
SPLIT_INDEX_BASE = {"train": 0, "valid": 1_000_000, "test": 2_000_000}


def sample_ids(splits: dict[str, int]) -> list[tuple[str, str, int]]:
    """(split, id, index) of every sample; ``index`` seeds the sample's fields."""
    return [
        (split, f"{k:05d}", SPLIT_INDEX_BASE[split] + k)
        for split in SPLITS
        for k in range(splits.get(split, 0))
    ]


def generate_sample(grid: Grid, spec: GenerationSpec, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(fields (3, H, W), exact γ (H, W)) of sample ``index``."""
    fields = make_fields(grid, spec.fields, spec.seed, index)
    op = DiffusionOperator(fields, grid.mask, spec.fields.steps, grid.periodic_x, grid.periodic_y)
    return fields, exact_normalization(op, spec.tolerance)


@functools.lru_cache(maxsize=2)
def _cached_grid(name: str, height: int | None, width: int | None) -> Grid:
    return make_grid(name, height, width)


def _generate_in_worker(spec: GenerationSpec, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Worker-process entry: builds the grid once per process (the global one takes ~5 s)."""
    return generate_sample(_cached_grid(spec.grid, spec.height, spec.width), spec, index)


def _samples(
    grid: Grid, spec: GenerationSpec, indices: list[int], workers: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Samples in order of ``indices``, computed in ``workers`` processes when > 1.

    Samples are independent and seeded by (seed, index), so the numbers do not depend on
    ``workers``. Results come back in order and are written as they arrive: an interrupted
    run keeps every sample finished before the interruption.
    """
    if workers <= 1 or len(indices) <= 1:
        for index in indices:
            yield generate_sample(grid, spec, index)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch
    with ProcessPoolExecutor(min(workers, len(indices)), mp_context=context) as pool:
        yield from pool.map(_generate_in_worker, [spec] * len(indices), indices)


def _check_resumable(root: Path, spec: GenerationSpec) -> None:
    existing = read_json(root / METADATA)
    if existing is None:
        if root.exists() and any(root.iterdir()):
            raise DatasetError(
                f"{root} is not empty and holds no {METADATA}: it is not a normcoef data set. "
                "Choose another dataset.root; nothing was written."
            )
        return
    if existing.get("generator") != spec.describe():
        raise DatasetError(
            f"{root} holds a data set made with other parameters ({existing.get('generator')}); "
            "choose another dataset.root or remove that directory. Nothing was overwritten."
        )


def generate_dataset(
    root: Path, spec: GenerationSpec, progress: bool = True, workers: int = 1
) -> dict:
    """Write every missing sample of ``spec`` under ``root``; return the metadata.

    ``workers`` > 1 computes samples in that many processes (one BLAS thread each).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    root = Path(root)
    _check_resumable(root, spec)
    grid = make_grid(spec.grid, spec.height, spec.width)
    metadata = {
        "generator": spec.describe(),
        "splits": spec.splits,
        "shape": list(grid.shape),
        "ocean_fraction": float(grid.mask.mean()),
        "periodic_x": grid.periodic_x,
        "periodic_y": grid.periodic_y,
        "steps": spec.fields.steps,
    }
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / METADATA, metadata)
    np.savez_compressed(
        root / GRID, mask=grid.mask, lat=grid.lat, lat_north=grid.lat_north, lon=grid.lon
    )
    todo = [s for s in sample_ids(spec.splits) if not has_sample(root, s[0], s[1])]
    samples = _samples(grid, spec, [index for _, _, index in todo], workers)
    bar = tqdm(samples, total=len(todo), desc=f"generate {root}", disable=not progress)
    for (split, sample_id, _), (fields, gamma) in zip(todo, bar, strict=True):
        write_sample(root, split, sample_id, fields, gamma)
    write_json(root / STATISTICS, dataset_statistics(root))
    return metadata


def dataset_statistics(root: Path) -> dict:
    """Input statistics of the training split for each standardization, and γ's (ocean)."""
    train = load_split(root, "train")
    images, masks = list(train.fields), list(train.ocean)
    stats = {mode: compute_statistics(images, masks, mode).to_dict() for mode in MODES}
    target = compute_statistics([g[None] for g in train.gamma], masks, "partial")
    return {"inputs": stats, "target": target.to_dict(), "train_ids": train.ids}


def summary(root: Path) -> str:
    """A few lines describing a data set on disk."""
    root = Path(root)
    meta = read_json(root / METADATA) or {}
    stats = read_json(root / STATISTICS) or dataset_statistics(root)
    lines = [f"data set {root}"]
    if meta:
        gen = meta["generator"]
        lines.append(
            f"  grid {gen['grid']} {meta['shape'][0]}x{meta['shape'][1]}, "
            f"ocean {meta['ocean_fraction']:.1%}, M = {meta['steps']}, seed {gen['seed']}"
        )
    for split in SPLITS:
        data = load_split(root, split)
        if len(data):
            g = data.gamma[data.ocean]
            lines.append(
                f"  {split:5s}: {len(data):4d} samples, γ in [{g.min():.4g}, {g.max():.4g}]"
            )
    lines.append(
        f"  γ (train, ocean): mean {stats['target']['mean'][0]:.4g}, "
        f"std {stats['target']['std'][0]:.4g}"
    )
    return "\n".join(lines)
