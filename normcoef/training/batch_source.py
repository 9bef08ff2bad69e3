"""The batches a run trains on, from one source chosen once per run.

- resident: the whole training split stacked on the device once, indexed per step;
- crops (``trainer.crop``): random windows of the resident split, each with its halo;
- online augmentation: samples transformed anew each step, collated on the host.

The batch of step s depends only on (seed, s) in each, so a resumed run trains on exactly the
batches an uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from normcoef.data.torch_dataset import NormalizationDataset
from normcoef.training.batches import batch_indices, device_batches
from normcoef.training.crops import CropSampler, crop_sampler
from normcoef.training.settings import LoopSettings

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs, targets, oceans


def collate(dataset: NormalizationDataset, indices: list[int], draw: int, device: torch.device):
    items = [dataset.item(i, draw) for i in indices]
    return tuple(torch.stack(parts).to(device) for parts in zip(*items, strict=True))


def resident_split(
    dataset: NormalizationDataset, device: torch.device
) -> tuple[torch.Tensor, ...] | None:
    """The whole split (inputs, targets, oceans) stacked on ``device`` once, for indexing per
    step; None with online augmentation, whose samples change every step."""
    if dataset.online:
        return None
    return collate(dataset, list(range(len(dataset))), 0, device)


class BatchSource:
    """The batches of steps ``start`` .. ``stop`` - 1 of one run, and the forward pass that
    fits them (crops carry their halo: ``forward_with_halo``)."""

    def __init__(
        self, model: nn.Module, train: NormalizationDataset, settings: LoopSettings, device
    ) -> None:
        self.train, self.settings, self.device = train, settings, device
        self.resident = resident_split(train, device)
        self.crops: CropSampler | None = (
            None if settings.crop is None else crop_sampler(model, self.resident, settings.crop)
        )
        self.forward: Callable[[torch.Tensor], torch.Tensor] = (
            model if self.crops is None else model.forward_with_halo  # type: ignore[assignment]
        )

    def batches(self, start: int, stop: int) -> Iterator[Batch]:
        s, size = self.settings, len(self.train)
        if self.resident is None:  # online augmentation: draw `step` of every sample
            for step in range(start, stop):
                indices = batch_indices(step, size, s.batch_size, s.seed)
                yield collate(self.train, indices, step, self.device)
        elif self.crops is not None:
            schedule = self.crops.schedule
            for pairs in schedule(
                start, stop, size, s.batch_size, s.seed, self.device, s.log_every
            ):
                yield self.crops.batch(pairs)
        else:
            resident = self.resident
            for index in device_batches(
                start, stop, size, s.batch_size, s.seed, self.device, s.log_every
            ):
                yield resident[0][index], resident[1][index], resident[2][index]
