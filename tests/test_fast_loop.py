"""Specification of the fast training loop: losses read back in chunks, data resident on the
device, channels-last and torch.compile options, resume unchanged.

Everything runs ``train_model`` on CPU on an in-memory 8x12 data set of 5 samples and a
2-layer 4-channel network, so that each run takes a fraction of a second.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from normcoef.data.storage import Split
from normcoef.data.torch_dataset import NormalizationDataset, PreparedData, Standardizer
from normcoef.losses import MSELoss
from normcoef.models import SkipAddCNN
from normcoef.training.batches import batch_indices, device_batches
from normcoef.training.loop import (
    DivergenceError,
    Optimization,
    RunOutputs,
    collate,
    resident_split,
    train_model,
)
from normcoef.training.schedules import constant
from normcoef.training.settings import LoopSettings

CPU = torch.device("cpu")


def split(samples: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    ocean = np.ones((samples, 8, 12), dtype=bool)
    ocean[:, :2, :3] = False  # some land, so that the mask matters
    fields = rng.uniform(1.0, 2.0, (samples, 3, 8, 12))
    gamma = rng.uniform(1.0, 3.0, (samples, 8, 12)) * ocean
    return Split([str(i) for i in range(samples)], fields, gamma, ocean)


def tiny_data(online: list[str] | None = None) -> PreparedData:
    train, valid = split(5, 0), split(1, 1)
    standardizer = Standardizer.fit(train, "partial", "manhattan")
    return PreparedData(
        NormalizationDataset(train, standardizer, online, seed=3),
        NormalizationDataset(valid, standardizer),
        NormalizationDataset(split(0, 2), standardizer),
        standardizer,
    )


def tiny_model() -> SkipAddCNN:
    torch.manual_seed(0)
    return SkipAddCNN(4, layers=3, channels=4, activation=torch.nn.ELU, block_layers=1)


def settings(**values) -> LoopSettings:
    defaults = {"steps": 7, "batch_size": 2, "eval_every": 5, "progress": False}
    return LoopSettings(**{**defaults, **values})


def train(
    run_dir: Path,
    loss_fn=None,
    resume_from=None,
    on_metrics=None,
    model=None,
    online=None,
    **values,
):
    return train_model(
        model or tiny_model(),
        loss_fn or MSELoss(),
        tiny_data(online),
        settings(**values),
        CPU,
        Optimization(functools.partial(torch.optim.Adam, lr=1e-3), constant),  # conf/optimizer/adam
        RunOutputs(run_dir, on_metrics=on_metrics),
        resume_from=resume_from,
    )


class CountingLoss(MSELoss):
    """MSE that counts its calls (training steps and validation samples) and, from call
    ``nan_from`` on, returns NaN."""

    def __init__(self, nan_from: int | None = None) -> None:
        super().__init__()
        self.calls = 0
        self.nan_from = nan_from

    def forward(self, *args) -> torch.Tensor:
        self.calls += 1
        loss = super().forward(*args)
        return loss * torch.nan if self.nan_from and self.calls >= self.nan_from else loss


def test_losses_read_in_chunks_reach_on_metrics_every_step_in_order_as_read_per_step(
    tmp_path: Path,
):
    runs = {}
    for log_every in (1, 3):
        loss_fn, seen = CountingLoss(), []
        train(
            tmp_path / str(log_every),
            loss_fn,
            on_metrics=lambda record, step, fn=loss_fn, seen=seen: seen.append(
                (step, record, fn.calls)
            ),
            log_every=log_every,
        )
        runs[log_every] = seen
    per_step, chunked = runs[1], runs[3]
    assert [step for step, _, _ in chunked] == [1, 2, 3, 4, 5, 6, 7]
    assert [(s, r) for s, r, _ in chunked] == [(s, r) for s, r, _ in per_step]
    assert "val/loss" in chunked[4][1]  # step 5 evaluates: its record carries the validation
    # Read back per step, step 1 is reported after one loss; in chunks, after the chunk's 3.
    assert per_step[0][2] == 1
    assert chunked[0][2] == 3


@pytest.mark.reliability(
    "train",
    "loss turns NaN between two read-backs",
    "error",
    "names the first NaN step, no checkpoint of the diverged network",
)
def test_divergence_between_read_backs_names_the_first_bad_step_and_saves_nothing(tmp_path):
    seen = []
    message = r"training loss is nan at step 2: lower optimizer.lr"
    with pytest.raises(DivergenceError, match=message):
        train(
            tmp_path,
            CountingLoss(nan_from=2),
            on_metrics=lambda record, step: seen.append(step),
            log_every=4,
        )
    assert seen == [1]  # the finite steps before it are still reported
    assert not list(tmp_path.glob("*.pt"))


def test_resident_split_indexed_per_step_gives_the_batches_of_collate():
    dataset = tiny_data().train
    resident = resident_split(dataset, CPU)
    batches = device_batches(0, 9, len(dataset), 2, 42, CPU, chunk=4)
    for step, index in enumerate(batches):
        expected = collate(dataset, batch_indices(step, len(dataset), 2, 42), step, CPU)
        assert len(expected[0]) == (1 if step % 3 == 2 else 2)  # 5 samples: 2, 2, 1 per epoch
        for got, want in zip((part[index] for part in resident), expected, strict=True):
            assert torch.equal(got, want)
    assert step == 8


def test_online_augmentation_is_not_made_resident_and_still_trains_on_its_draws(tmp_path):
    assert resident_split(tiny_data(online=["hflip"]).train, CPU) is None
    plain = train(tmp_path / "plain")
    online = [train(tmp_path / name, online=["hflip"]) for name in ("a", "b")]
    assert online[0].history == online[1].history
    assert online[0].history != plain.history


def test_channels_last_trains_in_nhwc_to_the_same_losses(tmp_path: Path):
    plain = train(tmp_path / "plain")
    model = tiny_model()
    nhwc = train(tmp_path / "nhwc", model=model, channels_last=True)
    weight = model.input_layer[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()
    losses = [[h["train/loss"] for h in r.history] for r in (plain, nhwc)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_resume_mid_chunk_equals_an_uninterrupted_run(tmp_path: Path):
    whole = train(tmp_path / "whole", log_every=3)
    train(tmp_path / "part", log_every=3, stop_at=4)
    resumed = train(tmp_path / "part", log_every=3, resume_from=tmp_path / "part" / "last.pt")
    assert [h["step"] for h in resumed.history] == [5, 6, 7]
    assert resumed.history == whole.history[4:]
    first = torch.load(whole.last_path, weights_only=False)["model"]
    second = torch.load(resumed.last_path, weights_only=False)["model"]
    assert all(torch.equal(first[name], second[name]) for name in first)


@pytest.mark.slow
def test_compiled_model_trains_to_the_same_losses(tmp_path: Path):
    plain = train(tmp_path / "plain")
    compiled = train(tmp_path / "compiled", compile="default")
    losses = [[h["train/loss"] for h in r.history] for r in (plain, compiled)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"log_every": 0}, r"^log_every=0: must be >= 1$"),
        ({"compile": "fast"}, r"^compile='fast': choose one of none, default, reduce-overhead"),
    ],
)
@pytest.mark.reliability(
    "train", "trainer.log_every < 1 or unknown trainer.compile", "error", "names the key"
)
def test_bad_loop_settings_are_refused_naming_the_key(values: dict, message: str):
    with pytest.raises(ValueError, match=message):
        settings(**values)
