"""Structured config schemas: a typo or a wrong type fails when Hydra composes the config.

Groups holding a ``_target_`` (model, activation, loss) are free-form: their keys are the
constructor arguments, checked by the constructor itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from normcoef.data.fields import FieldParameters
from normcoef.data.generation import GenerationSpec
from normcoef.training.settings import LoopSettings


@dataclass
class DatasetConfig:
    name: str = MISSING
    grid: str = "python"
    height: int | None = None
    width: int | None = None
    root: str = MISSING
    standardization: str = "full"
    seed: int = 0
    splits: dict[str, int] = field(default_factory=lambda: {"train": 8, "valid": 2, "test": 4})
    fields: FieldParameters = field(default_factory=FieldParameters)
    tolerance: float = 1e-8


@dataclass
class DistanceMapConfig:
    metric: str | None = None


@dataclass
class AugmentationConfig:
    transforms: list[str] = field(default_factory=list)
    mode: str = "offline"


@dataclass
class TrainerConfig(LoopSettings):
    """The loop's settings plus where and how a run executes."""

    device: str = "auto"
    resume: str | None = None
    output_dir: str = "checkpoints"
    num_threads: int | None = None


@dataclass
class LoggerConfig:
    backend: str = "mlflow"
    tracking_uri: str | None = None
    experiment: str = "normcoef"
    run_name: str | None = None


@dataclass
class EvaluationConfig:
    randomization_samples: int = 10_000
    randomization_seed: int = 0
    max_samples: int | None = None


@dataclass
class TrainSchema:
    dataset: DatasetConfig = MISSING
    model: Any = MISSING
    activation: Any = MISSING
    distance_map: DistanceMapConfig = field(default_factory=DistanceMapConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    loss: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    experiment_name: str = "default"
    evaluate: bool = True


@dataclass
class GenerateSchema:
    dataset: DatasetConfig = MISSING
    progress: bool = True
    workers: int = 1  # processes computing samples in parallel (one BLAS thread each)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainSchema)
    cs.store(name="generate_schema", node=GenerateSchema)
    cs.store(group="dataset", name="schema", node=DatasetConfig)
    cs.store(group="distance_map", name="schema", node=DistanceMapConfig)
    cs.store(group="augmentation", name="schema", node=AugmentationConfig)
    cs.store(group="trainer", name="schema", node=TrainerConfig)
    cs.store(group="logger", name="schema", node=LoggerConfig)


def generation_spec(dataset: DictConfig) -> GenerationSpec:
    """The generator's parameters from a composed ``dataset`` config."""
    fields = OmegaConf.to_container(dataset.fields, resolve=True)
    return GenerationSpec(
        grid=dataset.grid,
        height=dataset.height,
        width=dataset.width,
        seed=dataset.seed,
        splits=dict(dataset.splits),
        fields=FieldParameters(**fields),
        tolerance=dataset.tolerance,
    )
