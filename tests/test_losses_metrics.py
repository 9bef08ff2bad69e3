"""Specification of the losses (standardized γ, torch) and metrics (physical γ, numpy)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from normcoef.figures import plot_distance_histogram, plot_error_by_distance, plot_error_map
from normcoef.losses import MSELoss, RelativeSquaredErrorLoss
from normcoef.metrics import (
    EPS_QUANTILE,
    aggregate,
    error_by_distance,
    mean_error_map,
    relative_error,
    relative_error_map,
    sample_metrics,
)

MEAN, STD = 2.0, 0.5
OCEAN = torch.tensor([[True, True, False], [True, False, True]])


def standardized(gamma: torch.Tensor) -> torch.Tensor:
    return (gamma - MEAN) / STD


def test_mse_averages_squared_errors_over_ocean_cells_only():
    target = torch.zeros(1, 1, 2, 3)
    pred = torch.tensor([[[[1.0, 2.0, 100.0], [3.0, 100.0, 0.0]]]])
    loss = MSELoss()(pred, target, OCEAN, MEAN, STD)
    assert loss.item() == pytest.approx((1 + 4 + 9 + 0) / 4)


def test_relative_loss_is_the_mean_squared_variance_error_of_physical_gamma():
    gamma = torch.tensor([[[[1.0, 2.0, 0.0], [3.0, 0.0, 4.0]]]])
    # γ̂² = 1.1 γ² on the ocean gives ε = 0.1 everywhere, so E[ε∘ε] = 0.01.
    gamma_hat = gamma * 1.1**0.5
    loss = RelativeSquaredErrorLoss()(
        standardized(gamma_hat), standardized(gamma), OCEAN, MEAN, STD
    )
    assert loss.item() == pytest.approx(0.01, rel=1e-5)


@pytest.mark.parametrize("loss_fn", [MSELoss(), RelativeSquaredErrorLoss()])
def test_land_never_affects_the_loss_or_its_gradient(loss_fn):
    torch.manual_seed(0)
    target = torch.rand(2, 1, 2, 3) + 1
    base = torch.rand(2, 1, 2, 3) + 1
    land = ~OCEAN.expand_as(base)
    results = []
    for land_value in (0.0, float("nan")):
        pred = base.masked_fill(land, land_value).requires_grad_()
        loss = loss_fn(pred, target, OCEAN, MEAN, STD)
        loss.backward()
        results.append((loss.detach(), pred.grad))
    (loss_a, grad_a), (loss_b, grad_b) = results
    torch.testing.assert_close(loss_a, loss_b)
    torch.testing.assert_close(grad_a, grad_b)
    assert torch.all(grad_a[land] == 0)


@pytest.mark.parametrize("loss_fn", [MSELoss(), RelativeSquaredErrorLoss()])
def test_masks_and_tensors_with_or_without_a_channel_axis_agree(loss_fn):
    torch.manual_seed(0)
    pred, target = torch.rand(2, 1, 2, 3) + 1, torch.rand(2, 1, 2, 3) + 1
    per_sample = OCEAN.expand(2, 2, 3)
    expected = loss_fn(pred, target, OCEAN, MEAN, STD)
    for mask in (per_sample, per_sample[:, None]):
        torch.testing.assert_close(loss_fn(pred, target, mask, MEAN, STD), expected)
    torch.testing.assert_close(loss_fn(pred[:, 0], target[:, 0], per_sample, MEAN, STD), expected)


GAMMA = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 4.0]])
OCEAN_NP = GAMMA != 0


def test_a_ten_percent_variance_error_gives_ten_percent_on_every_metric():
    metrics = sample_metrics(GAMMA * np.sqrt(1.1), GAMMA, OCEAN_NP)
    assert metrics == pytest.approx({"rmse": 0.1, "eps_mean": 0.1, "eps_q": 0.1, "eps_max": 0.1})


def test_relative_error_lists_ocean_cells_only_with_their_sign():
    gamma_hat = GAMMA * np.sqrt([[0.9, 1.0, 1.0], [1.2, 1.0, 1.0]])
    np.testing.assert_allclose(relative_error(gamma_hat, GAMMA, OCEAN_NP), [-0.1, 0, 0.2, 0])


def test_a_single_outlier_sets_eps_max():
    gamma = np.ones((20, 30))
    gamma_hat = gamma.copy()
    gamma_hat[4, 5] = np.sqrt(1.5)
    metrics = sample_metrics(gamma_hat, gamma, np.ones_like(gamma, dtype=bool))
    abs_eps = np.zeros(600)
    abs_eps[0] = 0.5
    assert metrics["eps_max"] == pytest.approx(0.5)
    assert metrics["eps_mean"] == pytest.approx(0.5 / 600)
    assert metrics["rmse"] == pytest.approx(np.sqrt(0.25 / 600))
    assert metrics["eps_q"] == pytest.approx(np.quantile(abs_eps, EPS_QUANTILE))
    assert 0 < metrics["eps_q"] < metrics["eps_max"]


def test_land_never_affects_any_metric_nor_warns():
    gamma_hat = GAMMA * np.sqrt(1.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference = sample_metrics(gamma_hat, GAMMA, OCEAN_NP)
        for land_value in (0.0, 1e9, np.nan):
            assert sample_metrics(np.where(OCEAN_NP, gamma_hat, land_value), GAMMA, OCEAN_NP) == (
                reference
            )
        eps_map = relative_error_map(gamma_hat, GAMMA, OCEAN_NP)
    np.testing.assert_allclose(eps_map[OCEAN_NP], 0.1)
    assert np.isnan(eps_map[~OCEAN_NP]).all()


def test_aggregate_gives_mean_and_std_over_samples():
    per_sample = [{"eps_q": 1.0, "eps_max": 2.0}, {"eps_q": 3.0, "eps_max": 2.0}]
    assert aggregate(per_sample) == pytest.approx(
        {"eps_q": 2.0, "eps_q_std": 1.0, "eps_max": 2.0, "eps_max_std": 0.0}
    )
    with pytest.raises(ValueError):
        aggregate([])


DISTANCE = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 2.9]])
OCEAN_D = np.array([[False, True, True], [True, False, True]])


def test_error_by_distance_averages_all_samples_ocean_cells_per_rounded_distance():
    abs_eps = np.array([[[99.0, 1.0, 2.0], [3.0, 99.0, 4.0]], [[np.nan, 5.0, 6.0], [7.0, 99, 8.0]]])
    distances, mean_abs_eps, counts = error_by_distance(abs_eps, DISTANCE, OCEAN_D)
    np.testing.assert_array_equal(distances, [1, 2, 3])
    np.testing.assert_allclose(mean_abs_eps, [(1 + 3 + 5 + 7) / 4, (2 + 6) / 2, (4 + 8) / 2])
    np.testing.assert_array_equal(counts, [4, 2, 2])


def test_mean_error_map_averages_samples_and_blanks_land():
    abs_eps = np.array([[[9.0, 1.0, 2.0], [3.0, 9.0, 4.0]], [[np.nan, 3.0, 2.0], [1.0, 9.0, 0.0]]])
    expected = np.array([[np.nan, 2.0, 2.0], [2.0, np.nan, 2.0]])
    np.testing.assert_allclose(mean_error_map(abs_eps, OCEAN_D), expected)


def test_figures_are_written_as_non_empty_pngs(tmp_path):
    distances, counts = np.arange(1, 6), np.array([50, 30, 10, 5, 5])
    paths = [
        plot_error_by_distance(distances, {"CNN": 1e-2 / distances}, tmp_path / "by_distance.png"),
        plot_distance_histogram(distances, counts, tmp_path / "histogram.png"),
        plot_error_map(np.where(OCEAN_D, 1e-3, np.nan), tmp_path / "sub" / "map.png"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table_gives_a_spread_only_where_one_was_measured():
    from normcoef.scoring import Evaluation

    one = {"eps_q": 0.5, "eps_max": 0.6, "eps_mean": 0.01, "rmse": 0.02}
    several = {**one, **{f"{key}_std": 0.001 for key in one}}
    table = Evaluation(methods={"CNN": one}, samples=1).table()
    assert "| CNN | 0.5 | 0.6 | 0.01 | 0.02 |" in table
    table = Evaluation(methods={"CNN": several}, samples=4).table()
    assert "| CNN | 0.5 ± 0.001 | 0.6 ± 0.001 | 0.01 ± 0.001 | 0.02 ± 0.001 |" in table


@pytest.mark.parametrize("log_ratio", [False, True])
@pytest.mark.parametrize("loss_type", [MSELoss, RelativeSquaredErrorLoss])
def test_losses_have_data_independent_shapes_so_a_gpu_step_needs_no_host_sync(loss_type, log_ratio):
    """Selecting ocean cells (x[mask]) has a shape that depends on the data: CUDA makes the
    host wait for the count every step. A masked mean does not, which the meta device (shapes
    without data) shows: it refuses to select."""
    loss_fn = loss_type()
    loss_fn.log_ratio = log_ratio
    torch.manual_seed(0)
    pred, target = torch.rand(2, 1, 2, 3) + 1, torch.rand(2, 1, 2, 3) + 1
    target = target.masked_fill(~OCEAN.expand_as(target), float("nan"))  # land: don't care
    on_meta = loss_fn(*(t.to("meta") for t in (pred, target, OCEAN)), MEAN, STD)
    assert on_meta.shape == ()
    expected = loss_fn(pred, target, OCEAN, MEAN, STD)
    assert torch.isfinite(expected)
    # The masked mean is the mean of the ocean cells' scores.
    ocean = OCEAN.expand_as(pred)
    scores = loss_fn.score(pred[ocean], target[ocean], MEAN, STD)
    torch.testing.assert_close(expected, scores.mean())


def test_the_error_map_scale_is_not_set_by_one_coastal_cell():
    from normcoef.figures import error_map_scale

    cnn = np.full((20, 30), 1e-4)
    cnn[0, 0] = 0.5  # one coastal outlier
    prior = np.where(np.arange(30) < 15, np.nan, 1e-2) * np.ones((20, 1))
    vmin, vmax = error_map_scale(cnn, prior)
    assert vmin == pytest.approx(1e-4) and vmax == pytest.approx(1e-2)
    assert error_map_scale(np.full((2, 2), np.nan)) == (1e-12, 1.0)
