"""What a network can be trained to predict: names only, no torch, so that the config schema
(``normcoef.config``) checks ``target.name`` without importing the training stack."""

from __future__ import annotations

TARGETS: tuple[str, ...] = ("gamma", "prior_residual")
"""What the network predicts: standardized γ, or standardized log(γ²/γ_prior²)."""


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {TARGETS}")


def needs_prior(target: str) -> bool:
    """Whether the target needs each sample's γ_prior (its reference and an input channel)."""
    return target == "prior_residual"
