"""Training losses on standardized γ, restricted to ocean cells (report §3, §5.3).

Both take pred and target as standardized γ, (B, 1, H, W) or (B, H, W), and an ocean mask
of shape (H, W), (B, H, W) or (B, 1, H, W). Land values are replaced by 0 before any
arithmetic and weighted 0 in the mean, so they reach neither the loss nor its gradient,
whatever they hold (NaN included). A masked mean rather than selecting the ocean cells: the
shapes never depend on the data, so a GPU step needs no host synchronization (selecting asks
the host how many cells there are) and torch.compile sees one graph.
"""

from __future__ import annotations

import torch
from torch import nn

from normcoef.metrics import relative_variance_error


def ocean_mask(x: torch.Tensor, ocean: torch.Tensor) -> torch.Tensor:
    """The ocean mask as a bool tensor of x's shape (x (B, 1, H, W) or (B, H, W))."""
    # A (B, H, W) mask must meet a (B, 1, H, W) tensor on its batch axis, not on its channel.
    if ocean.ndim == 3 and x.ndim == 4:
        ocean = ocean.unsqueeze(1)
    return ocean.to(dtype=torch.bool, device=x.device).expand_as(x)


def ocean_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the cells where ``mask`` holds (NaN without any)."""
    return torch.where(mask, values, 0).sum() / mask.sum()


class OceanLoss(nn.Module):
    """A loss of standardized γ that sees ocean cells only.

    With ``log_ratio`` (set by ``for_target``) pred and target are standardized
    log(γ²/γ_prior²) instead, and target_mean, target_std their statistics.
    """

    log_ratio: bool = False

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        ocean: torch.Tensor,
        target_mean: float,
        target_std: float,
    ) -> torch.Tensor:
        """Scalar loss; physical γ = standardized γ * target_std + target_mean."""
        mask = ocean_mask(pred, ocean)
        pred, target = torch.where(mask, pred, 0), torch.where(mask, target, 0)
        return ocean_mean(self.score(pred, target, target_mean, target_std), mask)

    def score(
        self, pred: torch.Tensor, target: torch.Tensor, target_mean: float, target_std: float
    ) -> torch.Tensor:
        """The loss of every cell (land cells hold 0 and are not counted)."""
        raise NotImplementedError


class MSELoss(OceanLoss):
    """Mean squared error of standardized γ over ocean cells (the report's MSE(γ))."""

    def score(
        self, pred: torch.Tensor, target: torch.Tensor, target_mean: float, target_std: float
    ) -> torch.Tensor:
        return (pred - target).square()


class RelativeSquaredErrorLoss(OceanLoss):
    """Mean of ε² over ocean cells, ε = (γ̂² − γ²)/γ² on physical γ (the report's E[ε∘ε]).

    It weighs every cell by its relative error, which is what the metrics judge; the
    original code added 1 per land cell, which shifted the value but not the gradient.
    """

    def score(
        self, pred: torch.Tensor, target: torch.Tensor, target_mean: float, target_std: float
    ) -> torch.Tensor:
        if self.log_ratio:
            # γ̂²/γ² = exp(r̂ - r), r = log(γ²/γ_prior²): the prior and the mean cancel.
            return torch.expm1((pred - target) * target_std).square()
        gamma_hat = pred * target_std + target_mean
        gamma = target * target_std + target_mean
        return relative_variance_error(gamma_hat, gamma).square()


def for_target(loss: nn.Module, target: str) -> nn.Module:
    """``loss`` (built from conf/loss) set up for the network's target (see
    ``normcoef.data.targets.TARGETS``): the gamma target keeps it as built."""
    if target != "gamma":
        if not isinstance(loss, OceanLoss):
            raise ValueError(
                f"target={target} needs a loss of conf/loss, not {type(loss).__name__}"
            )
        loss.log_ratio = True
    return loss
