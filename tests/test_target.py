"""Specification of the network's target option (conf/target): γ, or the log-ratio to the
uniform-lattice prior log(γ²/γ_prior²) with the prior as an extra input channel."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
from conftest import TinyDataset
from helpers import compose_config, count_table_builds, tiny_overrides

from normcoef.cli import evaluate, predict
from normcoef.config import validate
from normcoef.data import priors
from normcoef.data.info import DatasetInfo
from normcoef.data.priors import PRIORS
from normcoef.data.storage import Split, load_split
from normcoef.data.torch_dataset import (
    DataSettings,
    NormalizationDataset,
    PreparedData,
    Standardizer,
    augment_offline,
    prepare_data,
)
from normcoef.data.transforms import transform_cells, transform_fields
from normcoef.inference import load_trained_model
from normcoef.losses import RelativeSquaredErrorLoss, for_target
from normcoef.metrics import relative_variance_error
from normcoef.physics.geometry_prior import GeometryTable
from normcoef.physics.prior import uniform_lattice_prior
from normcoef.scoring import prior_metrics, sample_by_sample_metrics
from normcoef.training.checkpoint import CheckpointError
from tests.test_prior import random_sample

STEPS = 10


def tiny_split(count: int = 3) -> Split:
    """Random coastal samples with a made-up γ (prior times a smooth factor)."""
    samples = []
    for k in range(count):
        fields, mask = random_sample(True, False, shape=(10, 12))
        fields = fields * (1 + 0.1 * k)
        prior = uniform_lattice_prior(fields, mask, STEPS)
        gamma = np.where(mask, prior * (1.1 + 0.05 * np.arange(12) / 12 + 0.1 * k), 0.0)
        samples.append((fields, gamma, mask))
    return Split(
        [f"{k:05d}" for k in range(count)],
        np.stack([s[0] for s in samples]),
        np.stack([s[1] for s in samples]),
        np.stack([s[2] for s in samples]),
    )


def residual_standardizer(split: Split) -> Standardizer:
    return Standardizer.fit(split, "partial", None, DatasetInfo(steps=STEPS), "prior_residual")


def test_physical_gamma_inverts_the_log_ratio_target():
    split = tiny_split()
    standardizer = residual_standardizer(split)
    fields, gamma, ocean = split.fields[1], split.gamma[1], split.ocean[1]
    prior = standardizer.prior(fields, ocean)

    target = standardizer.model_target(gamma, prior)[0].astype(np.float64)

    np.testing.assert_allclose(standardizer.physical_gamma(target, prior), gamma, rtol=1e-5)
    assert np.all(target[~ocean] == 0)
    # Standardized: zero mean, unit std over the training ocean cells.
    targets = [
        standardizer.model_target(g, standardizer.prior(f, o))[0][o]
        for f, g, o in zip(split.fields, split.gamma, split.ocean, strict=True)
    ]
    values = np.concatenate(targets)
    assert abs(values.mean()) < 1e-5 and values.std() == pytest.approx(1, rel=1e-4)


def test_the_prior_is_one_more_input_channel_standardized_over_the_ocean():
    split = tiny_split()
    standardizer = residual_standardizer(split)
    fields, ocean = split.fields[0], split.ocean[0]

    x = standardizer.model_inputs(fields, ocean)

    assert standardizer.in_channels == 4 and x.shape == (4, *ocean.shape)
    log_prior = np.log(uniform_lattice_prior(fields, ocean, STEPS)[ocean])
    mean, std = standardizer.prior_stats.mean[0], standardizer.prior_stats.std[0]
    np.testing.assert_allclose(x[3][ocean], (log_prior - mean) / std, rtol=1e-5, atol=1e-6)
    assert np.all(x[3][~ocean] == 0)


def test_the_standardizer_round_trips_through_a_weights_only_checkpoint(tmp_path: Path):
    standardizer = residual_standardizer(tiny_split())
    torch.save(standardizer.to_dict(), tmp_path / "s.pt")

    again = Standardizer.from_dict(torch.load(tmp_path / "s.pt", weights_only=True))

    assert again.target_mode == "prior_residual" and again.steps == STEPS
    np.testing.assert_array_equal(again.prior_stats.mean, standardizer.prior_stats.mean)
    assert again.in_channels == standardizer.in_channels


def test_a_checkpoint_from_before_the_option_predicts_gamma():
    split = tiny_split()
    old = Standardizer.fit(split, "partial", None).to_dict()
    del old["target_mode"], old["periodic_y"]

    standardizer = Standardizer.from_dict(old)

    assert standardizer.target_mode == "gamma" and standardizer.in_channels == 3
    assert standardizer.physical_gamma(np.zeros(2))[0] == standardizer.target_scale[0]


def test_offline_augmentation_gives_each_copy_the_prior_of_its_own_fields():
    split = tiny_split(1)
    standardizer = residual_standardizer(split)
    dataset = NormalizationDataset(augment_offline(split, ["hflip"], DatasetInfo()), standardizer)

    flipped_fields = transform_fields("hflip", split.fields[0])
    flipped_ocean = transform_cells("hflip", split.ocean[0])

    np.testing.assert_allclose(
        dataset.prior(1), uniform_lattice_prior(flipped_fields, flipped_ocean, STEPS)
    )
    np.testing.assert_allclose(
        dataset.item(1)[0][3], transform_cells("hflip", dataset.item(0)[0][3].numpy())
    )


def count_prior_computations(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many times γ_prior was computed for each sample (keyed by its fields' bytes), by
    either prior."""
    computed: Counter = Counter()
    uniform, geometry = priors.uniform_lattice_prior, GeometryTable.prior

    def counting_uniform(fields: np.ndarray, ocean: np.ndarray, *args) -> np.ndarray:
        computed[np.asarray(fields)[:3].tobytes()] += 1
        return uniform(fields, ocean, *args)

    def counting_geometry(table: GeometryTable, fields: np.ndarray, ocean: np.ndarray):
        computed[np.asarray(fields)[:3].tobytes()] += 1
        return geometry(table, fields, ocean)

    monkeypatch.setattr(priors, "uniform_lattice_prior", counting_uniform)
    monkeypatch.setattr(GeometryTable, "prior", counting_geometry)
    return computed


