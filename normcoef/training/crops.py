"""Training on random crops of the grids, each cut with its halo of real neighbours.

A network with valid padding sees, for each output cell, only the ``halo`` cells around it
(one per 3x3 convolution). A crop of the input cut together with that halo, taken from the
grid itself (wrapped across a periodic seam, the edge repeated along a closed axis, as
``halo_pad`` pads the whole grid), therefore gives exactly the whole grid's outputs on the
crop: training on crops trains the same function on the same targets, with more, smaller
samples per step (a GPU filled by many tiles). Batch normalization is the exception: in
training it normalizes by the statistics of the windows and their halos, not of whole grids
(docs/results.md measured crops training worse on the CPU quickstart).

Windows without an ocean cell carry no loss and are never drawn. The windows of a batch
depend only on (seed, step), like its samples, so a resumed run sees the same crops.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from normcoef.models.padding import halo_index
from normcoef.training.batches import stream_indices


def check_crop_size(size: tuple[int, int], shape: tuple[int, int]) -> None:
    """A crop must fit in the grid (one-line error otherwise)."""
    if size[0] > shape[0] or size[1] > shape[1]:
        raise ValueError(
            f"trainer.crop={list(size)} is larger than the {shape[0]}x{shape[1]} grid: "
            "choose a smaller crop, or trainer.crop=null to train on whole grids"
        )


def check_crop(
    model: nn.Module, online: bool, size: list[int], oceans: torch.Tensor | np.ndarray
) -> None:
    """Every reason ``model`` cannot train on ``size`` crops of the split whose ocean masks
    are ``oceans`` (N, H, W), as a one-line error: cheap, so a run checks it before it opens."""
    if online:
        raise ValueError(
            "trainer.crop needs a fixed training split: use augmentation.mode=offline "
            "(online augmentation transforms whole grids every step)"
        )
    if not hasattr(model, "forward_with_halo") or getattr(model, "halo", 0) < 1:
        raise ValueError(
            "trainer.crop needs a network with valid padding (model.padding=valid): with "
            "same padding a crop's edges would see copies of themselves, not their neighbours"
        )
    height, width = oceans.shape[-2:]
    check_crop_size((int(size[0]), int(size[1])), (int(height), int(width)))
    # A crop no larger than the grid covers every cell in some window: only a sample without
    # any ocean has no window to draw.
    empty = (torch.as_tensor(oceans).flatten(1).sum(1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"training samples {empty[:5]} have no ocean cell: no crop of them carries a loss; "
            "remove them from the training split"
        )


def crop_sampler(
    model: nn.Module,
    resident: tuple[torch.Tensor, ...] | None,
    size: list[int],
) -> CropSampler:
    """The sampler of ``trainer.crop`` windows for ``model``, or a one-line error saying why
    this model or data cannot train on crops."""
    check_crop(model, resident is None, size, torch.empty(0) if resident is None else resident[2])
    halo: int = model.halo  # type: ignore[assignment]  # check_crop: an int >= 1
    inputs, targets, oceans = resident  # type: ignore[misc]  # check_crop refused None
    return CropSampler.build(
        (inputs, targets, oceans),
        (int(size[0]), int(size[1])),
        halo,
        bool(getattr(model, "periodic_y", False)),
        bool(getattr(model, "periodic_x", False)),
    )


@dataclass
class CropSampler:
    """Random ocean windows of a resident training split, and the crops cut from them.

    ``inputs`` (N, C, H + 2 halo + extra, ...), ``targets`` and ``oceans`` are the split
    extended once: every window is then one contiguous block, the seam's included.
    """

    size: tuple[int, int]
    halo: int
    inputs: torch.Tensor
    targets: torch.Tensor
    oceans: torch.Tensor
    windows: torch.Tensor  # (N, max windows) flat index top * columns + left, padded
    counts: torch.Tensor  # (N,) ocean windows per sample
    columns: int  # window origins per row (W periodic, W - width + 1 closed)

    @classmethod
    def build(
        cls,
        split: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        size: tuple[int, int],
        halo: int,
        periodic_y: bool,
        periodic_x: bool,
    ) -> CropSampler:
        """``split``: (inputs (N, C, H, W), targets (N, 1, H, W), oceans (N, H, W))."""
        inputs, targets, oceans = split
        height, width = oceans.shape[-2:]
        check_crop_size(size, (height, width))
        extra_y = size[0] - 1 if periodic_y else 0
        extra_x = size[1] - 1 if periodic_x else 0
        rows = halo_index(height, halo, periodic_y, inputs.device, extra_y)
        cols = halo_index(width, halo, periodic_x, inputs.device, extra_x)
        bare_rows = rows[halo : len(rows) - halo]
        bare_cols = cols[halo : len(cols) - halo]
        oceans_ext = oceans[:, bare_rows[:, None], bare_cols].bool()
        # A window origin (top, left) is valid when its window holds an ocean cell.
        h, w = size
        found = torch.nn.functional.max_pool2d(oceans_ext[:, None].float().cpu(), size, stride=1)
        lefts = found.shape[-1]
        valid = found.flatten(1) > 0
        counts = valid.sum(1)
        windows = torch.zeros(len(valid), int(counts.max()), dtype=torch.long)
        for i, row in enumerate(valid):
            origins = row.nonzero().flatten()
            windows[i, : len(origins)] = origins
        return cls(
            size=size,
            halo=halo,
            inputs=inputs[:, :, rows[:, None], cols],
            targets=targets[:, :, bare_rows[:, None], bare_cols],
            oceans=oceans_ext,
            windows=windows,
            counts=counts,
            columns=lefts,
        )

    def origins(self, step: int, samples: list[int], seed: int) -> list[int]:
        """One random ocean window (flat origin) per sample of step ``step``'s batch."""
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step + 2**40)
        index = torch.tensor(samples)
        draw = (torch.rand(len(samples), generator=generator) * self.counts[index]).long()
        return self.windows[index, draw].tolist()

    def schedule(
        self,
        start: int,
        stop: int,
        size: int,
        batch_size: int,
        seed: int,
        device: torch.device,
        chunk: int,
    ) -> Iterator[torch.Tensor]:
        """(B, 2) tensors of (sample, window origin) for steps start..stop-1, copied to the
        device ``chunk`` steps at a time (one host sync per chunk, not per step); ``size``
        is the split's length, as for ``device_batches``. A batch may hold more crops than
        the split has samples (``stream_indices``)."""
        for first in range(start, stop, chunk):
            steps = range(first, min(first + chunk, stop))
            pairs, lengths = [], []
            for step in steps:
                samples = stream_indices(step, size, batch_size, seed)
                pairs += list(zip(samples, self.origins(step, samples, seed), strict=True))
                lengths.append(len(samples))
            yield from torch.tensor(pairs, device=device).split(lengths)

    def batch(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs with their halo (B, C, h + 2 halo, w + 2 halo), targets (B, 1, h, w) and
        oceans (B, h, w) of the (sample, origin) pairs from ``schedule``."""
        sample, origin = pairs[:, 0], pairs[:, 1]
        top, left = origin // self.columns, origin % self.columns
        height, width = self.size
        index = sample[:, None, None]

        def window(extra: int) -> tuple[torch.Tensor, torch.Tensor]:
            rows = top[:, None] + torch.arange(height + extra, device=pairs.device)
            cols = left[:, None] + torch.arange(width + extra, device=pairs.device)
            return rows[:, :, None], cols[:, None, :]

        # Advanced indices around a slice put their axes first: (B, h', w', C) -> (B, C, h', w').
        rows, cols = window(2 * self.halo)
        inputs = self.inputs[index, :, rows, cols].permute(0, 3, 1, 2)
        rows, cols = window(0)
        targets = self.targets[index, :, rows, cols].permute(0, 3, 1, 2)
        return inputs.contiguous(), targets.contiguous(), self.oceans[index, rows, cols]
