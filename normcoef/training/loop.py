"""The training loop: plain PyTorch, step-based, seeded, resumable.

Steps rather than epochs (report section 2): steps = epochs x samples / batch size is fixed so
that augmented and plain data sets train for the same number of steps. The batch of step s
depends only on (seed, s), so a resumed run sees exactly the batches an uninterrupted one does.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from normcoef.data.torch_dataset import NormalizationDataset, PreparedData
from normcoef.training.batches import batch_indices, device_batches
from normcoef.training.checkpoint import check_resumable, load_checkpoint, save_checkpoint
from normcoef.training.crops import crop_sampler
from normcoef.training.factory import OptimizerFactory, SchedulerFactory
from normcoef.training.forward import evaluate_split
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


def collate(dataset: NormalizationDataset, indices: list[int], draw: int, device: torch.device):
    items = [dataset.item(i, draw) for i in indices]
    return tuple(torch.stack(parts).to(device) for parts in zip(*items, strict=True))


def resident_split(
    dataset: NormalizationDataset, device: torch.device
) -> tuple[torch.Tensor, ...] | None:
    """The whole split (inputs, targets, oceans) stacked on ``device`` once, for indexing per
    step; None with online augmentation, whose samples change every step."""
    if dataset.online:
        return None
    return collate(dataset, list(range(len(dataset))), 0, device)


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
        check_resumable(model, load_checkpoint(resume_from), resume_from)


def train_model(
    model: nn.Module,
    loss_fn: nn.Module,
    data: PreparedData,
    settings: LoopSettings,
    run_dir: Path,
    device: torch.device,
    make_optimizer: OptimizerFactory,
    make_scheduler: SchedulerFactory,
    checkpoint_extra: dict | None = None,
    resume_from: Path | None = None,
    on_metrics: Callable[[dict[str, float], int], None] | None = None,
    on_checkpoint: Callable[[Path], None] | None = None,
) -> TrainResult:
    """Train for ``settings.steps`` steps; keep ``best.pt`` (by ``monitor``) and ``last.pt``.

    ``make_optimizer(parameters)`` and ``make_scheduler(optimizer, settings.steps)`` build the
    optimizer and schedule (``conf/optimizer``, ``conf/scheduler``; ``training.factory``).
    ``on_metrics(metrics, step)`` receives training and validation metrics (e.g. MLflow);
    ``on_checkpoint(path)`` each checkpoint as soon as it is written, so that a tracker holds
    the latest one even if the process dies later.
    """
    run_dir = Path(run_dir)
    check_can_train(model, data, settings, run_dir, resume_from)
    run_dir.mkdir(parents=True, exist_ok=True)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format)  # type: ignore[call-overload]  # stubs omit it
    optimizer = make_optimizer(model.parameters())
    scheduler = make_scheduler(optimizer, settings.steps)
    start, best_value, best_step = 0, math.inf, -1
    best_metrics: dict[str, float] = {}
    if resume_from is not None:
        state = load_checkpoint(resume_from, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        start, best_value, best_step = state["step"], state["best_value"], state["best_step"]
        best_metrics = state.get("best_metrics", {})
        # The final evaluation loads best.pt, which need not improve after resuming: bring
        # along the one saved before the interruption.
        previous_best = Path(resume_from).parent / "best.pt"
        if previous_best.exists() and previous_best.resolve() != (run_dir / "best.pt").resolve():
            shutil.copyfile(previous_best, run_dir / "best.pt")
            if on_checkpoint is not None:
                on_checkpoint(run_dir / "best.pt")
    mean, std = data.standardizer.target_scale
    autocast = settings.mixed_precision and device.type == "cuda"
    history: list[dict] = []
    last = settings.steps if settings.stop_at is None else min(settings.stop_at, settings.steps)

    def checkpoint(name: str, step: int) -> None:
        save_checkpoint(
            run_dir / name,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            step=step,
            best_value=best_value,
            best_step=best_step,
            extra={**(checkpoint_extra or {}), "best_metrics": best_metrics},
        )
        if on_checkpoint is not None:
            on_checkpoint(run_dir / name)

    if start >= last:  # resumed from a checkpoint at (or past) the end: nothing to train
        checkpoint("last.pt", start)
        return TrainResult(best_value, best_step, start, run_dir, [], best_metrics)
    model.train()
    # The compiled module shares the model's parameters; evaluation runs the plain model (eval
    # mode and batch 1 would only add recompilations).
    resident = resident_split(data.train, device)
    # With trainer.crop each step trains on random windows cut with their halo (exact: the
    # network's outputs on a window are the whole grid's), else on whole grids.
    crops = None if settings.crop is None else crop_sampler(model, resident, settings.crop)
    forward: Callable[[torch.Tensor], torch.Tensor] = (
        model if crops is None else model.forward_with_halo  # type: ignore[assignment]
    )
    compiled = settings.compile != "none"
    if compiled:
        forward = torch.compile(forward, mode=settings.compile)
    schedule = (device_batches if crops is None else crops.schedule)(
        start, last, len(data.train), settings.batch_size, settings.seed, device, settings.log_every
    )
    bar = tqdm(
        range(start, last),
        initial=start,
        total=settings.steps,
        disable=not settings.progress,
        desc="train",
    )
    postfix: dict[str, str] = {}
    pending: list[tuple[int, torch.Tensor, float]] = []  # (step, loss on the device, lr)

    def emit(done: int, record: dict[str, float]) -> None:
        if on_metrics is not None:
            on_metrics(record, done)
        history.append({"step": done, **record})

    def read_back() -> dict[str, float]:
        """Read the pending losses back in one host sync; emit the records of the earlier
        steps and return the latest step's, which evaluation may extend."""
        losses = torch.stack([loss for _, loss, _ in pending]).tolist()
        records = [
            (done, {"train/loss": value, "train/lr": lr})
            for (done, _, lr), value in zip(pending, losses, strict=True)
        ]
        latest = pending[-1][0]
        pending.clear()
        for done, record in records:
            value = record["train/loss"]
            if not math.isfinite(value):
                raise DivergenceError(
                    f"training loss is {value} at step {done}: lower optimizer.lr, check the "
                    f"inputs, or choose another loss/activation (found at step {latest}; "
                    "losses are checked every trainer.log_every steps)"
                )
            if done != latest:
                emit(done, record)
        return records[-1][1]

    for step, index in zip(bar, schedule, strict=True):
        if resident is None:
            indices = batch_indices(step, len(data.train), settings.batch_size, settings.seed)
            x, y, ocean = collate(data.train, indices, step, device)
        elif crops is not None:
            x, y, ocean = crops.batch(index)
        else:
            x, y, ocean = (part[index] for part in resident)
        x = x.contiguous(memory_format=memory_format)
        loss = train_step(
            forward, loss_fn, optimizer, (x, y, ocean), (mean, std), autocast, compiled
        )
        if scheduler is not None:
            scheduler.step()
        done = step + 1
        pending.append((done, loss, optimizer.param_groups[0]["lr"]))
        evaluate = done % settings.eval_every == 0 or done == settings.steps
        save = done % settings.checkpoint_every == 0 or done == last
        if not (evaluate or save or done % settings.log_every == 0):
            continue
        # Read back before evaluating or saving: a diverged network is never checkpointed.
        record = read_back()
        postfix["loss"] = f"{record['train/loss']:.3g}"
        if evaluate:
            val, _ = evaluate_split(model, loss_fn, data.valid, device)
            record.update({f"val/{k}": v for k, v in val.items()})
            value = record[settings.monitor]
            if value < best_value:
                best_value, best_step = float(value), done
                best_metrics = {k: v for k, v in record.items() if k.startswith("val/")}
                checkpoint("best.pt", done)
            postfix[settings.monitor] = f"{value:.3g}"
        emit(done, record)
        bar.set_postfix(postfix, refresh=False)
        if save:
            checkpoint("last.pt", done)
    bar.close()
    return TrainResult(best_value, best_step, last, run_dir, history, best_metrics)
