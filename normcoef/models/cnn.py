"""The report's CNNs: plain (§3), concatenation skips (§5.1) and additive skips (§5.4).

All three share one constructor, so a Hydra config swaps them with ``_target_`` alone, and
one frame: input layer (conv in_channels -> channels, BN, activation), a body, and an output
layer (conv -> 1 channel, no BN, no activation). ``layers`` counts every conv layer.
Input (B, C, H, W) -> output (B, 1, H, W), for either padding.
"""

from __future__ import annotations

import torch
from torch import nn

from normcoef.models.blocks import (
    Activation,
    ConcatSkipChain,
    ResidualBlock,
    conv3x3,
    conv_bn_act,
    conv_stack,
)
from normcoef.models.padding import halo_pad


class _CNN(nn.Module):
    """Input layer, body, output layer; with "valid" padding, one halo of ``layers`` cells.

    The periodic flags shape that halo only; "same" padding replicates edges at every conv,
    as in the report's §3, whatever the grid's topology.
    """

    def __init__(
        self,
        in_channels: int,
        layers: int = 10,
        channels: int = 64,
        activation: Activation = nn.ReLU,
        padding: str = "valid",
        block_layers: int = 2,
        periodic_x: bool = True,
        periodic_y: bool = False,
    ) -> None:
        super().__init__()
        # Named by their config keys: these come from conf/model (free-form, no schema).
        if layers < 2:
            raise ValueError(
                f"model.layers={layers}: must be >= 2 (layers counts the input and output layers)"
            )
        if channels < 1:
            raise ValueError(f"model.channels={channels}: must be >= 1")
        self.layers = layers
        self.padding = padding
        self.periodic_x = periodic_x
        self.periodic_y = periodic_y
        self.input_layer = conv_bn_act(in_channels, channels, activation, padding)
        self.body, body_channels = self._body(
            layers - 2, channels, activation, padding, block_layers
        )
        self.output_layer = conv3x3(body_channels, 1, padding)

    def _body(
        self, hidden: int, channels: int, activation: Activation, padding: str, block_layers: int
    ) -> tuple[nn.Module, int]:
        """The ``hidden`` layers between input and output layer, and their output channels."""
        raise NotImplementedError

    @property
    def halo(self) -> int:
        """Cells of context each side of an output cell: one per valid convolution."""
        return self.layers if self.padding == "valid" else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "valid":
            x = halo_pad(x, self.layers, periodic_y=self.periodic_y, periodic_x=self.periodic_x)
        return self.forward_with_halo(x)

    def forward_with_halo(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H + 2 halo, W + 2 halo) -> (B, 1, H, W): an input that already carries its
        halo of real neighbours (a training crop, normcoef.training.crops)."""
        return self.output_layer(self.body(self.input_layer(x)))


def _blocks(hidden: int, block_layers: int) -> int:
    """Number of skip blocks; the hidden layers must split into whole blocks."""
    if block_layers < 1 or hidden < block_layers or hidden % block_layers:
        allowed = ", ".join(str(2 + k * max(block_layers, 1)) for k in (1, 2, 3))
        raise ValueError(
            f"model.block_layers={block_layers}: the layers - 2 = {hidden} hidden layers must be "
            f"a positive multiple of block_layers >= 1 (allowed layers: {allowed}, ...)"
        )
    return hidden // block_layers


class PlainCNN(_CNN):
    """Stack of conv + BN + activation layers (report §3); ``block_layers`` is ignored."""

    def _body(
        self, hidden: int, channels: int, activation: Activation, padding: str, block_layers: int
    ) -> tuple[nn.Module, int]:
        return conv_stack(channels, channels, hidden, activation, padding), channels


class SkipConcatCNN(_CNN):
    """Blocks of ``block_layers`` layers joined by concatenation (report §5.1, Fig. 4)."""

    def _body(
        self, hidden: int, channels: int, activation: Activation, padding: str, block_layers: int
    ) -> tuple[nn.Module, int]:
        blocks = _blocks(hidden, block_layers)
        return ConcatSkipChain(channels, blocks, block_layers, activation, padding), 2 * channels


class SkipAddCNN(_CNN):
    """Residual blocks of ``block_layers`` layers (report §5.4, Figs. 8-9)."""

    def _body(
        self, hidden: int, channels: int, activation: Activation, padding: str, block_layers: int
    ) -> tuple[nn.Module, int]:
        blocks = _blocks(hidden, block_layers)
        body = nn.Sequential(
            *(ResidualBlock(channels, block_layers, activation, padding) for _ in range(blocks))
        )
        return body, channels


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, the figure the report quotes for each architecture."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
