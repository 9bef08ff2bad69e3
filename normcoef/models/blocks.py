"""Layers and blocks shared by the CNNs: 3x3 conv + BatchNorm + activation, skip blocks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from normcoef.models.padding import center_crop

Activation = Callable[[], nn.Module]
PADDINGS: tuple[str, ...] = ("valid", "same")


def conv3x3(in_channels: int, out_channels: int, padding: str) -> nn.Conv2d:
    """3x3 convolution; "same" replicates the edge (report §3), "valid" relies on the halo."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if padding == "same":
        return nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="replicate")
    return nn.Conv2d(in_channels, out_channels, 3)


def conv_bn_act(
    in_channels: int, out_channels: int, activation: Activation, padding: str
) -> nn.Sequential:
    """One input or hidden layer of the report's CNN (§3)."""
    return nn.Sequential(
        conv3x3(in_channels, out_channels, padding), nn.BatchNorm2d(out_channels), activation()
    )


def conv_stack(
    in_channels: int, channels: int, layers: int, activation: Activation, padding: str
) -> nn.Sequential:
    """``layers`` conv + BN + activation layers, in_channels -> channels (identity if 0)."""
    return nn.Sequential(
        *(
            conv_bn_act(in_channels if i == 0 else channels, channels, activation, padding)
            for i in range(layers)
        )
    )


class ConcatSkipChain(nn.Module):
    """Blocks whose outputs are concatenated with the previous block's output (report §5.1).

    Block b maps z_{b-1} to y_b, then z_b = [y_b, y_{b-1}] along channels, with z_0 = y_0 the
    input layer's output. (The original code concatenated y_b with itself.)
    Input (B, ch, H, W); output (B, 2 ch, H', W').
    """

    def __init__(
        self, channels: int, blocks: int, block_layers: int, activation: Activation, padding: str
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            conv_stack(
                channels if b == 0 else 2 * channels, channels, block_layers, activation, padding
            )
            for b in range(blocks)
        )

    def forward(self, y0: torch.Tensor) -> torch.Tensor:
        previous, z = y0, y0
        for block in self.blocks:
            y = block(z)
            z = torch.cat([y, center_crop(previous, y)], dim=1)
            previous = y
        return z


class ResidualBlock(nn.Module):
    """act(x + BN(conv(... act(BN(conv(x)))))), ResNet-like (report §5.4, Fig. 9).

    The last BN has no activation before the addition; with valid padding x is cropped to
    the branch's smaller output.
    """

    def __init__(
        self, channels: int, block_layers: int, activation: Activation, padding: str
    ) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            *conv_stack(channels, channels, block_layers - 1, activation, padding),
            conv3x3(channels, channels, padding),
            nn.BatchNorm2d(channels),
        )
        self.activation = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.branch(x)
        return self.activation(center_crop(x, h) + h)
