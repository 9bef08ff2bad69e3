"""Structured config schemas: a typo or a wrong type fails when Hydra composes the config,
a value out of range when ``validate`` runs, before anything is read or written.

Groups holding a ``_target_`` (model, activation, loss, scheduler, logger) are free-form: their
keys are the constructor arguments, checked by the constructor itself. The optimizer's are
checked here, since the loop builds it only after the data is loaded.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from normcoef.conf_dir import CONF_DIR
from normcoef.data.generation import GenerationSpec
from normcoef.data.priors import DEFAULT_NODES, PRIORS
from normcoef.data.targets import TARGETS
from normcoef.physics.solvers import DEVICES
from normcoef.training.settings import LoopSettings

"""The config groups (``conf/``) every entry point composes, as an absolute path: a relative
``config_path`` of ``@hydra.main`` is resolved against the package when the entry point runs as
a console script (``normcoef-train``), and conf/ is no package."""


@dataclass
class DatasetConfig(GenerationSpec):
    """The generator's parameters (and checks) plus where training reads the data set and how
    it standardizes the inputs."""

    root: str = MISSING
    standardization: str = "full"


@dataclass
class DistanceMapConfig:
    metric: str | None = None
    walls: bool = False
    """The grid's closed edges count as coast in the distance channel."""


@dataclass
class AugmentationConfig:
    transforms: list[str] = field(default_factory=list)
    mode: str = "offline"


@dataclass
class TargetConfig:
    """What the network predicts (``normcoef.data.targets.TARGETS``)."""

    name: str = "gamma"

    def __post_init__(self) -> None:
        if self.name not in TARGETS:
            raise ValueError(f"name={self.name}: must be one of {', '.join(TARGETS)}")


@dataclass
class PriorConfig:
    """The physics prior of the prior_residual target (``normcoef.data.priors.PRIORS``) and,
    for ``geometry``, its table's nodes per axis."""

    name: str = "geometry"
    nodes: int = DEFAULT_NODES

    def __post_init__(self) -> None:
        if self.name not in PRIORS:
            raise ValueError(f"name={self.name}: must be one of {', '.join(PRIORS)}")
        if not 2 <= self.nodes <= 16:
            raise ValueError(f"nodes={self.nodes}: must be between 2 and 16 (4 measured enough)")


@dataclass
class OptimizerConfig:
    """A ``torch.optim`` class (``conf/optimizer``), built on the network's parameters."""

    _target_: str = MISSING
    _partial_: bool = True
    lr: float = 1e-3
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr={self.lr}: must be a finite number > 0")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay={self.weight_decay}: must be >= 0")


@dataclass
class TrainerConfig(LoopSettings):
    """The loop's settings plus where and how a run executes."""

    device: str = "auto"
    resume: str | None = None
    # Checkpoints go to <run folder>/<output_dir>: Hydra's run folder under normcoef.train;
    # run_training called without a run_dir trains into <output_dir>/<MLflow run id or time>.
    output_dir: str = "checkpoints"
    num_threads: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(
                f"num_threads={self.num_threads}: must be >= 1, or null for this process's share"
                " of the cores"
            )


@dataclass
class EvaluationConfig:
    randomization_samples: int = 10_000
    randomization_seed: int = 0
    max_samples: int | None = None
    randomization_max_samples: int | None = None  # randomization on the first K evaluated only
    tta: bool = False  # average γ² over the flips of each test input (normcoef.inference)

    def __post_init__(self) -> None:
        if self.randomization_samples < 0:
            raise ValueError(
                f"randomization_samples={self.randomization_samples}: must be >= 0 (0 skips it)"
            )
        if self.randomization_seed < 0:
            raise ValueError(f"randomization_seed={self.randomization_seed}: must be >= 0")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples={self.max_samples}: must be >= 1, or null for all")
        if self.randomization_max_samples is not None and self.randomization_max_samples < 1:
            raise ValueError(
                f"randomization_max_samples={self.randomization_max_samples}: must be >= 1, or "
                "null for every evaluated sample"
            )


@dataclass
class TrainSchema:
    dataset: DatasetConfig = MISSING
    model: Any = MISSING
    activation: Any = MISSING
    distance_map: DistanceMapConfig = field(default_factory=DistanceMapConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    loss: Any = MISSING
    optimizer: OptimizerConfig = MISSING
    scheduler: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: Any = MISSING
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    experiment_name: str = "default"
    evaluate: bool = True


@dataclass
class GenerateSchema:
    dataset: DatasetConfig = MISSING
    progress: bool = True
    workers: int = 1  # processes computing samples in parallel (one BLAS thread each)
    device: str = "auto"  # where the exact generator's solves run: auto | cpu | cuda

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}: must be >= 1")
        if self.device not in DEVICES:
            raise ValueError(f"device={self.device}: unknown; use one of {', '.join(DEVICES)}")


