"""Generate a data set with exact normalization coefficients, resumably."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np
from tqdm import tqdm

from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import Grid, make_grid
from normcoef.data.info import DatasetInfo
from normcoef.data.standardization import Mode, compute_statistics
from normcoef.data.storage import (
    GRID,
    METADATA,
    SPLITS,
    STATISTICS,
    DamagedFileError,
    DatasetError,
    load_split,
    read_json,
    read_sample,
    sample_paths,
    save_npz,
    write_json,
    write_sample,
)
from normcoef.physics import DiffusionOperator, exact_normalization
from normcoef.physics.normalization import DEFAULT_TOLERANCE
from normcoef.physics.solvers import resolve_device

FORMAT = "normcoef-dataset/1"
MIN_GRID_CELLS = 4
# Probing's largest relative error on Γ, measured against brute force on 48x96 python grids
# (M = 4 and 10; length scales up to 4 and 8 cells), was below tol / 3 (1e-5 at tol = 1e-4,
# 3 % at tol = 0.1, 59 % at tol = 5); on three global 292x360 samples against tol = 1e-9 it
# was 3.5e-7 at tol = 2e-6 and 2.5e-6 at 1e-5 (docs/performance.md). tol <= 1e-4 keeps the
# "exact" targets over 100x more accurate than the randomization baseline the networks are
# compared with (N = 1e4: 0.7 % on Γ, sqrt(2/N)/2).
MAX_TOLERANCE = 1e-4


@dataclass
class GenerationSpec:
    """Everything that determines a generated data set (and so its files).

    The one schema of these keys: ``normcoef.config.DatasetConfig`` extends it with what only
    training reads, so the defaults here are the config's (splits sized for a CPU).
    """

    grid: str = "python"
    height: int | None = None
    width: int | None = None
    seed: int = 0
    splits: dict[str, int] = field(default_factory=lambda: {"train": 8, "valid": 2, "test": 4})
    fields: FieldParameters = field(default_factory=FieldParameters)
    tolerance: float = DEFAULT_TOLERANCE
    """Probing's bound on the relative variance error. 1e-8 (Γ within ~1e-9) by default;
    the global presets use 2e-6, which keeps Γ within 1e-6 of brute force at 0.6x the cost."""

    def __post_init__(self) -> None:
        """Messages start with the field name; ``normcoef.config.validate`` adds the key path."""
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None and value < MIN_GRID_CELLS:
                raise ValueError(
                    f"{name}={value}: must be >= {MIN_GRID_CELLS}, or null for the grid's default"
                )
        if self.seed < 0:
            raise ValueError(f"seed={self.seed}: must be >= 0")
        for split, size in self.splits.items():
            if split not in SPLITS:
                raise ValueError(f"splits.{split}: unknown split; use {', '.join(SPLITS)}")
            least = 1 if split == "train" else 0  # a negative size would slice samples off
            if size < least:
                raise ValueError(f"splits.{split}={size}: must be >= {least}")
        if "train" not in self.splits:
            raise ValueError("splits.train: missing; the train split needs at least one sample")
        if not 0 < self.tolerance <= MAX_TOLERANCE:
            raise ValueError(
                f"tolerance={self.tolerance}: must be in (0, {MAX_TOLERANCE:.0e}] so that the "
                "targets stay exact (Γ errs by up to about tolerance / 3)"
            )

    def describe(self) -> dict:
        """Metadata that must match for an existing directory to be resumed."""
        return {
            "format": FORMAT,
            "grid": self.grid,
            "height": self.height,
            "width": self.width,
            "seed": self.seed,
            "fields": self.fields.described(),
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


def generate_sample(
    grid: Grid, spec: GenerationSpec, index: int, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(fields (3, H, W), exact γ (H, W)) of sample ``index``; ``device`` runs the solves
    (cpu or cuda: the same γ to rounding)."""
    fields = make_fields(grid, spec.fields, spec.seed, index)
    op = DiffusionOperator(fields, grid.mask, spec.fields.steps, grid.periodic_x, grid.periodic_y)
    return fields, exact_normalization(op, spec.tolerance, device=device)


def _leave_interrupts_to_the_parent() -> None:
    """Worker initializer: Ctrl-C reaches the whole process group; the parent handles it
    (stopping the workers) rather than every worker printing a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _samples(
    grid: Grid, spec: GenerationSpec, indices: list[int], workers: int, device: str
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Samples in order of ``indices``, computed in ``workers`` processes when > 1.

    Samples are independent and seeded by (seed, index), so the numbers do not depend on
    ``workers``. Results come back in order and are written as they arrive: an interrupted
    run keeps every sample finished before the interruption, and stops its workers (queued
    samples are cancelled, running ones terminated) instead of leaving them computing.
    """
    if workers <= 1 or len(indices) <= 1:
        for index in indices:
            yield generate_sample(grid, spec, index, device)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(
        min(workers, len(indices)),
        mp_context=context,
        initializer=_leave_interrupts_to_the_parent,
    )
    try:
        # The parent's grid goes to the workers (a few hundred kB pickled): building the
        # global one loads a 1 GB land mask, which each worker would otherwise hold too.
        yield from pool.map(
            generate_sample,
            [grid] * len(indices),
            [spec] * len(indices),
            indices,
            [device] * len(indices),
        )
    except BaseException:  # KeyboardInterrupt, a failed sample, or the consumer stopping
        pool.shutdown(wait=False, cancel_futures=True)
        # The executor has no public way to stop a running task (before Python 3.14's
        # terminate_workers); its workers are the children started since ``before``.
        started = [p for p in multiprocessing.active_children() if p not in before]
        for process in started:
            process.terminate()
        for process in started:
            process.join()
        raise
    pool.shutdown()


