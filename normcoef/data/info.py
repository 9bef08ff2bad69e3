"""What a data set is: its grid's shape and periodicity, M, and where it came from.

Read once from ``metadata.json`` (written by ``data.generation`` and ``data.conversion``) and
passed whole, so that training, evaluation and inference agree on every grid fact instead of
each re-reading or re-defaulting it. Checkpoints store it (``to_dict``), so inference knows the
grid a network was trained on without the data set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from normcoef.data.storage import METADATA, DatasetError, read_json

PROVENANCES: tuple[str, ...] = ("generated", "converted", "foreign")
"""``normcoef.generate`` wrote it, ``normcoef.convert`` wrote it, or neither (no metadata)."""


@dataclass(frozen=True)
class DatasetInfo:
    """A data set's description. The defaults are those of a directory without metadata: an
    east-west periodic, north-south closed grid, M unknown (the config's, see ``load``)."""

    periodic_x: bool = True
    periodic_y: bool = False
    steps: int | None = None
    """M, the diffusion steps γ was computed with: the prior and the randomization estimator
    must diffuse with the same M."""
    shape: tuple[int, int] | None = None
    ocean_fraction: float | None = None
    grid: str | None = None
    """The generator's grid (``python``, ``global``, ...); None for converted or foreign sets."""
    provenance: str = "foreign"
    seed: int | None = None
    splits: dict[str, int] = field(default_factory=dict, hash=False)
    """Samples per split that the writer wrote (a generated set may hold more on disk)."""

    def __post_init__(self) -> None:
        # Plain Python values: numpy bools from a metadata file must not reach a checkpoint.
        object.__setattr__(self, "periodic_x", bool(self.periodic_x))
        object.__setattr__(self, "periodic_y", bool(self.periodic_y))
        if self.steps is not None:
            object.__setattr__(self, "steps", int(self.steps))
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        if self.provenance not in PROVENANCES:
            raise ValueError(
                f"unknown data set provenance {self.provenance!r}; choose one of {PROVENANCES}"
            )

    @property
    def is_generated(self) -> bool:
        """Whether ``normcoef.generate`` wrote the data set: only then does ``dataset.splits``
        say how many of its samples to use (it may hold more); others are used whole."""
        return self.provenance == "generated"

    @property
    def periodicity(self) -> tuple[bool, bool]:
        """(periodic_x, periodic_y)."""
        return self.periodic_x, self.periodic_y

    @classmethod
    def load(cls, root: str | Path, default_steps: int | None = None) -> DatasetInfo:
        """The description in ``<root>/metadata.json``; the class defaults (and M =
        ``default_steps``) for a directory without one. A damaged file is a ``DatasetError``."""
        path = Path(root) / METADATA
        meta = read_json(path)
        if meta is None:
            refuse_original_layout(Path(root))
            return cls(steps=default_steps)
        try:
            return cls.from_metadata(meta, default_steps)
        except (TypeError, ValueError, AttributeError, LookupError) as error:
            raise DatasetError(
                f"{path} does not describe a data set ({error}); regenerate or reconvert it"
            ) from error

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], default_steps: int | None = None) -> DatasetInfo:
        """From the dict ``generate_dataset`` or ``convert_dataset`` writes."""
        generator = meta.get("generator")
        provenance = "foreign"
        if generator is not None:
            provenance = "generated"
        elif "converted" in meta:
            provenance = "converted"
        shape = meta.get("shape")
        return cls(
            periodic_x=meta.get("periodic_x", True),
            periodic_y=meta.get("periodic_y", False),
            steps=meta.get("steps", default_steps),
            shape=None if shape is None else (shape[0], shape[1]),
            ocean_fraction=meta.get("ocean_fraction"),
            grid=None if generator is None else generator.get("grid"),
            provenance=provenance,
            seed=None if generator is None else generator.get("seed"),
            splits={str(k): int(v) for k, v in (meta.get("splits") or {}).items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as a checkpoint stores them (``from_dict`` reads them back)."""
        data = asdict(self)
        data["shape"] = None if self.shape is None else list(self.shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetInfo:
        if not isinstance(data, dict):
            raise TypeError(f"a data set description is a dict; got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in known})


def fact_differences(
    trained: DatasetInfo,
    info: DatasetInfo,
    what: str,
    targets: bool = True,
    resampled: bool = False,
) -> tuple[list[str], list[str]]:
    """How the data set ``what`` (its ``info``) differs from the one a network was
    ``trained`` on: (what cannot be right, what may be). M defines the operator whose Γ the
    network learned: with another M every target is another operator's, and scoring or
    predicting it would measure the wrong thing. Another periodicity changes the operator near
    the edges: targets there (``targets``: scoring, resuming) are another operator's, while a
    prediction is only less accurate there. Another grid shape or grid is another resolution
    or ocean: the network is fully convolutional, so it runs, less accurately; unless it is
    shown the grid ``resampled`` to its own resolution (a whole ratio of it)."""
    wrong: list[str] = []
    doubtful: list[str] = []
    if trained.steps is not None and info.steps is not None and trained.steps != info.steps:
        wrong.append(
            f"{what} was made with M={info.steps} diffusion steps, the network learned Γ of "
            f"M={trained.steps}: its targets are another operator's; use a data set made with "
            f"M={trained.steps} (dataset.fields.steps={trained.steps})"
        )
    if trained.periodicity != info.periodicity:
        (wrong if targets else doubtful).append(
            f"{what} is {_periodicity(info)}, the network was trained on a grid "
            f"{_periodicity(trained)}: "
            + (
                "its targets near the edges are another operator's; use a data set of the "
                "network's periodicity"
                if targets
                else "it keeps the training's padding, so expect larger errors near the edges"
            )
        )
    if resampled:
        pass
    elif trained.shape is not None and info.shape is not None and trained.shape != info.shape:
        doubtful.append(
            f"{what} is a {info.shape[0]}x{info.shape[1]} grid, the network was trained on "
            f"{trained.shape[0]}x{trained.shape[1]}: it is fully convolutional but learned one "
            "resolution, so expect larger errors"
        )
    elif trained.grid and info.grid and trained.grid != info.grid:
        doubtful.append(
            f"{what} is the {info.grid} grid, the network was trained on the {trained.grid} "
            "grid: another ocean, so expect larger errors"
        )
    return wrong, doubtful


def enclosing_dataset(path: Path) -> Path | None:
    """The data set a file or folder belongs to (``<root>/grid.npz``, ``<root>/test/X``,
    ``<root>/test/X/00000.npz``): the nearest folder up to three levels up holding
    ``metadata.json``; None outside any data set."""
    path = Path(path).absolute()
    for folder in [path, *path.parents][:4]:
        if (folder / METADATA).is_file():
            return folder
    return None


def _periodicity(info: DatasetInfo) -> str:
    axes = [
        name
        for name, flag in (("east-west", info.periodic_x), ("north-south", info.periodic_y))
        if flag
    ]
    return f"periodic {' and '.join(axes)}" if axes else "closed on every side"


def refuse_original_layout(root: Path) -> None:
    """A folder of the report's code, recognised by its scaling statistics: read as it is, its
    inputs are scaled and its faces south/west (training on it "works", wrongly), so every
    reader of data sets refuses it and names the conversion."""
    from normcoef.data.original import STATISTICS_FILES

    for mode, (name, _) in STATISTICS_FILES.items():
        if (root / name).is_file():
            raise DatasetError(
                f"{root} holds {name}: it is in the original code's layout ({mode} scaled, faces "
                f"south/west); convert it first: python -m normcoef.convert {root} NEW_DIR "
                "(docs/original-data.md)"
            )
