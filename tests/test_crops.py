"""Specification of training on crops (``trainer.crop``, normcoef.training.crops).

The claim that makes crops a valid way to train: a window cut with its halo of real
neighbours gives the network's whole-grid outputs on that window exactly, across a periodic
seam and at a closed edge. Then: all-land windows are never drawn, crops depend only on
(seed, step) (resume unchanged), and every way crops cannot work is a one-line error.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from normcoef.models import PlainCNN, SkipAddCNN
from normcoef.pipeline import run_training
from normcoef.training.batches import epoch_order, stream_indices
from normcoef.training.crops import CropSampler, crop_sampler
from normcoef.training.settings import LoopSettings
from tests.helpers import compose_config, tiny_overrides
from tests.test_fast_loop import CPU, train

SAMPLES, CHANNELS, HEIGHT, WIDTH = 3, 4, 9, 14


def split(seed: int = 0, land_rows: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(SAMPLES, CHANNELS, HEIGHT, WIDTH, generator=generator, dtype=torch.double)
    targets = torch.randn(SAMPLES, 1, HEIGHT, WIDTH, generator=generator, dtype=torch.double)
    oceans = torch.rand(SAMPLES, HEIGHT, WIDTH, generator=generator) > 0.2
    oceans[:, :land_rows] = False
    return inputs, targets, oceans


def network(periodic_y: bool, periodic_x: bool, padding: str = "valid") -> nn.Module:
    torch.manual_seed(0)
    model = SkipAddCNN(
        CHANNELS,
        layers=4,
        channels=6,
        activation=nn.ELU,
        padding=padding,
        block_layers=1,
        periodic_x=periodic_x,
        periodic_y=periodic_y,
    )
    return model.double().eval()


def every_window(sampler: CropSampler):
    """(sample, flat origin) of every ocean window, as a batch of pairs."""
    return torch.tensor(
        [
            [i, int(origin)]
            for i in range(len(sampler.counts))
            for origin in sampler.windows[i, : sampler.counts[i]]
        ]
    )


@pytest.mark.parametrize(("periodic_y", "periodic_x"), [(False, True), (True, False), (True, True)])
def test_a_crop_with_its_halo_gives_the_whole_grids_outputs_on_its_window(periodic_y, periodic_x):
    data = split()
    model = network(periodic_y, periodic_x)
    size = (4, 6)
    sampler = crop_sampler(model, data, list(size))
    whole = model(data[0])
    pairs = every_window(sampler)
    inputs, targets, oceans = sampler.batch(pairs)
    assert inputs.shape == (len(pairs), CHANNELS, 4 + 2 * 4, 6 + 2 * 4)
    with torch.no_grad():
        outputs = model.forward_with_halo(inputs)
    for (sample, origin), output, target, ocean in zip(
        pairs, outputs, targets, oceans, strict=True
    ):
        top, left = divmod(int(origin), sampler.columns)
        rows = (torch.arange(top, top + size[0]) % HEIGHT)[:, None]
        cols = torch.arange(left, left + size[1]) % WIDTH
        torch.testing.assert_close(output[0], whole[sample, 0][rows, cols], rtol=0, atol=1e-12)
        assert torch.equal(target[0], data[1][sample, 0][rows, cols])
        assert torch.equal(ocean, data[2][sample][rows, cols])
    # A periodic axis offers windows across its seam, a closed one only inside the grid.
    assert sampler.columns == (WIDTH if periodic_x else WIDTH - size[1] + 1)
    tops = HEIGHT if periodic_y else HEIGHT - size[0] + 1
    assert int(sampler.counts.max()) <= tops * sampler.columns
    seam = [divmod(int(o), sampler.columns)[1] + size[1] > WIDTH for _, o in pairs]
    assert any(seam) == periodic_x


def test_windows_without_ocean_are_never_drawn_and_every_ocean_window_can_be():
    data = split(land_rows=5)  # rows 0-4 land: a 3-row window starting above row 3 is all land
    sampler = crop_sampler(network(False, True), data, [3, 5])
    pairs = every_window(sampler)
    _, _, oceans = sampler.batch(pairs)
    assert oceans.flatten(1).any(1).all()
    tops = {divmod(int(o), sampler.columns)[0] for _, o in pairs}
    assert min(tops) == 3  # the first window reaching ocean row 5
    drawn = torch.cat(list(sampler.schedule(0, 200, SAMPLES, 2, 7, CPU, 16)))
    _, _, oceans = sampler.batch(drawn)
    assert oceans.flatten(1).any(1).all()
    assert len({tuple(pair.tolist()) for pair in drawn}) > 50  # spread over many windows


def test_crops_depend_on_seed_and_step_only():
    sampler = crop_sampler(network(False, True), split(), [4, 6])
    whole = torch.cat(list(sampler.schedule(0, 12, SAMPLES, 2, 5, CPU, 5)))
    tail = torch.cat(list(sampler.schedule(7, 12, SAMPLES, 2, 5, CPU, 3)))
    assert torch.equal(whole[-len(tail) :], tail)
    other = torch.cat(list(sampler.schedule(0, 12, SAMPLES, 2, 6, CPU, 5)))
    assert not torch.equal(whole, other)


def test_training_on_crops_is_reproducible_resumable_and_not_whole_grid_training(tmp_path: Path):
    whole_grids = train(tmp_path / "grids")
    runs = [train(tmp_path / name, crop=[4, 5], log_every=3) for name in ("a", "b")]
    assert runs[0].history == runs[1].history
    losses = [[h["train/loss"] for h in r.history] for r in (whole_grids, runs[0])]
    assert losses[0] != losses[1]
    train(tmp_path / "part", crop=[4, 5], log_every=3, stop_at=4)
    last = tmp_path / "part" / "last.pt"
    resumed = train(tmp_path / "part", crop=[4, 5], log_every=3, resume_from=last)
    assert resumed.history == runs[0].history[4:]
    # Validation runs on whole grids: the best checkpoint's metrics are whole-grid metrics.
    assert "val/eps_q" in runs[0].best_metrics


@pytest.mark.reliability(
    "train", "trainer.crop larger than the grid", "error", "names the grid size and the fix"
)
def test_a_crop_larger_than_the_grid_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"trainer.crop=\[4, 15\] is larger than the 9x14 grid"):
        crop_sampler(network(False, True), split(), [4, 15])


@pytest.mark.reliability(
    "train", "trainer.crop with same padding", "error", "asks for model.padding=valid"
)
def test_crops_need_valid_padding():
    with pytest.raises(ValueError, match=r"needs a network with valid padding"):
        crop_sampler(network(False, True, padding="same"), split(), [4, 6])
    plain = PlainCNN(CHANNELS, layers=3, channels=4)
    assert plain.halo == 3


@pytest.mark.reliability(
    "train",
    "trainer.crop with online augmentation",
    "error",
    "asks for augmentation.mode=offline",
)
def test_crops_need_a_fixed_training_split(tmp_path: Path):
    with pytest.raises(ValueError, match=r"use augmentation.mode=offline"):
        train(tmp_path, online=["hflip"], crop=[4, 5])
    assert not list(tmp_path.glob("*.pt"))


def test_a_sample_without_any_ocean_window_is_named():
    data = split()
    data[2][1] = False
    with pytest.raises(ValueError, match=r"training samples \[1\] have no ocean cell"):
        crop_sampler(network(False, True), data, [4, 6])


@pytest.mark.parametrize("crop", [[0, 4], [4], [3, 4, 5]])
def test_a_malformed_crop_is_refused_with_the_settings(crop):
    with pytest.raises(ValueError, match=r"^crop=.*: give \[height, width\], both >= 1, or null$"):
        LoopSettings(crop=crop)


def test_a_batch_of_crops_may_exceed_the_split_and_sees_each_sample_once_per_epoch():
    size, batch = 3, 5
    batches = [stream_indices(step, size, batch, seed=4) for step in range(6)]
    assert all(len(b) == batch for b in batches)
    flat = [i for b in batches for i in b]  # 30 positions = 10 epochs of 3
    for epoch in range(10):
        assert sorted(flat[3 * epoch : 3 * epoch + 3]) == [0, 1, 2]
    assert flat[:3] == epoch_order(0, size, 4)


def test_crops_train_with_a_batch_larger_than_the_split(tmp_path: Path):
    run = train(tmp_path, crop=[3, 4], batch_size=12)  # 5 training samples
    assert run.last_step == 7


def test_trainer_crop_from_the_config_trains_the_prior_network_and_evaluates_whole_grids(
    tmp_path: Path, tiny_dataset
):
    overrides = [
        f"dataset.root={tiny_dataset()}",
        *tiny_overrides(layers=4, steps=4, eval_every=2),
        "dataset.standardization=partial",
        "target=prior_residual",
        "model=skip_add",
        "model.block_layers=1",
        "trainer.crop=[8,12]",
        "trainer.batch_size=6",
        "logger=none",
        "evaluation.randomization_samples=0",
    ]
    run_dir = tmp_path / "run"
    run_training(compose_config("train", *overrides), run_dir=run_dir)
    state = torch.load(run_dir / "best.pt", weights_only=False)
    assert state["config"]["trainer"]["crop"] == [8, 12]
    # Validation ran on the 16x24 grids: its metrics are finite.
    assert all(map(math.isfinite, state["best_metrics"].values()))
