"""Import a data set in the original code's layout as a normcoef data set (docs/original-data.md).

Everything is written into a hidden sibling of the destination and renamed into place at the
end, so a failure (a bad file, statistics that do not fit, a failed verification) leaves no
half-written data set; the destination must not exist or be empty. The verification checks
every sample's pairing of fields and targets (``pairing``) and exact Γ of as many whole
samples as ``--verify-seconds`` allow.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from normcoef.data.generation import FORMAT, dataset_statistics
from normcoef.data.original import (
    Log,
    RawSample,
    Scaling,
    read_all,
    resolve_scaling,
    sample_mask,
    union_mask,
    unscale_sample,
)
from normcoef.data.pairing import check_pairings
from normcoef.data.storage import (
    GRID,
    METADATA,
    STATISTICS,
    DatasetError,
    new_directory_mode,
    save_npz,
    write_json,
    write_sample,
)
from normcoef.data.verification import DEFAULT_TOLERANCE, Settings, check_within

DEFAULT_VERIFY_SECONDS = 60
"""Time for exact Γ of whole samples after the first: ~6 samples of the 292x360 global grid
(9 s each, docs/performance.md), all of a small grid's."""
NOTHING_WRITTEN = "nothing was written; --verify 0 skips the checks"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _check_destination(src: Path, dst: Path) -> None:
    if not src.is_dir():
        raise DatasetError(f"source directory {src} does not exist")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise DatasetError(
            f"{dst} exists and is not an empty directory; choose a new destination "
            "(nothing was written)"
        )
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise DatasetError(f"the destination {dst} must lie outside the source {src}")


def shared_mask(
    samples: list[RawSample], scaling: Scaling, mask: np.ndarray | None, warn: Log
) -> np.ndarray | None:
    """The mask all samples share, where one is needed or given (None: each its own γ != 0)."""
    if mask is not None or scaling.mode != "minmax":
        return mask
    union = union_mask(samples)
    warn(
        "min-max scaling turned each minimum into 0, indistinguishable from land: the ocean is "
        "taken as the cells where any sample's γ is nonzero (one grid for all samples); give "
        "--mask grid.npz if the samples' land differs"
    )
    return union


def write_converted(
    tmp: Path,
    samples: list[RawSample],
    found: Scaling,
    common: np.ndarray | None,
    periodic: tuple[bool, bool],
    warn: Log,
) -> list[np.ndarray]:
    """Every sample unscaled, on our faces, written into ``tmp``; their ocean masks."""
    stray, masks = 0, []
    for sample in samples:
        ocean = sample_mask(sample, found, common, warn)
        fields, gamma, off_faces = unscale_sample(sample, found, ocean, periodic)
        stray += off_faces
        masks.append(ocean)
        write_sample(tmp, sample.split, sample.sample_id, fields, gamma)
    if stray:
        warn(
            f"{stray} face values were nonzero on faces that touch land in the original's "
            "south/west convention and were dropped; the data may already use north/east "
            "faces (see the verification)"
        )
    return masks


@dataclass(frozen=True)
class ConversionOptions:
    """How an original data set is read and checked (the convert command's flags).

    ``steps`` (M) and the periodicity describe the operator its γ were made with; ``scaling``
    (auto, standardize, min-max, none) and ``statistics`` (its ``dict_std_mean.txt``) say how
    to undo the inputs' scaling; ``mask``: the grid's ocean mask when γ != 0 cannot tell it;
    ``verify`` training samples are checked against their exact Γ (0: none) at ``tolerance``.
    """

    steps: int = 10
    scaling: str = "auto"
    statistics: str | Path | None = None
    mask: np.ndarray | None = None
    periodic_x: bool = True
    periodic_y: bool = False
    verify: int | None = None
    verify_seconds: float = DEFAULT_VERIFY_SECONDS
    tolerance: float = DEFAULT_TOLERANCE


