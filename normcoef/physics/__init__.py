"""Diffusion operators and their normalization coefficients (torch only for CUDA solves)."""

from normcoef.physics.diffusion import (
    DiffusionOperator,
    FieldError,
    FieldViolation,
    check_fields,
    diffusivity_from_length_scale,
    field_violations,
)
from normcoef.physics.normalization import (
    brute_force_normalization,
    exact_normalization,
    randomized_normalization,
    uniform_periodic_normalization,
)

__all__ = [
    "DiffusionOperator",
    "FieldError",
    "FieldViolation",
    "brute_force_normalization",
    "check_fields",
    "diffusivity_from_length_scale",
    "exact_normalization",
    "field_violations",
    "randomized_normalization",
    "uniform_periodic_normalization",
]
