"""Specification of the CNNs: shapes, padding, skip connections, parameter counts."""

from __future__ import annotations

import functools

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from normcoef.models import PlainCNN, SkipAddCNN, SkipConcatCNN, count_parameters
from normcoef.models.blocks import ResidualBlock
from normcoef.models.padding import halo_pad

MODELS = (PlainCNN, SkipConcatCNN, SkipAddCNN)


def conv_params(c_in: int, c_out: int) -> int:
    return 9 * c_in * c_out + c_out


def layer_params(c_in: int, c_out: int) -> int:
    """3x3 conv + BatchNorm (weight and bias per channel)."""
    return conv_params(c_in, c_out) + 2 * c_out


def plain_params(c_in: int, layers: int, ch: int) -> int:
    return layer_params(c_in, ch) + (layers - 2) * layer_params(ch, ch) + conv_params(ch, 1)


def concat_params(c_in: int, layers: int, ch: int, block_layers: int) -> int:
    blocks = (layers - 2) // block_layers
    first_layers = layer_params(ch, ch) + (blocks - 1) * layer_params(2 * ch, ch)
    other_layers = blocks * (block_layers - 1) * layer_params(ch, ch)
    return layer_params(c_in, ch) + first_layers + other_layers + conv_params(2 * ch, 1)


@pytest.mark.parametrize("model_class", MODELS)
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("in_channels", [3, 4])
def test_output_covers_the_input_grid(model_class, padding, in_channels):
    model = model_class(in_channels, layers=6, channels=4, padding=padding)
    out = model(torch.randn(2, in_channels, 9, 14))
    assert out.shape == (2, 1, 9, 14)


def test_valid_padding_handles_a_halo_wider_than_the_grid():
    model = PlainCNN(3, layers=10, channels=4, periodic_y=True)
    assert model(torch.randn(1, 3, 5, 6)).shape == (1, 1, 5, 6)


def test_halo_wraps_periodic_axes_and_replicates_closed_ones():
    x = torch.arange(6.0).reshape(2, 3)
    padded = halo_pad(x, 1, periodic_y=False, periodic_x=True)
    expected = torch.tensor(
        [[2.0, 0, 1, 2, 0], [2.0, 0, 1, 2, 0], [5.0, 3, 4, 5, 3], [5.0, 3, 4, 5, 3]]
    )
    torch.testing.assert_close(padded, expected)


@pytest.mark.parametrize("model_class", MODELS)
def test_periodic_x_model_commutes_with_rolls_along_x(model_class):
    torch.manual_seed(0)
    model = model_class(3, layers=6, channels=4, padding="valid", periodic_x=True).eval()
    x = torch.randn(1, 3, 7, 10)
    with torch.no_grad():
        rolled_output = model(torch.roll(x, 3, dims=-1))
        output_rolled = torch.roll(model(x), 3, dims=-1)
    torch.testing.assert_close(rolled_output, output_rolled)


def test_parameter_counts_match_the_report():
    # Report §4.2 (2.99e5), §5.1 (4.12e5), §5.4 (2.99e5); 3 inputs on the Python grid.
    assert count_parameters(PlainCNN(3)) == plain_params(3, 10, 64) == 298_945
    assert count_parameters(PlainCNN(4)) == plain_params(4, 10, 64) == 299_521
    assert count_parameters(SkipConcatCNN(4)) == concat_params(4, 10, 64, 2) == 410_689
    assert count_parameters(SkipAddCNN(4)) == plain_params(4, 10, 64) == 299_521
    assert count_parameters(SkipConcatCNN(4)) == pytest.approx(4.12e5, rel=0.01)
    assert count_parameters(SkipConcatCNN(4, layers=16)) == pytest.approx(7.45e5, rel=0.01)


def test_skip_models_count_blocks_of_other_sizes():
    assert count_parameters(SkipConcatCNN(4, layers=11, channels=8, block_layers=3)) == (
        concat_params(4, 11, 8, 3)
    )
    assert count_parameters(SkipAddCNN(4, layers=11, channels=8, block_layers=3)) == (
        plain_params(4, 11, 8)
    )


def test_every_activation_place_gets_its_own_module():
    prelu = count_parameters(PlainCNN(3, layers=4, channels=4, activation=nn.PReLU))
    # PReLU has one parameter; input layer + 2 hidden layers = 3 activations.
    assert prelu == plain_params(3, 4, 4) + 3


def test_models_build_from_a_hydra_config():
    config = {
        "_target_": "normcoef.models.SkipAddCNN",
        "in_channels": 4,
        "layers": 6,
        "channels": 4,
        "activation": {"_target_": "torch.nn.LeakyReLU", "_partial_": True, "negative_slope": 0.01},
    }
    model = instantiate(config)
    assert isinstance(model, SkipAddCNN)
    assert model(torch.randn(1, 4, 6, 8)).shape == (1, 1, 6, 8)


@pytest.mark.parametrize("model_class", MODELS)
def test_unknown_padding_is_refused_naming_the_allowed_values(model_class):
    with pytest.raises(ValueError, match="valid.*same"):
        model_class(3, padding="reflect")


@pytest.mark.parametrize("model_class", MODELS)
def test_fewer_than_two_layers_is_refused(model_class):
    with pytest.raises(ValueError, match="layers"):
        model_class(3, layers=1)


@pytest.mark.parametrize("model_class", [SkipConcatCNN, SkipAddCNN])
@pytest.mark.parametrize(("layers", "block_layers"), [(2, 2), (7, 2), (10, 0), (4, 3)])
def test_skip_models_refuse_hidden_layers_that_do_not_split_into_blocks(
    model_class, layers, block_layers
):
    with pytest.raises(ValueError, match="allowed layers"):
        model_class(3, layers=layers, block_layers=block_layers)


def test_plain_model_ignores_block_layers():
    assert count_parameters(PlainCNN(3, layers=5, block_layers=2)) == plain_params(3, 5, 64)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_concat_skip_carries_the_previous_block_past_a_silenced_block(padding):
    # With the last block's final conv zeroed, its output y_b is constant; the output can
    # still depend on the input only through y_{b-1}, which the original code dropped.
    torch.manual_seed(0)
    model = SkipConcatCNN(3, layers=6, channels=4, padding=padding).eval()
    last_conv = model.body.blocks[-1][-1][0]
    with torch.no_grad():
        last_conv.weight.zero_()
        last_conv.bias.zero_()
        outputs = [model(torch.randn(1, 3, 8, 9)) for _ in range(2)]
    assert not torch.allclose(outputs[0], outputs[1])


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_residual_block_with_a_silenced_branch_passes_its_input_through(padding):
    block = ResidualBlock(4, block_layers=2, activation=nn.ReLU, padding=padding).eval()
    with torch.no_grad():
        block.branch[-1].weight.zero_()
        block.branch[-1].bias.zero_()
        x = torch.rand(1, 4, 8, 9)  # non-negative, so ReLU leaves it unchanged
        out = block(x)
    crop = 2 if padding == "valid" else 0
    torch.testing.assert_close(out, x[..., crop : 8 - crop, crop : 9 - crop])


def test_partial_activation_factories_are_accepted():
    model = PlainCNN(3, layers=3, channels=4, activation=functools.partial(nn.LeakyReLU, 0.2))
    slopes = [m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2, 0.2]
