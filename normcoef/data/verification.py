"""Do a data set's targets equal the exact Γ of its own fields? (``python -m normcoef.check``)

A face convention shifted by one cell, another M, other periodicity or scaled targets all give
a data set that trains without complaint and teaches the network another operator. Recomputing
Γ exactly for a few samples finds them; when it disagrees, a few alternative readings of the
worst sample (faces shifted, other M, other periodicity, a constant factor, γ²) name the cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from normcoef.data.info import DatasetInfo
from normcoef.data.original import faces_to_ours
from normcoef.data.storage import (
    METADATA,
    SPLITS,
    DatasetError,
    list_ids,
    load_split,
    read_json,
    read_sample,
)
from normcoef.physics import DiffusionOperator, exact_normalization
from normcoef.physics.normalization import brute_force_variance

DEFAULT_TOLERANCE = 1e-3
"""Largest mean relative difference |Γ - γ| / Γ over a sample's ocean that still agrees. The
generator's targets agree to ~1e-8; the original's demo data to ~2e-4 once its faces are
shifted, and ~4e-2 as stored."""

DEFAULT_SAMPLES = 3

Progress = Callable[[str], None]


def _silent(message: str) -> None:
    """No progress lines (the library default; the commands print them)."""


@dataclass(frozen=True)
class Settings:
    """What the exact Γ is computed with: M and the grid's periodicity."""

    steps: int
    periodic_x: bool = True
    periodic_y: bool = False

    def describe(self) -> str:
        axes = [a for a, p in (("x", self.periodic_x), ("y", self.periodic_y)) if p]
        return f"M = {self.steps}, periodic in {' and '.join(axes) or 'neither axis'}"


@dataclass(frozen=True)
class SampleCheck:
    split: str
    sample_id: str
    max_difference: float
    mean_difference: float


@dataclass
class CheckReport:
    settings: Settings
    tolerance: float
    samples: list[SampleCheck]
    causes: list[str] = field(default_factory=list)
    unscaled_with: str | None = None  # the statistics file a conversion undid the scaling with

    @property
    def agrees(self) -> bool:
        return all(s.mean_difference <= self.tolerance for s in self.samples)

    @property
    def max_difference(self) -> float:
        return max(s.max_difference for s in self.samples)

    @property
    def mean_difference(self) -> float:
        return float(np.mean([s.mean_difference for s in self.samples]))

    def verdict(self) -> str:
        count = len(self.samples)
        head = (
            f"over {count} sample{'s' * (count != 1)}: max {self.max_difference:.2e}, mean "
            f"{self.mean_difference:.2e} (tolerance {self.tolerance:.0e} on each sample's mean)"
        )
        if self.agrees:
            settings = self.settings.describe()
            return f"agrees: the targets are the exact Γ of the fields with {settings}; {head}"
        causes = "; ".join(self.causes) or (
            "no single cause found among the face convention, M and the periodicity: "
            + (
                f"the scaling was undone with {self.unscaled_with}; statistics that are not "
                "this data set's give exactly this (each variable's must be its own)"
                if self.unscaled_with
                else "check whether the fields are scaled (other units, or standardized)"
            )
        )
        return f"DISAGREES with {self.settings.describe()}; {head}. Likely cause: {causes}"


def relative_difference(
    exact: np.ndarray, stored: np.ndarray, ocean: np.ndarray
) -> tuple[float, float]:
    """(max, mean) of |Γ - γ| / Γ over ocean cells."""
    diff = np.abs(stored[ocean] - exact[ocean]) / exact[ocean]
    return float(diff.max()), float(diff.mean())


def _operator(fields: np.ndarray, ocean: np.ndarray, settings: Settings) -> DiffusionOperator:
    return DiffusionOperator(
        fields, ocean, settings.steps, settings.periodic_x, settings.periodic_y
    )


def exact_gamma(fields: np.ndarray, ocean: np.ndarray, settings: Settings) -> np.ndarray:
    return exact_normalization(_operator(fields, ocean, settings))