def prepare_residual_data(
    root: Path, augmentation_mode: str, prior: str = "geometry"
) -> PreparedData:
    """The tiny data set (3/1/2 samples) on the prior_residual target, hflip augmented."""
    settings = DataSettings(
        root, "partial", None, ["hflip"], augmentation_mode, target="prior_residual", prior=prior
    )
    return prepare_data(settings)


@pytest.mark.parametrize("prior", PRIORS)
def test_preparing_offline_augmented_data_computes_each_samples_prior_once(
    tiny_dataset: TinyDataset, monkeypatch: pytest.MonkeyPatch, prior: str
):
    computed = count_prior_computations(monkeypatch)

    data = prepare_residual_data(tiny_dataset(test=2), "offline", prior)
    for dataset in (data.train, data.valid, data.test, data.test.head(1)):
        for i in range(len(dataset)):
            dataset.item(i)
            dataset.physical_gamma(i, np.zeros(dataset.split.ocean.shape[1:]))
    prior_metrics(data.test.head(1))

    # 3 training samples and their flipped copies, 1 valid, 2 test: each computed once.
    assert sorted(computed.values()) == [1] * (3 * 2 + 1 + 2)


@pytest.mark.parametrize("prior", PRIORS)
def test_online_augmentation_computes_a_flipped_samples_prior_when_first_drawn_only(
    tiny_dataset: TinyDataset, monkeypatch: pytest.MonkeyPatch, prior: str
):
    computed = count_prior_computations(monkeypatch)

    data = prepare_residual_data(tiny_dataset(test=2), "online", prior)
    assert sorted(computed.values()) == [1] * (3 + 1 + 2)
    for _ in range(2):  # 20 draws of identity or hflip per sample, twice
        for draw in range(20):
            for i in range(len(data.train)):
                data.train.item(i, draw)

    assert sorted(computed.values()) == [1] * (3 * 2 + 1 + 2)


def test_evaluating_with_tta_computes_only_the_flipped_inputs_priors(
    tiny_dataset: TinyDataset, monkeypatch: pytest.MonkeyPatch
):
    data = prepare_residual_data(tiny_dataset(test=2), "offline")
    computed = count_prior_computations(monkeypatch)

    sample_by_sample_metrics(torch.nn.Conv2d(4, 1, 1), data.test, torch.device("cpu"), tta=True)

    # hflip, vflip and rot180 of each of the 2 test samples: the samples' own were known.
    assert sorted(computed.values()) == [1] * (3 * 2)


def test_the_relative_loss_of_a_log_ratio_target_is_the_relative_error_of_physical_gamma():
    split = tiny_split()
    standardizer = residual_standardizer(split)
    fields, gamma, ocean = split.fields[0], split.gamma[0], split.ocean[0]
    prior = standardizer.prior(fields, ocean)
    target = torch.from_numpy(standardizer.model_target(gamma, prior))[None]
    pred = target + 0.3 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    mean, std = standardizer.target_scale

    loss = for_target(RelativeSquaredErrorLoss(), "prior_residual")(
        pred, target, torch.from_numpy(ocean)[None], mean, std
    )

    gamma_hat = standardizer.physical_gamma(pred[0, 0].double().numpy(), prior)
    eps = relative_variance_error(
        torch.from_numpy(gamma_hat[ocean]), torch.from_numpy(gamma[ocean])
    )
    assert float(loss) == pytest.approx(float(eps.square().mean()), rel=1e-4)


