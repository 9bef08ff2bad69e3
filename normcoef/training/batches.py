"""Which samples each training step sees: a function of (seed, step) only, so that a
resumed run sees exactly the batches an uninterrupted one does."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator

import torch


def batch_indices(step: int, size: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the batch of ``step``: a seeded permutation per epoch, no sample dropped."""
    per_epoch = math.ceil(size / batch_size)
    epoch, position = divmod(step, per_epoch)
    order = epoch_order(epoch, size, seed)
    return order[position * batch_size : (position + 1) * batch_size]


@functools.lru_cache(maxsize=64)
def epoch_order(epoch: int, size: int, seed: int) -> list[int]:
    """The seeded permutation of the samples in ``epoch``."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(size, generator=generator).tolist()


def stream_indices(step: int, size: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the batch of ``step`` read from the epochs' permutations laid end to end:
    every batch is full, even larger than the split (many crops of each grid), and every
    sample is seen once per epoch."""
    first = step * batch_size
    return [
        epoch_order(position // size, size, seed)[position % size]
        for position in range(first, first + batch_size)
    ]


def device_batches(
    start: int, stop: int, size: int, batch_size: int, seed: int, device: torch.device, chunk: int
) -> Iterator[torch.Tensor]:
    """``batch_indices`` of steps start..stop-1 as index tensors on ``device``, copied ``chunk``
    steps at a time: one host-to-device copy (a host sync on CUDA) per chunk, not per step."""
    for first in range(start, stop, chunk):
        batches = [
            batch_indices(step, size, batch_size, seed)
            for step in range(first, min(first + chunk, stop))
        ]
        flat = torch.tensor(list(itertools.chain.from_iterable(batches)), device=device)
        yield from flat.split([len(batch) for batch in batches])
