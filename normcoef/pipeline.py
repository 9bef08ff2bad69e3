"""One training run from a composed config: data, model, loop, evaluation, tracking.

The orchestrator sits above the layers it joins (training, evaluation, tracking; see
tests/test_layers.py). Importable and testable without Hydra's command line (compose a config
and call ``run_training``); ``normcoef.train`` is the thin Hydra entry point around it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from normcoef.config import dataset_choice_label, validate
from normcoef.data.info import DatasetInfo
from normcoef.data.input_range import InputRange
from normcoef.data.storage import SPLITS
from normcoef.data.torch_dataset import DataSettings, PreparedData, prepare_data
from normcoef.inference import ResumePoint, resume_point
from normcoef.losses import for_target
from normcoef.models import count_parameters
from normcoef.scoring import ScoringOptions, evaluate, log_evaluation
from normcoef.sweeps.naming import timestamped_name
from normcoef.tracking import (
    JobContext,
    NullTracker,
    Tag,
    configured_tracking_uri,
    flatten,
    read_sweep_parent,
    run_name,
    run_tags,
    tracking_store_problem,
    tracks_to_mlflow,
)
from normcoef.training.checkpoint import load_checkpoint
from normcoef.training.factory import (
    build,
    build_loss,
    build_model,
    optimizer_factory,
    resolve_device,
    scheduler_factory,
)
from normcoef.training.loop import (
    DivergenceError,
    Optimization,
    RunOutputs,
    TrainResult,
    check_can_train,
    train_model,
)
from normcoef.training.settings import LoopSettings
from normcoef.training.threads import thread_share


def seed_everything(seed: int) -> None:
    """Same seed, same numbers on CPU: seeds torch and numpy, deterministic kernels."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def refuse_data_parallel(environ: dict[str, str] | None = None) -> None:
    """Fail fast under ``torchrun --nproc_per_node>1``: N processes would train N copies.

    No data-parallel mode on purpose (docs/sweeps.md): the report trains 10 images at batch 1,
    so there is no batch to split; what scales is one run per GPU.
    """
    world_size = int((os.environ if environ is None else environ).get("WORLD_SIZE", "1"))
    if world_size > 1:
        raise RuntimeError(
            f"normcoef.train was started with WORLD_SIZE={world_size} (torchrun?), but it has no "
            "data-parallel mode: every process would train the same network. Start one process "
            "per GPU instead, e.g. CUDA_VISIBLE_DEVICES=0 python -m normcoef.train ..., or a "
            "sweep with hydra/launcher=slurm_gpu or local_parallel (docs/sweeps.md)."
        )


def dataset_info(cfg: DictConfig) -> DatasetInfo:
    """The data set's description, read once; M is the config's (``dataset.fields.steps``, the
    generator's input) only for a data set without metadata."""
    return DatasetInfo.load(cfg.dataset.root, cfg.dataset.fields.steps)


def load_data(cfg: DictConfig, info: DatasetInfo | None = None) -> PreparedData:
    info = info or dataset_info(cfg)
    settings = DataSettings(
        root=cfg.dataset.root,
        standardization=cfg.dataset.standardization,
        distance_metric=cfg.distance_map.metric,
        distance_walls=cfg.distance_map.walls,
        augmentation=list(cfg.augmentation.transforms),
        augmentation_mode=cfg.augmentation.mode,
        seed=cfg.trainer.seed,
        limits=dict(cfg.dataset.splits) if info.is_generated else None,
        target=cfg.target.name,
        prior=cfg.prior.name,
        prior_nodes=cfg.prior.nodes,
    )
    return prepare_data(settings, info)


def loop_settings(trainer: DictConfig) -> LoopSettings:
    fields = LoopSettings.__dataclass_fields__
    container = OmegaConf.to_container(trainer, resolve=True)
    assert isinstance(container, dict)  # a DictConfig converts to a dict
    values = {k: v for k, v in container.items() if k in fields}
    return LoopSettings(**values)


