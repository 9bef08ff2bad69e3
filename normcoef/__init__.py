"""normcoef: CNN estimates of normalization coefficients for diffusion operators."""