CONFIG_GROUPS_RESOLVER = "config_groups"


def group_options(group: str) -> list[str]:
    """Every option of a config group of conf/, nested folders included (``smoke/activation``,
    which Hydra's own lists leave out); never the schemas, which are no option."""
    root = CONF_DIR / group
    return sorted(str(path.relative_to(root).with_suffix("")) for path in root.rglob("*.yaml"))


def dataset_choice_label(option: str, dataset: DictConfig) -> str:
    """The dataset group's option as a run records it: its name, and the grid the run really
    used when an experiment changed it (``partial_std on python 16x24`` for a smoke run), so
    that a param never claims the global grid for a run on the toy one."""
    path = CONF_DIR / "dataset" / f"{option}.yaml"
    if not path.exists():
        return option
    own = OmegaConf.load(path)
    if not isinstance(own, DictConfig):
        return option
    keys = ("grid", "height", "width")
    if all(own.get(key) == dataset.get(key) for key in keys):
        return option
    return f"{option} on {dataset.grid} {dataset.height}x{dataset.width}"


def config_groups() -> str:
    """``group: option, ...`` per line, for ``--help`` (``${config_groups:}`` in conf/train.yaml):
    Hydra's $APP_CONFIG_GROUPS lists each group's schema as an option (``dataset=schema``
    composes nothing usable) and lists nested options apart."""
    groups = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")
    return "\n".join(f"{group}: {', '.join(group_options(group))}" for group in groups)


def callback_targets(config_name: str) -> list[str]:
    """The ``_target_`` of each ``hydra.callbacks`` entry of ``conf/<config_name>.yaml``: the
    execution whitelist under which Hydra builds them (Hydra 1.4's ``instantiate`` warns without
    one, and 1.5 refuses)."""
    callbacks = OmegaConf.select(
        OmegaConf.load(CONF_DIR / f"{config_name}.yaml"), "hydra.callbacks"
    )
    return sorted(str(callback._target_) for callback in (callbacks or {}).values())


SCHEMAS: dict[tuple[str | None, str], type] = {
    (None, "train_schema"): TrainSchema,
    (None, "generate_schema"): GenerateSchema,
    ("dataset", "schema"): DatasetConfig,
    ("distance_map", "schema"): DistanceMapConfig,
    ("augmentation", "schema"): AugmentationConfig,
    ("target", "schema"): TargetConfig,
    ("prior", "schema"): PriorConfig,
    ("optimizer", "schema"): OptimizerConfig,
    ("trainer", "schema"): TrainerConfig,
}
"""The structured configs in Hydra's ConfigStore, by (group, name)."""


def register_configs() -> None:
    """The resolver and ``SCHEMAS``; again in one process (entry points, tests) replaces them
    with themselves (Hydra 1.4 warns when ``replace`` is left unsaid, 1.5 refuses)."""
    OmegaConf.register_resolver(CONFIG_GROUPS_RESOLVER, config_groups, replace=True)
    cs = ConfigStore.instance()
    for (group, name), node in SCHEMAS.items():
        cs.store(group=group, name=name, node=node, replace=True)


def generation_spec(dataset: DictConfig) -> GenerationSpec:
    """The generator's parameters (checked) from a composed ``dataset`` config."""
    spec = OmegaConf.to_object(dataset)
    assert isinstance(spec, GenerationSpec)  # the dataset group's schema is DatasetConfig
    return spec


def validate(cfg: DictConfig) -> None:
    """Check every value of a composed config against its schema, before anything runs.

    Builds each structured node's dataclass (its ``__post_init__`` checks the values), the
    innermost first, so that the error names the full key:
    ``ValueError("trainer.batch_size=0: must be >= 1")``.
    """
    _validate_node(cfg, "")


def _validate_node(node: DictConfig, path: str) -> None:
    missing = sorted(str(key) for key in node if OmegaConf.is_missing(node, key))
    if missing:
        keys = ", ".join(path + key for key in missing)
        raise ValueError(f"{keys}: missing; set it in the config or on the command line")
    for key in node:
        child = node[key]
        if isinstance(child, DictConfig):
            _validate_node(child, f"{path}{key!s}.")
    if dataclasses.is_dataclass(OmegaConf.get_type(node)):
        try:
            OmegaConf.to_object(node)
        except ValueError as error:
            raise ValueError(f"{path}{error}") from error