def scoring_options(evaluation: DictConfig, trainer: DictConfig) -> ScoringOptions:
    """How a finished run scores its test split: the ``evaluation`` group, the trainer's
    progress bars."""
    return ScoringOptions(
        limit=evaluation.max_samples,
        randomization_samples=evaluation.randomization_samples,
        randomization_limit=evaluation.randomization_max_samples,
        seed=evaluation.randomization_seed,
        tta=evaluation.tta,
        progress=trainer.progress,
    )


def start_tracker(logger: DictConfig, run_name: str | None, tags: dict[str, str]) -> NullTracker:
    """The tracker of ``conf/logger`` (a ``_partial_`` of a ``normcoef.tracking`` class), given
    the run's name and tags."""
    return build(logger, "logger")(run_name=run_name, tags=tags)


def run_training(
    cfg: DictConfig,
    overrides: str = "",
    sweep_dir: str | None = None,
    run_dir: Path | None = None,
    job: JobContext | None = None,
) -> float:
    """Train, evaluate and track one configuration; return the best monitored value.

    A job of a sweep nests under the sweep's parent run when ``sweep_dir`` records one. Every
    refusal comes before the MLflow run opens, so a refused run leaves no FAILED run behind.
    """
    validate(cfg)  # a value out of range fails here, naming its key, before anything runs
    check_tracking_store(cfg.logger)
    job = job or JobContext()
    threads = prepare_process(cfg.trainer, job)
    built = build_run(cfg)
    resume = resume_point(cfg.trainer.resume, configured_tracking_uri(cfg.logger))
    last_pt = None if resume is None else resume.checkpoint
    settings = loop_settings(cfg.trainer)
    check_can_train(built.model, built.data, settings, run_dir and Path(run_dir), last_pt)
    tracker = open_tracker(cfg, job, overrides, sweep_dir, resume)
    run_dir = Path(run_dir or Path(cfg.trainer.output_dir) / (tracker.run_id or timestamped_name()))
    try:  # from the run's first write on: an interrupt or failure ends it, never left RUNNING
        extra = log_run_facts(tracker, cfg, job, built, threads)
        # The optimizer and schedule are built by the loop, on the network's parameters.
        optimization = Optimization(
            optimizer_factory(cfg.optimizer), scheduler_factory(cfg.scheduler)
        )
        outputs = RunOutputs(
            run_dir,
            checkpoint_extra=extra,
            on_metrics=tracker.log_metrics,
            on_checkpoint=lambda path: tracker.log_artifact(path, "checkpoints"),
        )
        result = train_model(
            built.model,
            built.loss_fn,
            built.data,
            settings,
            built.device,
            optimization,
            outputs,
            resume_from=last_pt,
        )
        evaluate_finished(cfg, built, result, tracker)
    except BaseException as error:
        end_failed(tracker, error)
        if isinstance(error, KeyboardInterrupt):
            say_what_was_kept(error, run_dir, tracker.run_id)
        raise
    # The validation metrics of the best checkpoint: what sweeps and reports select on.
    best = {"best/" + key: value for key, value in result.best_metrics.items()}
    tracker.log_metrics({**best, "best/" + cfg.trainer.monitor: result.best_value})
    tracker.finish()
    where = f"; MLflow run {tracker.run_id}" if tracker.run_id else ""
    print(f"Checkpoints: {run_dir} (best.pt, step {result.best_step}){where}")
    return result.best_value


def check_tracking_store(logger: DictConfig) -> None:
    """Refuse, before anything runs, a run MLflow could not write (``logger=none`` writes
    nothing)."""
    if not tracks_to_mlflow(logger):
        return
    if (problem := tracking_store_problem(configured_tracking_uri(logger))) is not None:
        raise ValueError(problem)


@dataclass(frozen=True)
class BuiltRun:
    """What a run builds from its config before its tracker opens: the data set's facts, the
    prepared splits, the network, its loss and the device."""

    info: DatasetInfo
    data: PreparedData
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    device: torch.device


