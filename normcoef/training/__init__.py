"""The plain PyTorch training loop, its checkpoints and its factories."""
