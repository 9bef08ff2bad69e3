"""A network scored on a test split: CNN vs the randomization estimator (report Table 8), the
prior alone, test-time augmentation; figures and their logging.

Metrics are per sample on ocean cells of physical γ, then averaged (report section 2).
``evaluate`` scores a network on a prepared split (training's last step);
``evaluate_checkpoint`` a trained network on a data set on disk (the evaluate command).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from normcoef.data.distance import signed_distance
from normcoef.data.info import DatasetInfo, fact_differences
from normcoef.data.storage import SPLITS, TARGET_SUFFIX, DatasetError, load_split
from normcoef.data.torch_dataset import NormalizationDataset
from normcoef.figures import (
    error_map_scale,
    plot_distance_histogram,
    plot_error_by_distance,
    plot_error_map,
)
from normcoef.inference import TrainedModel
from normcoef.losses import for_target
from normcoef.metrics import (
    aggregate,
    error_by_distance,
    mean_error_map,
    relative_error_map,
    sample_metrics,
)
from normcoef.physics import DiffusionOperator, randomized_normalization
from normcoef.training.factory import build_loss
from normcoef.training.forward import evaluate_split, predict_gamma, resampled_gamma

DEFAULT_RANDOMIZATION_SAMPLES = 10_000


@dataclass(frozen=True)
class ScoringOptions:
    """How a split is scored: what the ``evaluation`` config group (after training) or the
    evaluate command's flags say.

    Both methods see the same samples: the first ``limit`` (>= 1; None: all). Randomization
    (``randomization_samples`` draws; 0: none) costs minutes per global sample:
    ``randomization_limit`` runs it on the first K of those only, and the CNN is then also
    scored on the same K (a like-for-like row). ``tta``: the CNN's γ² is averaged over flips
    of each input (``normcoef.training.forward.predict_gamma``).
    """

    split: str = "test"
    limit: int | None = None
    randomization_samples: int = DEFAULT_RANDOMIZATION_SAMPLES
    randomization_limit: int | None = None
    seed: int = 0
    tta: bool = False
    progress: bool = False


"""The report's baseline, N = 1e4 draws."""
COLUMNS = (("eps_q", "ε_Q"), ("eps_max", "ε_max"), ("eps_mean", "ε_mean"), ("rmse", "RMSE(ε)"))


def _mean_std(metrics: dict[str, float], key: str) -> str:
    """ "0.238 ± 0.041"; the mean alone for one sample, whose spread is not measured."""
    std = metrics.get(key + "_std")
    return f"{metrics[key]:.3g}" if std is None else f"{metrics[key]:.3g} ± {std:.2g}"


PRIOR_LABEL = "Prior alone (no network)"
CHARTED_METHODS = ("cnn", "randomization")
"""The methods whose metrics a run logs as MLflow metrics (``Evaluation.charted_metrics``)."""


