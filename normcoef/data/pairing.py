"""Is each sample's target file its own? A check cheap enough for every sample (``convert``).

Y files swapped between two samples (or renamed) pass an exact check of one other sample:
each Y is a correct Γ, of the wrong fields. Exact Γ at a few cells costs one factorization and
M/2 solves of a few columns per sample (one column of V per cell, no probing), so every sample
gets it. A sample's targets must match its own fields' Γ there (median relative difference
within the tolerance), and no other sample's targets may match those fields ``BETTER_BY``
times better. Two samples of randomly drawn fields differ at almost every cell (by 0.2 % to
46 % at the median cell between the tiny test set's samples), while a sample matches its own
targets to rounding (generated) or ~2e-4 (the original's demo, on average), so a swap stands
out by orders of magnitude, even between two samples closer than the tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from normcoef.data.distance import signed_distance
from normcoef.data.storage import DatasetError, read_sample
from normcoef.data.verification import Settings, every_sample, exact_gamma_at

PAIRING_CELLS = 8
BETTER_BY = 10.0
"""Another sample's targets must fit this many times better than a sample's own to name it:
far beyond chance with ``PAIRING_CELLS`` cells, far below what a swap gives."""


def pairing_cells(ocean: np.ndarray, settings: Settings, count: int = PAIRING_CELLS) -> np.ndarray:
    """Flat row-major indices of ``count`` ocean cells from the coast to the cell farthest from
    it (a closed edge counts as coast): Γ varies most near coasts, and a swap must show in the
    open ocean too. The same cells for the same mask (a fixed shuffle spreads ties)."""
    distance = signed_distance(
        ocean, periodic_x=settings.periodic_x, walls=True, periodic_y=settings.periodic_y
    ).ravel()
    cells = np.flatnonzero(ocean)
    cells = cells[np.random.default_rng(0).permutation(cells.size)]
    cells = cells[np.argsort(distance[cells], kind="stable")]
    ranks = np.linspace(0, cells.size - 1, min(count, cells.size)).round().astype(np.int64)
    return np.sort(cells[np.unique(ranks)])


def median_difference(exact: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Median over the last axis of |Γ - γ| / Γ: a coast where the targets are less accurate
    does not decide."""
    return np.median(np.abs(stored - exact) / exact, axis=-1)


@dataclass(frozen=True)
class Pairing:
    """One sample: how its targets differ from its fields' Γ at the cells, and the other
    sample whose targets fit its fields ``BETTER_BY`` times better, if any."""

    name: str
    own: float
    closer: str | None = None
    closer_difference: float = 0.0

    def describe(self, tolerance: float) -> str:
        if self.closer:
            return (
                f"{self.name} fits the targets of {self.closer} ({self.closer_difference:.1e}), "
                f"not its own ({self.own:.1e})"
            )
        return f"{self.name} differs by {self.own:.1e} (> {tolerance:.0e})"


@dataclass(frozen=True)
class PairingReport:
    cells: int
    tolerance: float
    pairings: list[Pairing]

    @property
    def mismatched(self) -> list[Pairing]:
        return [p for p in self.pairings if p.closer or p.own > self.tolerance]

    @property
    def systematic(self) -> bool:
        """Every sample misses its own Γ and none fits another's targets: the settings (M,
        faces, scaling) are wrong, not the pairing; a whole sample's check diagnoses that."""
        return all(p.own > self.tolerance and not p.closer for p in self.pairings)

    def summary(self) -> str:
        count = len(self.pairings)
        worst = max(p.own for p in self.pairings)
        return (
            f"verified pairing of {count - len(self.mismatched)}/{count} samples (exact Γ at "
            f"{self.cells} cells each within {self.tolerance:.0e}, no other sample's targets "
            f"closer; worst {worst:.1e})"
        )

    def refusal(self) -> str:
        bad = self.mismatched
        shown = "; ".join(p.describe(self.tolerance) for p in bad[:4])
        more = f"; and {len(bad) - 4} more" if len(bad) > 4 else ""
        return (
            f"{len(bad)} of {len(self.pairings)} samples have targets that are not the exact Γ "
            f"of their own fields (median over {self.cells} cells): {shown}{more}; were Y files "
            "swapped, renamed or taken from another data set?"
        )


def match_targets(
    names: list[str], exact: list[np.ndarray], stored: list[np.ndarray], compare: bool
) -> list[Pairing]:
    """Each sample's difference from its own targets and, where all share the cells
    (``compare``), the other sample whose targets fit its fields ``BETTER_BY`` times better."""
    others = np.array(stored) if compare and len(names) > 1 else None
    pairings = []
    for i, name in enumerate(names):
        own = float(median_difference(exact[i], stored[i]))
        if others is not None:
            fits = median_difference(exact[i], others)
            fits[i] = np.inf
            j = int(np.argmin(fits))
            if fits[j] * BETTER_BY < own:
                pairings.append(Pairing(name, own, names[j], float(fits[j])))
                continue
        pairings.append(Pairing(name, own))
    return pairings


def check_pairings(
    root: Path,
    settings: Settings,
    tolerance: float,
    ocean_everywhere: np.ndarray,
    progress: Callable[[str], None],
) -> PairingReport:
    """Exact Γ at ``PAIRING_CELLS`` cells of every sample of ``root`` against its targets. The
    cells lie where every sample is ocean (``ocean_everywhere``), so that each sample's fields
    can be compared with every sample's targets; where no cell is, each sample gets its own."""
    samples = every_sample(root)
    progress(f"pairing: exact Γ at {PAIRING_CELLS} cells of each of {len(samples)} samples")
    shared = pairing_cells(ocean_everywhere, settings) if ocean_everywhere.any() else None
    names, exact, stored = [], [], []
    for split, sample_id in samples:
        name = f"{split}/{sample_id}"
        names.append(name)
        fields, gamma = read_sample(root, split, sample_id)
        ocean = gamma != 0
        cells = shared if shared is not None else pairing_cells(ocean, settings)
        try:
            exact.append(exact_gamma_at(fields, ocean, settings, cells))
        except ValueError as error:
            raise DatasetError(f"{root}/{name}: {error}") from error
        stored.append(gamma.ravel()[cells])
    count = PAIRING_CELLS if shared is None else shared.size
    return PairingReport(count, tolerance, match_targets(names, exact, stored, shared is not None))
