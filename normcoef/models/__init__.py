"""CNNs that map input fields (B, C, H, W) to standardized coefficients γ (B, 1, H, W)."""

from normcoef.models.cnn import PlainCNN, SkipAddCNN, SkipConcatCNN, count_parameters

__all__ = ["PlainCNN", "SkipAddCNN", "SkipConcatCNN", "count_parameters"]