def test_the_gamma_target_keeps_the_loss_as_built():
    loss = RelativeSquaredErrorLoss()
    assert for_target(loss, "gamma") is loss and not loss.log_ratio


@pytest.mark.reliability(
    "train", "unknown target name", "error", "target.name names the key and the choices"
)
def test_an_unknown_target_is_refused_naming_the_key():
    cfg = compose_config("train", "target.name=gama")
    with pytest.raises(ValueError, match="^target.name=gama: must be one of gamma, prior_resid"):
        validate(cfg)


@pytest.fixture(scope="module")
def residual_run(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: TinyDataset) -> Path:
    """A tiny run (16x24 grid, 2-layer 4-channel CNN, 3 steps) with target=prior_residual;
    its data set is ``<run>/../data``."""
    from normcoef.pipeline import run_training

    tmp_path = tmp_path_factory.mktemp("residual")
    root = tiny_dataset(test=2, into=tmp_path / "data")
    overrides = [
        f"dataset.root={root}",
        *tiny_overrides(test=2, layers=2, steps=3, eval_every=1),
        "target=prior_residual",
        "loss=rel_sq",
        "trainer.checkpoint_every=3",
        f"trainer.output_dir={tmp_path / 'checkpoints'}",
        "logger=none",
        "evaluation.randomization_samples=0",
    ]
    cfg = compose_config("train", *overrides)
    run_training(cfg, run_dir=tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.slow
def test_training_with_the_prior_residual_target_saves_a_model_that_predicts_gamma(
    residual_run: Path, tmp_path: Path
):
    root = residual_run.parent / "data"
    trained = load_trained_model(residual_run / "best.pt")
    standardizer = trained.standardizer
    test = load_split(root, "test")
    fields, ocean = test.fields[0], test.ocean[0]
    gamma_hat = trained.predict(fields, ocean)

    assert standardizer.target_mode == "prior_residual"
    assert standardizer.in_channels == 4
    # The saved network's output r, the destandardized log(γ²/γ_prior²): γ = γ_prior exp(r / 2).
    prior = cast(np.ndarray, standardizer.prior(fields, ocean))
    x = torch.from_numpy(standardizer.model_inputs(fields, ocean, prior))
    with torch.no_grad():
        output = trained.model(x[None])[0, 0].double().numpy()
    mean, std = standardizer.target_scale
    by_hand = prior * np.exp(0.5 * (output * std + mean))
    np.testing.assert_allclose(gamma_hat[ocean], by_hand[ocean], rtol=1e-10)
    # ...a map that varies from cell to cell (not a constant factor), which moves γ off the
    # prior alone (by 0.08 % to 0.8 % on this sample, after 3 steps).
    assert np.ptp(output[ocean]) > 0.1
    assert not np.allclose(gamma_hat[ocean], prior[ocean], rtol=1e-4)
    ratio = gamma_hat[ocean] / test.gamma[0][ocean]  # γ itself, within a factor 3
    assert np.all(np.isfinite(ratio)) and 1 / 3 < np.median(ratio) < 3
    result = evaluate.run([str(residual_run), "-n", "0", "--no-log"])
    again = evaluate.run([str(residual_run), "-n", "0", "--no-log", "--tta"])
    assert result.methods["CNN"]["eps_mean"] > 0 and again.methods["CNN"]["eps_mean"] > 0
    (written,) = predict.run(
        [str(residual_run), str(root / "test" / "X" / "00000.npz"), "-o", str(tmp_path / "out")]
        + ["--tta"]
    )
    with np.load(written) as out:
        predicted = out["gamma"]
    np.testing.assert_allclose(
        predicted[ocean], trained.predict(test.fields[0], ocean, tta=True)[ocean], rtol=1e-12
    )
    assert not np.allclose(predicted[ocean], gamma_hat[ocean], rtol=1e-6)  # TTA did something


@pytest.mark.slow
@pytest.mark.reliability(
    "checkpoint",
    "prior_residual checkpoint without M",
    "error",
    "one line naming the file; nothing is built",
)
def test_a_prior_residual_checkpoint_without_its_steps_is_refused(
    residual_run: Path, tmp_path: Path
):
    state = torch.load(residual_run / "best.pt", weights_only=True)
    del state["standardizer"]["steps"]
    torch.save(state, tmp_path / "damaged.pt")
    with pytest.raises(CheckpointError, match="damaged.pt: cannot build .* needs steps"):
        load_trained_model(tmp_path / "damaged.pt")


@pytest.mark.slow
def test_a_prior_network_is_scored_beside_the_prior_alone_with_both_maps(
    residual_run: Path, tmp_path: Path
):
    from normcoef.metrics import sample_metrics

    root = residual_run.parent / "data"
    out = tmp_path / "figures"
    result = evaluate.run(
        [str(residual_run), "-n", "0", "--no-log", "--output-dir", str(out), "--max-samples", "2"]
    )
    test = load_split(root, "test")
    standardizer = load_trained_model(residual_run / "best.pt").standardizer
    standardizer.read_tables_from(root)
    assert standardizer.prior_name == "geometry"  # the default of new runs
    by_hand = [
        sample_metrics(cast(np.ndarray, standardizer.prior(f, o)), g, o)
        for f, o, g in zip(test.fields[:2], test.ocean[:2], test.gamma[:2], strict=True)
    ]
    prior, cnn = result.methods["Prior alone (no network)"], result.methods["CNN"]
    assert cnn["eps_mean"] != prior["eps_mean"]  # the network's own row beside the prior's
    assert prior["eps_mean"] == pytest.approx(np.mean([m["eps_mean"] for m in by_hand]))
    assert prior["eps_max"] == pytest.approx(np.mean([m["eps_max"] for m in by_hand]))
    assert result.flat_metrics()["test/prior/eps_q"] == prior["eps_q"]
    assert {p.name for p in out.glob("*.png")} == {
        "error_by_distance.png",
        "ocean_cells_by_distance.png",
        "mean_abs_error_map.png",
        "prior_mean_abs_error_map.png",
    }
    assert "| Prior alone (no network) |" in (out / "test_metrics.md").read_text()


@pytest.mark.slow
def test_randomization_on_the_first_samples_only_adds_a_like_for_like_cnn_row(
    residual_run: Path,
):
    every = evaluate.run([str(residual_run), "-n", "3", "--no-log", "--max-samples", "2"])
    first = evaluate.run([str(residual_run), "-n", "3", "--no-log", "--max-samples", "1"])
    split = evaluate.run(
        [str(residual_run), "-n", "3", "--no-log", "--max-samples", "2"]
        + ["--randomization-max-samples", "1"]
    )
    assert split.samples == 2
    assert split.methods["CNN"] == every.methods["CNN"]
    assert (
        split.methods["Randomization (N=3), first 1 samples"]
        == (first.methods["Randomization (N=3)"])
    )
    assert split.methods["CNN, first 1 samples"] == first.methods["CNN"]
    metrics = split.flat_metrics()
    assert metrics["test/cnn_subset/eps_q"] == first.methods["CNN"]["eps_q"]
    assert "the first 1 of them" in split.table()


@pytest.mark.slow
@pytest.mark.reliability(
    "train",
    "resume on another prior than the checkpoint's",
    "error",
    "names both priors and the override that resumes; no run opened",
)
def test_a_run_resumes_only_on_the_prior_it_was_trained_on(residual_run: Path):
    from normcoef.pipeline import run_training

    root = residual_run.parent / "data"
    overrides = [
        f"dataset.root={root}",
        *tiny_overrides(test=2, layers=2, steps=4, eval_every=1),
        "target=prior_residual",
        "prior=uniform",
        "loss=rel_sq",
        f"trainer.resume={residual_run / 'last.pt'}",
        "logger=none",
    ]
    with pytest.raises(CheckpointError, match="trained on prior=geometry.*resume with prior=geom"):
        run_training(compose_config("train", *overrides), run_dir=residual_run)


@pytest.mark.slow
def test_predict_makes_a_users_grid_table_once_in_the_cache_and_reuses_it(
    residual_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("NORMCOEF_CACHE_DIR", str(cache))
    built = count_table_builds(monkeypatch)
    # A grid of the user's own: the training grid with one more island (the training grid's
    # table, in its data set, is read from there and made nowhere).
    test = load_split(residual_run.parent / "data", "test", 1)
    ocean = test.ocean[0].copy()
    row, column = np.argwhere(ocean[1:-1, 1:-1])[len(np.argwhere(ocean[1:-1, 1:-1])) // 2] + 1
    ocean[row, column] = False
    (tmp_path / "X").mkdir()
    sample, mask = tmp_path / "X" / "00000.npz", tmp_path / "mask.npz"
    np.savez(sample, test.fields[0])
    np.savez(mask, mask=ocean)

    first = predict.run(
        [str(residual_run), str(sample), "--mask", str(mask), "-o", str(tmp_path / "a")]
    )
    second = predict.run(
        [str(residual_run), str(sample), "--mask", str(mask), "-o", str(tmp_path / "b")]
    )

    assert len(built) == 1 and len(list(cache.glob("prior-geometry-*.npz"))) == 1
    with np.load(first[0]) as a, np.load(second[0]) as b:
        np.testing.assert_array_equal(a["gamma"], b["gamma"])
