"""Specification of test-time augmentation (normcoef.training.forward.predict_gamma, tta=True): the
network's γ² averaged over the flips of the input, each output flipped back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from normcoef.data.info import DatasetInfo
from normcoef.data.torch_dataset import Standardizer
from normcoef.training.forward import TTA_TRANSFORMS, predict_gamma
from tests.test_target import STEPS, tiny_split


class FixedOutput(nn.Module):
    """Ignores its input: the same standardized map for every transform."""

    def __init__(self, output: np.ndarray) -> None:
        super().__init__()
        self.output = torch.from_numpy(output)[None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output.expand(x.shape[0], 1, *x.shape[-2:])


class AreaChannel(nn.Module):
    """Outputs the standardized W channel: a cell field, so exactly flip-equivariant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 2:3]


def flipped_back_mean_square(values: np.ndarray) -> np.ndarray:
    """By hand: identity, hflip (columns), vflip (rows), rot180 (both) of a fixed map."""
    flips = [values, values[:, ::-1], values[::-1, :], values[::-1, ::-1]]
    return np.sqrt(np.mean([f**2 for f in flips], axis=0))


@pytest.mark.parametrize("target", ["gamma", "prior_residual"])
def test_tta_of_a_fixed_output_averages_the_flipped_back_variances(target):
    split = tiny_split()
    standardizer = Standardizer.fit(split, "partial", None, DatasetInfo(steps=STEPS), target)
    fields, ocean = split.fields[0], split.ocean[0]
    output = np.random.default_rng(0).normal(size=ocean.shape)
    model = FixedOutput(output)

    gamma = predict_gamma(model, standardizer, fields, ocean, torch.device("cpu"), tta=True)

    assert TTA_TRANSFORMS == ("identity", "hflip", "vflip", "rot180")
    mean, std = standardizer.target_scale
    if target == "gamma":
        expected = flipped_back_mean_square(output * std + mean)
    else:  # γ = γ_prior exp(r/2); the prior of each flipped input flips back onto the prior
        prior = standardizer.prior(fields, ocean)
        expected = prior * flipped_back_mean_square(np.exp(0.5 * (output * std + mean)))
    np.testing.assert_allclose(gamma[ocean], expected[ocean], rtol=1e-9)
    untransformed = predict_gamma(model, standardizer, fields, ocean, torch.device("cpu"))
    assert not np.allclose(gamma[ocean], untransformed[ocean], rtol=1e-3)


def test_tta_of_an_equivariant_network_changes_nothing():
    split = tiny_split()
    standardizer = Standardizer.fit(split, "full", None)
    fields, ocean = split.fields[2], split.ocean[2]

    plain = predict_gamma(AreaChannel(), standardizer, fields, ocean, torch.device("cpu"))
    tta = predict_gamma(AreaChannel(), standardizer, fields, ocean, torch.device("cpu"), tta=True)

    np.testing.assert_allclose(tta, plain, rtol=1e-12)