def verify_converted(
    root: Path, options: ConversionOptions, ocean_everywhere: np.ndarray, note: Log
) -> None:
    """Refuse (one line) unless every sample's targets are its own (``check_pairings``) and
    whole samples' targets are their exact Γ (``check_within``); print what was checked.

    A pairing that fails for some samples is named at once; one that fails for all is a wrong
    setting (M, faces, scaling), which the whole-sample check diagnoses."""
    settings = Settings(options.steps, options.periodic_x, options.periodic_y)
    pairing = check_pairings(root, settings, options.tolerance, ocean_everywhere, note)
    if pairing.mismatched and not pairing.systematic:
        raise DatasetError(f"{pairing.refusal()} ({NOTHING_WRITTEN})")
    whole, total = check_within(
        root,
        settings,
        options.tolerance,
        at_most=options.verify,
        seconds=options.verify_seconds,
        progress=note,
    )
    if not whole.agrees:
        raise DatasetError(
            f"converted γ is not the exact Γ of the converted fields: {whole.verdict()} "
            f"({NOTHING_WRITTEN})"
        )
    if pairing.mismatched:  # every sample off at its cells, though whole samples agree
        raise DatasetError(f"{pairing.refusal()} ({NOTHING_WRITTEN})")
    note(pairing.summary())
    note(f"verified exact Γ on {len(whole.samples)} of {total} whole samples: {whole.verdict()}")


def _check_options(options: ConversionOptions) -> None:
    if options.steps < 4 or options.steps % 2:
        raise ValueError(f"--steps M must be even and >= 4; got {options.steps}")
    if options.verify is not None and options.verify < 0:
        raise ValueError(f"--verify must be >= 0 (0: no check); got {options.verify}")
    if not options.verify_seconds >= 0:
        raise ValueError(f"--verify-seconds must be >= 0; got {options.verify_seconds}")


def converted_metadata(
    src: Path,
    samples: list[RawSample],
    found: Scaling,
    masked_by: str,
    grid_mask: np.ndarray,
    options: ConversionOptions,
) -> dict:
    """metadata.json of the converted set; ``masked_by``: where its ocean came from."""
    return {
        "format": FORMAT,
        "converted": {
            "from": str(src.resolve()),
            "layout": "original (FolkeKS/DL-normalization): faces south/west, halo",
            "scaling_undone": found.mode,
            "statistics": found.source,
            "halo": list(samples[0].halo),
            "mask": masked_by,
        },
        "splits": dict(Counter(s.split for s in samples)),
        "shape": list(grid_mask.shape),
        "ocean_fraction": float(grid_mask.mean()),
        "periodic_x": options.periodic_x,
        "periodic_y": options.periodic_y,
        "steps": options.steps,
    }


def convert_dataset(
    src: str | Path,
    dst: str | Path,
    options: ConversionOptions | None = None,
    note: Log = _stderr,
    warn: Log = _stderr,
) -> dict:
    """Convert ``src`` (original layout) into ``dst``; return the metadata written.

    Every sample is verified before ``dst`` appears (``verify_converted``); a disagreement is
    an error naming the samples or the likely cause.
    """
    options = options or ConversionOptions()
    src, dst = Path(src), Path(dst)
    _check_destination(src, dst)
    _check_options(options)
    periodic = (options.periodic_x, options.periodic_y)
    samples = read_all(src, periodic, note)
    statistics = Path(options.statistics) if options.statistics else None
    found = resolve_scaling(src, options.scaling, statistics, samples, note)
    common = shared_mask(samples, found, options.mask, warn)
    masked_by = "given" if options.mask is not None else "γ != 0" if common is None else "union"
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.converting-", dir=dst.parent))
    try:
        masks = write_converted(tmp, samples, found, common, periodic, warn)
        grid_mask = np.any(masks, axis=0)
        if not all(np.array_equal(m, grid_mask) for m in masks):
            warn("the samples' ocean masks differ; grid.npz holds their union")
        metadata = converted_metadata(src, samples, found, masked_by, grid_mask, options)
        write_json(tmp / METADATA, metadata)
        save_npz(tmp / GRID, mask=grid_mask)
        write_json(tmp / STATISTICS, dataset_statistics(tmp))
        if options.verify != 0:
            verify_converted(tmp, options, np.all(masks, axis=0), note)
        os.chmod(tmp, new_directory_mode(dst))  # mkdtemp's 0700 would be the data set's
        os.replace(tmp, dst)  # POSIX: replaces an empty directory, atomically
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return metadata
