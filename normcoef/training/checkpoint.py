"""Checkpoints: model, optimizer and scheduler state, step, best metric, and what inference
needs (model config, standardization statistics).

A checkpoint holds tensors and plain Python values only, so it is read with
``torch.load(weights_only=True)``: a ``.pt`` file from anyone cannot run code when loaded.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

_UNSAFE_GLOBAL = re.compile(r"Unsupported (?:global: GLOBAL|class) ([\w.]+)")
"""How torch's weights-only unpickler names an object it refuses to build."""


class CheckpointError(ValueError):
    """A checkpoint is damaged, foreign, unsafe, or lacks what its reader needs."""


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    step: int = 0,
    best_value: float = float("inf"),
    best_step: int = -1,
    extra: dict | None = None,
) -> None:
    """Write atomically, so a run killed while saving keeps its previous checkpoint.

    ``extra`` must hold plain Python values (dicts, lists, str, numbers, bool, None): a numpy
    scalar would make the file unreadable by ``load_checkpoint``.
    """
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "best_value": float(best_value),
        "best_step": int(best_step),
        **(extra or {}),
    }
    save_checkpoint_state(path, state)


def save_checkpoint_state(path: Path, state: dict) -> None:
    """Write a checkpoint's state dict atomically (through a temporary file beside it)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint file (``normcoef.inference.resolve_checkpoint`` finds one).

    Only tensors and plain values are unpickled; anything else, and any file torch cannot
    read, raises a one-line ``CheckpointError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError:
        raise
    except pickle.UnpicklingError as error:
        unsafe = _UNSAFE_GLOBAL.search(str(error))
        if unsafe is None:
            raise _unreadable(path, error) from error
        raise _unsafe(path, unsafe.group(1)) from None
    except Exception as error:  # torch raises a dozen types for damaged files
        raise _unreadable(path, error) from error
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(state).__name__} without network weights "
            "('model'): it is not a normcoef checkpoint"
        )
    return state


def check_resumable(model: nn.Module, state: dict, path: Path) -> None:
    """A checkpoint resumes only the network it was saved from: same tensors, same shapes
    (torch's load_state_dict would fail later with a multi-line RuntimeError)."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in state["model"].items()}
    if expected == found:
        return
    differ = sorted(set(expected) ^ set(found)) or sorted(
        key for key in expected if expected[key] != found[key]
    )
    raise CheckpointError(
        f"cannot resume from {path}: it holds another network than this config builds "
        f"({len(differ)} tensor(s) differ, e.g. {differ[0]}); resume with the config it was "
        "trained with (config.yaml beside its run), or train anew without trainer.resume"
    )


def _unsafe(path: Path, name: str) -> CheckpointError:
    if name.startswith("numpy."):
        return CheckpointError(
            f"checkpoint {path} holds numpy objects ({name}), which are not loaded because "
            "unpickling them can run arbitrary code: retrain with `python -m normcoef.train` "
            "(its checkpoints hold tensors and plain values only)"
        )
    return CheckpointError(
        f"checkpoint {path} holds a Python object ({name}) besides tensors and plain values; "
        "it is refused because unpickling it could run arbitrary code: it is not a "
        "checkpoint written by `python -m normcoef.train`, or someone changed it"
    )


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    # The gist of torch's message: its first sentence, after any weights-only preamble.
    detail = " ".join(str(error).split("WeightsUnpickler error:")[-1].split()).split(". ")[0]
    reason = "it is empty" if path.stat().st_size == 0 else f"{type(error).__name__}: {detail}"
    return CheckpointError(
        f"cannot read checkpoint {path} ({reason}): the file is damaged (truncated?) or not "
        "a normcoef checkpoint"
    )


def resume_into(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    device: torch.device,
    run_dir: Path,
    on_checkpoint: Callable[[Path], None] | None = None,
) -> dict:
    """Load ``path``'s model, optimizer and schedule states to go on from it; return the
    checkpoint's state (step, best_value, best_step, best_metrics).

    The run's final evaluation loads ``best.pt``, which need not improve after resuming: the
    one saved beside ``path`` before the interruption is brought into ``run_dir``.
    """
    state = load_checkpoint(path, map_location=device)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    previous_best = Path(path).parent / "best.pt"
    if previous_best.exists() and previous_best.resolve() != (run_dir / "best.pt").resolve():
        shutil.copyfile(previous_best, run_dir / "best.pt")
        if on_checkpoint is not None:
            on_checkpoint(run_dir / "best.pt")
    return state
