"""Fields in the original code's layout as prediction inputs (``predict --original``).

An original user's real case is fields without targets: ``X/<id>.npz`` with a halo, faces
south/west and values possibly scaled (``normcoef.data.original``). ``convert`` needs targets
to find the ocean and check itself; prediction has the grid's mask instead, so each file is
turned into normcoef's fields on that mask: the halo cropped, the scaling undone with the data
set's statistics file, the faces moved north/east.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from normcoef.data.original import (
    SCALINGS,
    STATISTICS_FILES,
    Scaling,
    faces_to_ours,
    read_scaling,
    scaling_named_by,
    scaling_none,
    unscale_stored,
)
from normcoef.data.storage import DatasetError, crop_halo


def stored_fields(padded: np.ndarray, shape: tuple[int, int], path: Path) -> np.ndarray:
    """The (3, H, W) stored A_i, A_j, W of an original X array: a 4th channel (the original's
    distance map) dropped, the halo cropped to the grid ``shape``."""
    if padded.ndim != 3 or padded.shape[0] not in (3, 4):
        raise DatasetError(
            f"{path}: expected the original's (3, H, W) alpha_i_minus, alpha_j_minus, w (a 4th "
            f"channel, the distance map, is allowed); got {padded.shape}"
        )
    return crop_halo(padded[:3], shape, path)


def scaled_inputs_evidence(arrays: Sequence[tuple[Path, np.ndarray]]) -> str | None:
    """Why stored fields look scaled (None: they could be raw): negative values (raw A_i,
    A_j and W never are), or every value in [0, 1] (min-max scaling)."""
    for path, array in arrays:
        if (array < 0).any():
            return f"{path} has negative values, as standardized fields have"
    if arrays and all(0 <= a.min() and a.max() <= 1 for _, a in arrays):
        return (
            f"every value of the {len(arrays)} inputs lies in [0, 1], as min-max scaled fields do"
        )
    return None


def inputs_scaling(
    requested: str, statistics: Path | None, arrays: Sequence[tuple[Path, np.ndarray]]
) -> Scaling:
    """The scaling to undo on original inputs: the one named, the one of the ``statistics``
    file's name (auto), or none when the values look raw; scaled-looking inputs without
    statistics are refused (predicting on them gives nonsense)."""
    if requested not in SCALINGS:
        raise ValueError(f"unknown scaling {requested!r}; choose one of {SCALINGS}")
    evidence = scaled_inputs_evidence(arrays)
    if requested == "none":
        return scaling_none(evidence, "give the data set's dict_std_mean.txt with --statistics")
    if requested != "auto":
        if statistics is None:
            name = STATISTICS_FILES[requested][0]
            raise DatasetError(f"--scaling {requested} needs the data set's {name}: --statistics")
        return read_scaling(statistics, requested)
    if statistics is not None:
        return scaling_named_by(statistics)
    if evidence:
        names = " or ".join(name for name, _ in STATISTICS_FILES.values())
        raise DatasetError(
            f"the inputs look scaled ({evidence}); give their data set's statistics file "
            f"({names}) with --statistics, or --scaling none if the values are raw"
        )
    return Scaling()


@dataclass(frozen=True)
class OriginalInputs:
    """How ``predict --original`` reads an input file: the scaling to undo and the grid's
    periodicity (which faces are open across its edges)."""

    scaling: Scaling
    periodic: tuple[bool, bool]

    def fields(self, padded: np.ndarray, ocean: np.ndarray, path: Path) -> np.ndarray:
        """normcoef's (3, H, W) fields of one original X array on the mask ``ocean``."""
        stored = stored_fields(padded, ocean.shape, path)
        raw = unscale_stored(list(stored), self.scaling, ocean, self.periodic)
        return faces_to_ours(np.stack(raw), ocean, *self.periodic)