def exact_gamma_at(
    fields: np.ndarray, ocean: np.ndarray, settings: Settings, cells: np.ndarray
) -> np.ndarray:
    """Γ at ``cells`` (flat row-major indices of ocean cells), one column of V each: exact (no
    probing), for one factorization and M/2 solves of ``len(cells)`` columns, so that every
    sample of a data set can afford it."""
    ocean_index = np.cumsum(ocean.ravel()) - 1  # grid cell -> its row of the ocean vector
    return brute_force_variance(_operator(fields, ocean, settings), ocean_index[cells]) ** -0.5


def check_sample(
    root: Path,
    split: str,
    sample_id: str,
    fields: np.ndarray,
    gamma: np.ndarray,
    settings: Settings,
) -> tuple[SampleCheck, np.ndarray]:
    """How one sample's γ (ocean: γ != 0) differs from its exact Γ; that Γ."""
    ocean = gamma != 0
    try:
        exact = exact_gamma(fields, ocean, settings)
    except ValueError as error:
        raise DatasetError(f"{root}/{split} sample {sample_id}: {error}") from error
    return SampleCheck(split, sample_id, *relative_difference(exact, gamma, ocean)), exact


def likely_causes(
    fields: np.ndarray,
    gamma: np.ndarray,
    ocean: np.ndarray,
    exact: np.ndarray,
    settings: Settings,
    tolerance: float,
    progress: Progress = _silent,
) -> list[str]:
    """Readings of one disagreeing sample (``exact``: its Γ with ``settings``) under which it
    agrees, as advice; each reading that needs an exact Γ is announced on ``progress`` (on a
    large grid they take a while each)."""
    # γ = a Γ + b: a scaling left in (or undone with another data set's statistics), or units
    (a, b), *_ = np.linalg.lstsq(np.stack([exact[ocean], np.ones(ocean.sum())], 1), gamma[ocean])
    causes = []
    if relative_difference(a * exact + b, gamma, ocean)[1] <= tolerance:
        if abs(b) <= tolerance * np.mean(np.abs(gamma[ocean])):
            causes.append(f"the targets are {a:.6g} times the exact Γ: other units of W or scaling")
        else:
            causes.append(
                f"the targets are {a:.6g} Γ + {b:.6g}: still scaled, or unscaled with another data "
                "set's statistics"
            )
    if relative_difference(exact**2, gamma, ocean)[1] <= tolerance:
        causes.append("the targets are Γ² (the normalization factor), not γ = Γ")
    if causes:
        return causes

    def agrees(candidate: np.ndarray, with_settings: Settings, reading: str) -> bool:
        progress(f"diagnosing: trying {reading}")
        try:
            computed = exact_gamma(candidate, ocean, with_settings)
        except ValueError:
            return False
        return relative_difference(computed, gamma, ocean)[1] <= tolerance

    ours = faces_to_ours(fields, ocean, settings.periodic_x, settings.periodic_y)
    if agrees(ours, settings, "the original's faces (south/west)"):
        causes.append(
            "the faces are the original's (A_i south, A_j west of each cell); convert the data "
            "set with python -m normcoef.convert, which moves them north and east"
        )
        return causes
    flipped = Settings(settings.steps, not settings.periodic_x, settings.periodic_y)
    if agrees(fields, flipped, flipped.describe()):
        causes.append(f"the grid's periodicity: it agrees with {flipped.describe()}")
        return causes
    others = sorted(
        (m for m in range(4, 2 * settings.steps + 7, 2) if m != settings.steps),
        key=lambda m: abs(m - settings.steps),
    )[:6]
    for steps in others:
        if agrees(
            fields, Settings(steps, settings.periodic_x, settings.periodic_y), f"M = {steps}"
        ):
            causes.append(f"M: it agrees with M = {steps}, not {settings.steps} (--steps {steps})")
            break
    return causes