def build_run(cfg: DictConfig) -> BuiltRun:
    """Read the data and build the network its config describes (refusals happen here, before
    any run opens)."""
    info = dataset_info(cfg)
    data = load_data(cfg, info)
    return BuiltRun(
        info,
        data,
        build_model(cfg.model, cfg.activation, data.standardizer.in_channels, info),
        for_target(build_loss(cfg.loss), cfg.target.name),
        resolve_device(cfg.trainer.device),
    )


def prepare_process(trainer: DictConfig, job: JobContext) -> int:
    """One process per run (no data parallelism), its share of the CPU threads, its seeds;
    the thread count."""
    refuse_data_parallel()
    threads = trainer.num_threads or thread_share(job.parallel_jobs)
    torch.set_num_threads(threads)  # torch's default, every core, stalls beside other jobs
    seed_everything(trainer.seed)
    return threads


def open_tracker(
    cfg: DictConfig,
    job: JobContext,
    overrides: str,
    sweep_dir: str | None,
    resume: ResumePoint | None,
) -> NullTracker:
    """The run's tracker, started: nested under its sweep's parent run when there is one,
    named by what the sweep varies, and linked to the MLflow run it resumes."""
    parent = read_sweep_parent(sweep_dir, configured_tracking_uri(cfg.logger))
    parent_id = parent["run_id"] if parent else None
    tags = run_tags(cfg.experiment_name, job, overrides, sweep_dir, parent_id)
    name = run_name(job.overrides, parent["varied"] if parent else (), job.trial)
    tracker = start_tracker(
        cfg.logger, cfg.logger.get("run_name") or name or cfg.experiment_name, tags
    )
    if resume is not None and resume.run_id is not None:
        tracker.mark_resumed(resume.run_id)
    return tracker


def log_run_facts(
    tracker: NullTracker, cfg: DictConfig, job: JobContext, built: BuiltRun, threads: int
) -> dict:
    """Params and config.yaml of the run; the facts every checkpoint carries (its config,
    standardizer and data set description)."""
    info, data = built.info, built.data
    if not info.is_generated:
        describe_data_as_read(cfg, info)
    container = cast(dict, OmegaConf.to_container(cfg, resolve=True))
    tracker.log_params(flatten(container))
    # model=skip_add: the group options, not their _target_; the dataset's with its real grid.
    choices = dict(job.choices)
    if "dataset" in choices:
        choices["dataset"] = dataset_choice_label(choices["dataset"], cfg.dataset)
    tracker.log_params(choices)
    tracker.log_params(
        {"model.parameters": count_parameters(built.model), "device": str(built.device)}
    )
    tracker.log_params({"threads": threads})
    # Sizes after offline augmentation: hflip doubles the training split (report "20/1").
    tracker.log_params({f"data.{split}_samples": len(getattr(data, split)) for split in SPLITS})
    tracker.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
    train = data.train.split
    return {
        "config": container,
        "standardizer": data.standardizer.to_dict(),
        "dataset": info.to_dict(),
        # What evaluate and predict compare new inputs with (another resolution, other units).
        "input_range": InputRange.of(list(train.fields), list(train.ocean)).to_dict(),
    }


def evaluate_finished(
    cfg: DictConfig, built: BuiltRun, result: TrainResult, tracker: NullTracker
) -> None:
    """A run that trained all its steps: its test evaluation (or why there is none), and the
    best network as an MLflow model when ``logger.log_model`` asks for it."""
    model, data, info = built.model, built.data, built.info
    best = result.best_path if result.best_path.exists() else result.last_path
    if cfg.evaluate and result.last_step == cfg.trainer.steps and not len(data.test):
        print(f"\nEvaluation skipped: {no_test_split(cfg, info)}\n")
    elif cfg.evaluate and result.last_step == cfg.trainer.steps:
        # Test metrics of the best checkpoint vs randomization, as a table and figures.
        model.load_state_dict(load_checkpoint(best, map_location=built.device)["model"])
        options = scoring_options(cfg.evaluation, cfg.trainer)
        evaluation = evaluate(model, built.loss_fn, data.test, built.device, info, options)
        table = evaluation.table()
        print(f"\nTest metrics (best checkpoint, step {result.best_step}):\n{table}\n")
        log_evaluation(tracker, evaluation, "test", info.periodic_x)
    tracker.log_network(best, model_example(data))