def _resumable_spec(root: Path, spec: GenerationSpec) -> GenerationSpec:
    """The spec that finishes the data set at ``root``: ``spec``, or ``spec`` at the tighter
    tolerance the data set was made with (its samples are at least as exact as asked, and a
    data set keeps one tolerance). Refuses a directory that is not ours or holds another set.
    """
    existing = read_json(root / METADATA)
    if existing is None:
        if root.exists() and any(root.iterdir()):
            raise DatasetError(
                f"{root} is not empty and holds no {METADATA}: it is not a normcoef data set. "
                "Choose another dataset.root; nothing was written."
            )
        return spec
    made = existing.get("generator")
    if made == spec.describe() or not _sample_files(root):
        # Other parameters but no sample: what a run killed before its first sample left
        # (its own metadata and grid), nothing to keep; this run rewrites both.
        return spec
    tolerance = made.get("tolerance") if isinstance(made, dict) else None
    if isinstance(tolerance, float) and 0 < tolerance < spec.tolerance:
        tighter = dataclasses.replace(spec, tolerance=tolerance)
        if made == tighter.describe():
            print(
                f"note: {root} was made at tolerance {tolerance:g}, tighter than the "
                f"{spec.tolerance:g} asked; its missing samples use {tolerance:g} too",
                file=sys.stderr,
            )
            return tighter
    raise DatasetError(
        f"{root} holds a data set made with other parameters ({made}); "
        "choose another dataset.root or remove that directory. Nothing was overwritten."
    )


def _sample_files(root: Path) -> list[Path]:
    return [p for split in SPLITS for p in (root / split).glob("[XY]/*.npz")]


def _sample_is_intact(root: Path, split: str, sample_id: str, shape: tuple[int, int]) -> bool:
    """Whether both files of a sample exist and read back whole and valid, on ``shape``.

    A file cut short or corrupted (a killed copy, a full disk) is reported and rewritten,
    never trusted: each file is read in full, its checksums verified.
    """
    if not all(path.exists() for path in sample_paths(root, split, sample_id)):
        return False
    try:
        _, gamma = read_sample(root, split, sample_id)
        if gamma.shape != shape:
            raise DatasetError(
                f"{sample_paths(root, split, sample_id)[1]}: γ {gamma.shape} is not on the "
                f"{shape} grid"
            )
    except DatasetError as error:
        reason = f"{error.path} {error.problem}" if isinstance(error, DamagedFileError) else error
        print(f"warning: {reason}; regenerating sample {split}/{sample_id}", file=sys.stderr)
        return False
    return True


def _remove_created(created: list[Path]) -> None:
    """Remove the files and (empty) directories of ``created``, deepest first."""
    for path in sorted(created, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir():
            with contextlib.suppress(OSError):  # not empty: holds something not ours
                path.rmdir()
        else:
            path.unlink(missing_ok=True)


def generate_dataset(
    root: Path,
    spec: GenerationSpec,
    progress: bool = True,
    workers: int = 1,
    device: str = "cpu",
) -> dict:
    """Write every missing or damaged sample of ``spec`` under ``root``; return the metadata.

    ``workers`` > 1 computes samples in that many processes (one BLAS thread each). A run
    that fails before its first sample removes what it created (its metadata would make the
    corrected command refuse the directory); finished samples are always kept. ``device``
    (auto, cpu or cuda) runs the solves; auto takes CUDA when there is one.
    """
    if workers < 1:
        raise ValueError(f"workers={workers}: must be >= 1")
    root = Path(root)
    spec = _resumable_spec(root, spec)
    device = resolve_device(device)  # once here: workers on the CPU never import torch
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
    ours = [*root.parents, root, root / METADATA, root / GRID, root / STATISTICS]
    ours += [root / split / part for split in SPLITS for part in ("", "X", "Y")]
    created = [path for path in ours if not path.exists()]
    written = 0
    try:
        root.mkdir(parents=True, exist_ok=True)
        write_json(root / METADATA, metadata)
        save_npz(root / GRID, mask=grid.mask, lat=grid.lat, lat_north=grid.lat_north, lon=grid.lon)
        todo = [
            s for s in sample_ids(spec.splits) if not _sample_is_intact(root, *s[:2], grid.shape)
        ]
        samples = _samples(grid, spec, [index for _, _, index in todo], workers, device)
        bar = tqdm(samples, total=len(todo), desc=f"generate {root}", disable=not progress)
        for (split, sample_id, _), (fields, gamma) in zip(todo, bar, strict=True):
            write_sample(root, split, sample_id, fields, gamma)
            written += 1
    except BaseException:
        if written == 0 and not _sample_files(root):
            _remove_created(created)
        raise
    write_json(root / STATISTICS, dataset_statistics(root))
    return metadata


def dataset_statistics(root: Path) -> dict:
    """Input statistics of the training split for each standardization, and γ's (ocean)."""
    train = load_split(root, "train")
    images, masks = list(train.fields), list(train.ocean)
    stats = {mode: compute_statistics(images, masks, mode).to_dict() for mode in get_args(Mode)}
    target = compute_statistics([g[None] for g in train.gamma], masks, "partial")
    return {"inputs": stats, "target": target.to_dict(), "train_ids": train.ids}


def summary(root: Path) -> str:
    """A few lines describing a data set on disk."""
    root = Path(root)
    info = DatasetInfo.load(root)
    stats = read_json(root / STATISTICS) or dataset_statistics(root)
    lines = [f"data set {root}"]
    if info.is_generated and info.shape is not None and info.ocean_fraction is not None:
        (height, width), ocean = info.shape, info.ocean_fraction
        lines.append(
            f"  grid {info.grid} {height}x{width}, ocean {ocean:.1%}, M = {info.steps}, "
            f"seed {info.seed}"
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