def dataset_settings(root: Path, steps: int | None, periodic_x: bool | None) -> Settings:
    """M and periodicity from ``metadata.json``, overridden by the arguments given."""
    info = DatasetInfo.load(root)  # refuses the original code's layout (convert it first)
    steps = steps if steps is not None else info.steps
    if steps is None:
        raise DatasetError(
            f"{root} has no {METADATA}, so M is unknown: pass --steps M (the original's demo "
            "data use M = 10)"
        )
    if periodic_x is None:
        periodic_x = info.periodic_x
    return Settings(int(steps), periodic_x, info.periodic_y)


def check_dataset(
    root: str | Path,
    samples: int = DEFAULT_SAMPLES,
    splits: list[str] | None = None,
    steps: int | None = None,
    periodic_x: bool | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    diagnose: bool = True,
    progress: Progress = _silent,
) -> CheckReport:
    """Compare stored γ with the exact Γ of the first ``samples`` samples of each split;
    ``progress`` hears of each exact Γ computed."""
    root = Path(root)
    if samples < 1:
        raise ValueError(f"--samples must be >= 1; got {samples}")
    if not tolerance > 0:
        raise ValueError(f"--tolerance must be > 0; got {tolerance}")
    unknown = set(splits or ()) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; choose from {SPLITS}")
    settings = dataset_settings(root, steps, periodic_x)
    report = CheckReport(settings, tolerance, [])
    worst = None
    for split in splits or SPLITS:
        data = load_split(root, split, samples)
        for sample_id, fields, gamma, ocean in zip(
            data.ids, data.fields, data.gamma, data.ocean, strict=True
        ):
            progress(f"exact Γ of {split}/{sample_id}")
            check, exact = check_sample(root, split, sample_id, fields, gamma, settings)
            report.samples.append(check)
            if worst is None or check.mean_difference > worst[0].mean_difference:
                worst = (check, fields, gamma, ocean, exact)
    if worst is None:
        raise DatasetError(f"{root} holds no sample in {', '.join(splits or SPLITS)}")
    if diagnose and not report.agrees:
        report.causes = likely_causes(*worst[1:], settings, tolerance, progress)
        report.unscaled_with = unscaled_with(root)
    return report


def every_sample(root: Path) -> list[tuple[str, str]]:
    """(split, id) of every sample of ``root``, training ones first."""
    return [(split, i) for split in SPLITS for i in list_ids(root, split)]


def check_within(
    root: Path,
    settings: Settings,
    tolerance: float,
    *,
    at_most: int | None,
    seconds: float,
    progress: Progress = _silent,
) -> tuple[CheckReport, int]:
    """Exact Γ of whole samples, training ones first, as many as time allows: ``at_most``
    (None: all), and after the first only while the time spent plus the slowest sample so far
    fits ``seconds``. The first disagreement ends it (the verdict is known) and is diagnosed.
    Returns the report and how many samples ``root`` holds."""
    names = every_sample(root)
    if not names:
        raise DatasetError(f"{root} holds no sample")
    report = CheckReport(settings, tolerance, [])
    start, slowest = time.monotonic(), 0.0
    for split, sample_id in names[:at_most]:
        if report.samples and (not report.agrees or time.monotonic() - start + slowest > seconds):
            break
        began = time.monotonic()
        fields, gamma = read_sample(root, split, sample_id)
        progress(f"exact Γ of {split}/{sample_id}")
        check, exact = check_sample(root, split, sample_id, fields, gamma, settings)
        report.samples.append(check)
        slowest = max(slowest, time.monotonic() - began)
    if not report.agrees:  # the last sample checked is the one that disagrees
        ocean = gamma != 0
        report.causes = likely_causes(fields, gamma, ocean, exact, settings, tolerance, progress)
        report.unscaled_with = unscaled_with(root)
    return report, len(names)


def unscaled_with(root: Path) -> str | None:
    """The statistics file ``convert`` undid the data set's scaling with, if it did."""
    try:
        meta = read_json(root / METADATA) or {}
    except (OSError, ValueError):
        return None
    converted = meta.get("converted", {})
    if converted.get("scaling_undone", "none") == "none":
        return None
    return converted.get("statistics")