def end_failed(tracker: NullTracker, error: BaseException) -> None:
    """End the run of an exception: FAILED with its reason for a divergence, KILLED for
    Ctrl-C (or SIGTERM, turned into one), FAILED otherwise."""
    if isinstance(error, DivergenceError):
        tracker.set_tags({Tag.FAILURE: str(error)})
    tracker.finish("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")


def say_what_was_kept(interrupt: KeyboardInterrupt, run_dir: Path, run_id: str | None) -> None:
    """Give an interrupt the line the command prints: how the run ended and what it kept;
    ``resume_from`` is the checkpoint to resume (None: none was written yet)."""
    ended = f"MLflow run {run_id} ended KILLED" if run_id else "the run stopped"
    last = run_dir / "last.pt"
    if last.exists():
        step = load_checkpoint(last)["step"]
        kept = f"{ended}; its checkpoints are in {run_dir} (last.pt at step {step})"
    else:
        kept = f"{ended} before its first checkpoint (trainer.checkpoint_every); nothing to resume"
    interrupt.args = (kept,)
    interrupt.resume_from = last if last.exists() else None  # type: ignore[attr-defined]


def describe_data_as_read(cfg: DictConfig, info: DatasetInfo) -> None:
    """A converted or foreign data set is used whole, whatever the preset's sizes: the config
    that is logged and stored in checkpoints gets its real grid shape and split sizes (it
    claimed the preset's 64x128 and 8/2/4). The root is fixed first: it may interpolate the
    sizes."""
    cfg.dataset.root = str(cfg.dataset.root)
    if info.shape is not None:
        cfg.dataset.height, cfg.dataset.width = info.shape
    if info.splits:
        cfg.dataset.splits = {split: info.splits.get(split, 0) for split in SPLITS}


MODEL_EXAMPLE_CELLS = 32
"""Side of the window of a training sample stored as the MLflow model's input example: the
networks take any grid, and a whole global grid would be megabytes of JSON."""


def model_example(data: PreparedData) -> dict[str, np.ndarray]:
    """The MLflow model's input example: the central window of the first training sample."""
    split = data.train.split
    height, width = split.ocean.shape[1:]
    rows = slice(max(0, height // 2 - MODEL_EXAMPLE_CELLS // 2), None)
    columns = slice(max(0, width // 2 - MODEL_EXAMPLE_CELLS // 2), None)
    window = (slice(0, 1), slice(None), rows, columns)
    fields = split.fields[window][..., :MODEL_EXAMPLE_CELLS, :MODEL_EXAMPLE_CELLS]
    mask = split.ocean[0:1, rows, columns][..., :MODEL_EXAMPLE_CELLS, :MODEL_EXAMPLE_CELLS]
    return {"fields": np.ascontiguousarray(fields), "mask": np.ascontiguousarray(mask)}


def no_test_split(cfg: DictConfig, info: DatasetInfo) -> str:
    """Why there was nothing to evaluate, and what to do: generated data sets grow a test
    split; converted or foreign ones cannot, so their network is evaluated on another set."""
    test = Path(cfg.dataset.root) / "test"
    if info.is_generated:
        return (
            f"{test} holds no sample (dataset.splits.test={cfg.dataset.splits.get('test', 0)}); "
            "to add some, set dataset.splits.test=N and run python -m normcoef.generate with "
            "the same dataset settings (it adds the missing samples)"
        )
    return (
        f"{test} holds no sample ({info.provenance} data set: the original code kept none); "
        "evaluate the network on a data set with test samples: python -m normcoef.evaluate "
        "<checkpoints> --dataset <a generated data set of the same grid>"
    )
