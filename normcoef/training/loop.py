"""The training loop: plain PyTorch, step-based, seeded, resumable.

Steps rather than epochs (report section 2): steps = epochs x samples / batch size is fixed so
that augmented and plain data sets train for the same number of steps. The batch of step s
depends only on (seed, s), so a resumed run sees exactly the batches an uninterrupted one does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from normcoef.data.torch_dataset import PreparedData
from normcoef.training.batch_source import BatchSource, collate, resident_split  # noqa: F401
from normcoef.training.checkpoint import (
    check_resumable,
    load_checkpoint,
    resume_into,
    save_checkpoint,
)
from normcoef.training.crops import check_crop
from normcoef.training.factory import OptimizerFactory, SchedulerFactory
from normcoef.training.forward import evaluate_split
from normcoef.training.resume_checks import check_same_data, check_same_prior
from normcoef.training.settings import LoopSettings


class DivergenceError(ValueError):
    """The training loss became NaN or infinite: a setting to change (lr, loss, inputs), so a
    user error with a one-line message, not a bug."""


@dataclass
class TrainResult:
    best_value: float
    best_step: int
    last_step: int
    run_dir: Path
    history: list[dict] = field(default_factory=list)
    # The validation metrics at best_step (val/eps_q, ...): what a sweep selects on.
    best_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"


def train_step(
    forward: Callable[[torch.Tensor], torch.Tensor],
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    target_scale: tuple[float, float],
    autocast: bool,
    compiled: bool,
) -> torch.Tensor:
    """One optimizer step on ``batch``; the loss stays on the device (no host sync)."""
    x, y, ocean = batch
    if compiled:
        torch.compiler.cudagraph_mark_step_begin()  # a new step: graph outputs may be reused
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        pred = forward(x)
    loss = loss_fn(pred.float(), y, ocean, *target_scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def check_can_train(
    model: nn.Module,
    data: PreparedData,
    settings: LoopSettings,
    run_dir: Path | None,
    resume_from: Path | None = None,
) -> None:
    """Every refusal of ``train_model``, callable before a run is opened (``run_training``
    calls it before its MLflow run starts, so a refused run leaves no FAILED run behind);
    ``run_dir`` None: the folder is not known yet, and not checked."""
    if len(data.train) == 0:
        raise ValueError("the training split is empty")
    if settings.crop is not None:
        check_crop(model, bool(data.train.online), settings.crop, data.train.split.ocean)
    if settings.monitor.startswith("val/") and len(data.valid) == 0:
        raise ValueError(
            f"trainer.monitor={settings.monitor} needs a validation split; the data set has none"
        )
    used = run_dir is not None and run_dir.is_dir() and any(run_dir.iterdir())
    if (
        run_dir is not None
        and used
        and (resume_from is None or Path(resume_from).resolve().parent != run_dir.resolve())
    ):
        raise FileExistsError(
            f"checkpoint folder {run_dir} already holds a run: resume it with "
            f"trainer.resume={run_dir / 'last.pt'}, or train into another folder"
        )
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        check_resumable(model, state, resume_from)
        check_same_prior(data.standardizer, state, resume_from)
        check_same_data(data.standardizer, state, resume_from)


@dataclass
class Best:
    """The best checkpoint so far: its monitored value, step and validation metrics."""

    value: float = math.inf
    step: int = -1
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_checkpoint(cls, state: dict) -> Best:
        return cls(state["best_value"], state["best_step"], state.get("best_metrics", {}))


class History:
    """The metrics of each logged step: kept for the result, handed to ``on_metrics``."""

    def __init__(self, on_metrics: Callable[[dict[str, float], int], None] | None) -> None:
        self.on_metrics = on_metrics
        self.records: list[dict] = []

    def emit(self, done: int, record: dict[str, float]) -> None:
        if self.on_metrics is not None:
            self.on_metrics(record, done)
        self.records.append({"step": done, **record})


class LossLog:
    """Step losses kept on the device and read back in one host sync every few steps; a
    NaN or infinite one stops the run (``DivergenceError``) before anything is saved."""

    def __init__(self, emit: Callable[[int, dict[str, float]], None]) -> None:
        self.emit = emit
        self.pending: list[tuple[int, torch.Tensor, float]] = []  # (step, loss, lr)

    def add(self, done: int, loss: torch.Tensor, lr: float) -> None:
        self.pending.append((done, loss, lr))

    def read_back(self) -> dict[str, float]:
        """Emit the records of the pending steps but the latest, whose record is returned
        (evaluation may extend it)."""
        losses = torch.stack([loss for _, loss, _ in self.pending]).tolist()
        records = [
            (done, {"train/loss": value, "train/lr": lr})
            for (done, _, lr), value in zip(self.pending, losses, strict=True)
        ]
        latest = self.pending[-1][0]
        self.pending.clear()
        for done, record in records:
            value = record["train/loss"]
            if not math.isfinite(value):
                raise DivergenceError(
                    f"training loss is {value} at step {done}: lower optimizer.lr, check the "
                    f"inputs, or choose another loss/activation (found at step {latest}; "
                    "losses are checked every trainer.log_every steps)"
                )
            if done != latest:
                self.emit(done, record)
        return records[-1][1]


@dataclass
class Checkpointer:
    """Writes ``best.pt`` and ``last.pt`` of a run and hands each to ``on_checkpoint``."""

    run_dir: Path
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    extra: dict
    on_checkpoint: Callable[[Path], None] | None = None

    def save(self, name: str, step: int, best: Best) -> None:
        save_checkpoint(
            self.run_dir / name,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            step=step,
            best_value=best.value,
            best_step=best.step,
            extra={**self.extra, "best_metrics": best.metrics},
        )
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.run_dir / name)


@dataclass(frozen=True)
class Optimization:
    """The optimizer and learning-rate schedule a run builds on its network's parameters
    (``conf/optimizer``, ``conf/scheduler`` through ``training.factory``)."""

    make_optimizer: OptimizerFactory
    make_scheduler: SchedulerFactory


@dataclass(frozen=True)
class RunOutputs:
    """Where a run writes and who hears of it: its checkpoint folder, what every checkpoint
    carries beside the weights, ``on_metrics(metrics, step)`` for each logged step and
    ``on_checkpoint(path)`` for each checkpoint once written."""

    run_dir: Path
    checkpoint_extra: dict = field(default_factory=dict)
    on_metrics: Callable[[dict[str, float], int], None] | None = None
    on_checkpoint: Callable[[Path], None] | None = None


def train_model(
    model: nn.Module,
    loss_fn: nn.Module,
    data: PreparedData,
    settings: LoopSettings,
    device: torch.device,
    optimization: Optimization,
    outputs: RunOutputs,
    *,
    resume_from: Path | None = None,
) -> TrainResult:
    """Train for ``settings.steps`` steps; keep ``best.pt`` (by ``monitor``) and ``last.pt``
    in ``outputs.run_dir``; go on from ``resume_from`` (a ``last.pt``) when given."""
    run_dir, on_checkpoint = Path(outputs.run_dir), outputs.on_checkpoint
    check_can_train(model, data, settings, run_dir, resume_from)
    run_dir.mkdir(parents=True, exist_ok=True)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format)  # type: ignore[call-overload]  # stubs omit it
    optimizer = optimization.make_optimizer(model.parameters())
    scheduler = optimization.make_scheduler(optimizer, settings.steps)
    saver = Checkpointer(
        run_dir, model, optimizer, scheduler, outputs.checkpoint_extra, on_checkpoint
    )
    start, best = 0, Best()
    if resume_from is not None:
        state = resume_into(
            resume_from, model, optimizer, scheduler, device, run_dir, on_checkpoint
        )
        start, best = state["step"], Best.from_checkpoint(state)
    last = settings.steps if settings.stop_at is None else min(settings.stop_at, settings.steps)
    if start >= last:  # resumed from a checkpoint at (or past) the end: nothing to train
        saver.save("last.pt", start, best)
        return TrainResult(best.value, best.step, start, run_dir, [], best.metrics)
    model.train()
    source = BatchSource(model, data.train, settings, device)
    # The compiled forward shares the model's parameters; evaluation runs the plain model.
    forward = source.forward
    if compiled := settings.compile != "none":
        forward = torch.compile(forward, mode=settings.compile)
    history = History(outputs.on_metrics)
    losses, postfix = LossLog(history.emit), {}
    autocast = settings.mixed_precision and device.type == "cuda"
    bar = tqdm(range(start, last), initial=start, total=settings.steps,
               disable=not settings.progress, desc="train")  # fmt: skip
    for step, (x, y, ocean) in zip(bar, source.batches(start, last), strict=True):
        x = x.contiguous(memory_format=memory_format)
        batch = (x, y, ocean)
        loss = train_step(forward, loss_fn, optimizer, batch,
                          data.standardizer.target_scale, autocast, compiled)  # fmt: skip
        if scheduler is not None:
            scheduler.step()
        done = step + 1
        losses.add(done, loss, optimizer.param_groups[0]["lr"])
        evaluate = done % settings.eval_every == 0 or done == settings.steps
        save = done % settings.checkpoint_every == 0 or done == last
        if not (evaluate or save or done % settings.log_every == 0):
            continue
        record = losses.read_back()  # before evaluating or saving: a diverged net is not saved
        postfix["loss"] = f"{record['train/loss']:.3g}"
        if evaluate:
            val, _ = evaluate_split(model, loss_fn, data.valid, device)
            record.update({f"val/{k}": v for k, v in val.items()})
            if (value := record[settings.monitor]) < best.value:
                metrics = {k: v for k, v in record.items() if k.startswith("val/")}
                best = Best(float(value), done, metrics)
                saver.save("best.pt", done, best)
            postfix[settings.monitor] = f"{value:.3g}"
        history.emit(done, record)
        bar.set_postfix(postfix, refresh=False)
        if save:
            saver.save("last.pt", done, best)
    bar.close()
    return TrainResult(best.value, best.step, last, run_dir, history.records, best.metrics)