@dataclass
class Evaluation:
    """Aggregated metrics per method (label -> metrics, ``keys`` label -> MLflow key part), and
    the |ε| maps of the CNN and, for a network on the prior, of the prior alone."""

    methods: dict[str, dict[str, float]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    abs_eps_maps: np.ndarray | None = None
    prior_abs_eps_maps: np.ndarray | None = None
    ocean: np.ndarray | None = None
    samples: int = 0
    split: str = "test"
    note: str = ""

    def add(self, label: str, key: str, metrics: dict[str, float]) -> None:
        self.methods[label] = metrics
        self.keys[label] = key

    def table(self) -> str:
        """Markdown table in the layout of the report's Table 8 (mean ± std over samples)."""
        header = "| Method | " + " | ".join(label for _, label in COLUMNS) + " |"
        lines = [header, "|" + "---|" * (len(COLUMNS) + 1)]
        for method, metrics in self.methods.items():
            cells = [_mean_std(metrics, key) for key, _ in COLUMNS]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        footer = f"{self.samples} {self.split} samples." + (f" {self.note}" if self.note else "")
        return "\n".join(lines) + "\n\n" + footer

    def flat_metrics(self, prefix: str | None = None) -> dict[str, float]:
        """``<split>/cnn/eps_q``, ``<split>/randomization/eps_q``, ``<split>/prior/eps_q``, ...
        (MLflow keys)."""
        prefix = prefix or self.split
        out = {}
        for method, metrics in self.methods.items():
            key = self.keys.get(method, "cnn" if method == "CNN" else "randomization")
            out.update({f"{prefix}/{key}/{k}": v for k, v in metrics.items()})
        return out

    def charted_metrics(self, prefix: str | None = None) -> dict[str, float]:
        """What a run logs as MLflow metrics: the means of the CNN and of randomization, the
        runs table's columns and what ``normcoef.report`` compares. The spreads, the prior
        alone and the first-K-samples row are in ``to_json`` instead: as metrics they were
        ~25 single-value bar charts ahead of the training curves on the run's page."""
        return {
            key: value
            for key, value in self.flat_metrics(prefix).items()
            if key.split("/")[1] in CHARTED_METHODS and not key.endswith("_std")
        }

    def to_json(self) -> str:
        """Every method's metrics with their spreads over samples: the table as data."""
        methods = {
            label: {"key": self.keys.get(label, ""), **metrics}
            for label, metrics in self.methods.items()
        }
        summary = {"split": self.split, "samples": self.samples, "note": self.note}
        return json.dumps({**summary, "methods": methods}, indent=2)


def randomization_metrics(
    dataset: NormalizationDataset,
    n_samples: int,
    info: DatasetInfo,
    seed: int,
    progress: bool = False,
) -> dict[str, float]:
    """Metrics of the randomization estimator with ``n_samples`` draws on each sample, with
    the M and periodicity of ``info`` (the data set's: those its exact γ was computed with)."""
    if info.steps is None:
        raise ValueError(
            "the randomization estimator needs M: the data set's metadata.json has no steps"
        )
    split = dataset.split
    per_sample = []
    for i in tqdm(range(len(split)), desc=f"randomization N={n_samples}", disable=not progress):
        op = DiffusionOperator(split.fields[i], split.ocean[i], info.steps, *info.periodicity)
        estimate = randomized_normalization(op, n_samples, seed + i)
        per_sample.append(sample_metrics(estimate, split.gamma[i], split.ocean[i]))
    return aggregate(per_sample)


def sample_by_sample_metrics(
    model: nn.Module,
    dataset: NormalizationDataset,
    device: torch.device,
    tta: bool = False,
    ratio: float = 1.0,
) -> tuple[dict[str, float], list[np.ndarray]]:
    """``evaluate_split``'s metrics and predictions (no loss), sample by sample: with
    test-time augmentation, or on a grid ``ratio`` times the network's resolution, shown to
    it at its own (``resampled_gamma``)."""
    was_training = model.training
    model.eval()
    split, predictions, standardizer = dataset.split, [], dataset.standardizer
    for i, (fields, ocean) in enumerate(zip(split.fields, split.ocean, strict=True)):
        prior = dataset.prior(i)
        gamma = (
            resampled_gamma(model, standardizer, fields, ocean, device, ratio, tta, prior)
            if ratio != 1
            else predict_gamma(model, standardizer, fields, ocean, device, tta, prior)
        )
        predictions.append(np.where(ocean, gamma, 0.0))
    model.train(was_training)
    per_sample = [
        sample_metrics(p, g, o)
        for p, g, o in zip(predictions, split.gamma, split.ocean, strict=True)
    ]
    return aggregate(per_sample), predictions


def check_limit(limit: int | None, what: str = "evaluation.max_samples, --max-samples") -> None:
    """A sample limit is a count >= 1 or None (every sample): ``[:limit]`` would silently
    drop samples for a negative one and evaluate nothing for 0."""
    if limit is not None and limit < 1:
        raise ValueError(
            f"the number of samples to evaluate ({what}) must be >= 1, or null for every "
            f"sample; got {limit}"
        )


def prior_metrics(dataset: NormalizationDataset) -> tuple[dict[str, float], list[np.ndarray]]:
    """Metrics and |ε| maps of the physics prior alone (γ = γ_prior), for a standardizer on
    the prior_residual target: what the network adds to it."""
    split, per_sample, maps = dataset.split, [], []
    for i in range(len(dataset)):
        prior = cast(np.ndarray, dataset.prior(i))
        per_sample.append(sample_metrics(prior, split.gamma[i], split.ocean[i]))
        maps.append(np.abs(relative_error_map(prior, split.gamma[i], split.ocean[i])))
    return aggregate(per_sample), maps


def evaluate(
    model: nn.Module,
    loss_fn: nn.Module,
    dataset: NormalizationDataset,
    device: torch.device,
    info: DatasetInfo,
    options: ScoringOptions,
    ratio: float = 1.0,
) -> Evaluation:
    """CNN (and, when ``options.randomization_samples`` > 0, randomization) metrics on
    ``dataset``, as ``options`` says (``ScoringOptions``).

    ``info`` describes the data set (M and periodicity for the randomization estimator). A
    network on the prior_residual target gets a row for the prior alone. ``ratio``: the grid's
    resolution over the network's, which is shown it at its own (``resampled_gamma``).
    """
    limit, randomization_limit = options.limit, options.randomization_limit
    randomization_samples, split = options.randomization_samples, options.split
    check_limit(limit)
    check_limit(randomization_limit, "evaluation.randomization_max_samples")
    if len(dataset) == 0:
        raise ValueError(f"the {split} split is empty: generate one (dataset.splits.{split}=N)")
    test = dataset if limit is None else dataset.head(limit)
    if options.tta or ratio != 1:
        cnn, predictions = sample_by_sample_metrics(model, test, device, options.tta, ratio)
    else:
        cnn, predictions = evaluate_split(model, loss_fn, test, device)
        cnn.pop("loss", None)
    result = Evaluation(samples=len(test), split=split)
    subset = len(test) if randomization_limit is None else min(randomization_limit, len(test))
    if randomization_samples > 0:
        label = f"Randomization (N={randomization_samples})"
        if subset < len(test):
            label = f"Randomization (N={randomization_samples}), first {subset} samples"
            result.note = f"Randomization and the CNN's second row: the first {subset} of them."
        expected = np.sqrt(2 / randomization_samples)
        result.note = (
            f"{result.note} Randomization's expected RMSE(ε) is sqrt(2/N) = {expected:.3g}."
        ).strip()
        random_set = test.head(subset)
        result.add(
            label,
            "randomization",
            randomization_metrics(
                random_set, randomization_samples, info, options.seed, options.progress
            ),
        )
        if subset < len(test):
            same = [
                sample_metrics(p, g, o)
                for p, g, o in zip(
                    predictions[:subset],
                    random_set.split.gamma,
                    random_set.split.ocean,
                    strict=True,
                )
            ]
            result.add(f"CNN, first {subset} samples", "cnn_subset", aggregate(same))
    result.add("CNN", "cnn", cnn)
    if test.standardizer.uses_prior:
        prior, prior_maps = prior_metrics(test)
        result.add(PRIOR_LABEL, "prior", prior)
        result.prior_abs_eps_maps = np.stack(prior_maps)
    result.abs_eps_maps = np.abs(
        np.stack(
            [
                relative_error_map(p, g, o)
                for p, g, o in zip(predictions, test.split.gamma, test.split.ocean, strict=True)
            ]
        )
    )
    result.ocean = test.split.ocean[0]
    return result


def write_figures(evaluation: Evaluation, out_dir: Path, periodic_x: bool = True) -> list[Path]:
    """Report Figs. 5, 6 and 11 for the CNN, with the prior alone beside it when there is one
    (its own map, its curve in the distance figure, one colour scale for both maps); skipped
    when test masks differ between samples."""
    maps, ocean = evaluation.abs_eps_maps, evaluation.ocean
    if maps is None or ocean is None or not np.all(np.isnan(maps) == ~ocean[None]):
        return []
    distance = signed_distance(ocean, "manhattan", periodic_x)
    distances, mean_abs, counts = error_by_distance(maps, distance, ocean)
    curves = {"CNN": mean_abs}
    cnn_map = mean_error_map(maps, ocean)
    error_maps = {"mean_abs_error_map.png": ("CNN: mean |ε|", cnn_map)}
    prior_maps = evaluation.prior_abs_eps_maps
    if prior_maps is not None:
        curves[PRIOR_LABEL] = error_by_distance(prior_maps, distance, ocean)[1]
        error_maps["prior_mean_abs_error_map.png"] = (
            f"{PRIOR_LABEL}: mean |ε|",
            mean_error_map(prior_maps, ocean),
        )
    scale = error_map_scale(*(m for _, m in error_maps.values()))
    out_dir = Path(out_dir)
    samples = f"over {evaluation.samples} {evaluation.split} samples"
    return [
        plot_error_by_distance(distances, curves, out_dir / "error_by_distance.png"),
        plot_distance_histogram(distances, counts, out_dir / "ocean_cells_by_distance.png"),
        *(
            plot_error_map(m, out_dir / name, f"{title} {samples}", scale)
            for name, (title, m) in error_maps.items()
        ),
    ]


def default_limit(trained: TrainedModel, root: Path, split: str, info: DatasetInfo) -> int | None:
    """How many samples of ``split`` training evaluated: its ``dataset.splits`` size on its own
    generated data set (which may hold more; ``info`` is the data set at ``root``), every sample
    otherwise (also when that size is 0: training evaluated none, so there is no count to
    match)."""
    dataset = trained.config.dataset
    same_root = Path(dataset.root).resolve() == Path(root).resolve()
    if same_root and info.is_generated:
        return dataset.splits.get(split) or None
    return None


def check_scorable(trained: TrainedModel, info: DatasetInfo, root: str | Path) -> None:
    """Targets of another operator (M, periodicity; ``info.fact_differences``) cannot score
    the network: refused in one line."""
    wrong, _ = fact_differences(trained.dataset, info, str(root))
    if wrong:
        raise DatasetError("; ".join(wrong))


def evaluate_checkpoint(
    trained: TrainedModel,
    root: str | Path,
    options: ScoringOptions | None = None,
    info: DatasetInfo | None = None,
) -> Evaluation:
    """CNN and randomization metrics of a trained network on a split of the data set at
    ``root``, as ``options`` says (default: all of the test split, randomization N = 10⁴).

    ``info``: the data set at ``root`` (read from it when None; M defaults to the training's).
    """
    root = Path(root)
    options = options or ScoringOptions()
    split, limit = options.split, options.limit
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    check_limit(limit)
    info = info or DatasetInfo.load(root, trained.dataset.steps)
    check_scorable(trained, info, root)
    trained.standardizer.read_tables_from(root)  # a geometry prior's table of that grid
    samples = load_split(root, split, limit)
    if note := trained.standardizer.cover_inputs(list(samples.fields), list(samples.ocean)):
        print(f"note: {root / split}: {note}", file=sys.stderr)
    # One data set, one resolution: measured on its first sample.
    first = (samples.fields[0], samples.ocean[0]) if len(samples) else None
    ratio = trained.resolution_ratio(*first) if first else 1.0
    if note := trained.resampling_note(*first) if first else "":
        print(f"note: {root / split}: {note}", file=sys.stderr)
    dataset = NormalizationDataset(samples, trained.standardizer)
    if len(dataset) == 0:
        raise ValueError(
            f"{root / split} holds no sample ({split}/X/<id>.npz with "
            f"{split}/Y/<id>{TARGET_SUFFIX}.npz); generate some with dataset.splits.{split}=N "
            "or choose another --split"
        )
    return evaluate(
        trained.model,
        for_target(build_loss(trained.config.loss), trained.standardizer.target_mode),
        dataset,
        trained.device,
        info,
        options,
        ratio,
    )


class EvaluationSink(Protocol):
    """Where an evaluation is logged: a training run's tracker, or an existing MLflow run."""

    def log_metrics(self, metrics: dict[str, float]) -> None: ...
    def log_text(self, text: str, name: str) -> None: ...
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...


def log_evaluation(
    sink: EvaluationSink, evaluation: Evaluation, split: str = "test", periodic_x: bool = True
) -> None:
    """The charted metrics ``<split>/...``, the tables ``<split>_metrics.md`` and ``.json``
    and the figures; a run's status stays as it is."""
    sink.log_metrics(evaluation.charted_metrics(split))
    sink.log_text(evaluation.table(), f"{split}_metrics.md")
    sink.log_text(evaluation.to_json(), f"{split}_metrics.json")
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_figures(evaluation, Path(tmp), periodic_x):
            sink.log_artifact(path, "figures")
