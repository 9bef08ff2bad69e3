"""Where a network's worst cells are: per test sample, the cell of largest |ε|, against the
distance to land and to the grid's closed northern and southern edges.

    python benchmarks/worst_cells.py [--pretrained global | CHECKPOINT] [--dataset DIR] [-n 190]

The distance channel is measured to land cells only; a closed edge is a wall the diffusion
reflects from too. This says whether the maxima that set ε_max sit at coasts, at those walls
away from land, or in the open ocean (docs/results.md, "Where the error is"), and re-scores
the network on the same samples as it goes (a shipped network's provenance states its own).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from normcoef.data.distance import signed_distance
from normcoef.data.storage import load_split
from normcoef.inference import TrainedModel, load_trained_model
from normcoef.metrics import aggregate, relative_error_map, sample_metrics
from normcoef.pretrained import checkpoint_path

NEAR = 2
"""Cells from land, or rows from a closed edge, that count as "at" it."""


def place_of_worst(error: np.ndarray, to_land: np.ndarray) -> str:
    """Where the largest of an (H, W) |ε| map lies: ``land coast`` (within NEAR cells of
    land), ``closed edge`` (within NEAR rows of the first or last row, farther from land) or
    ``open ocean``; ``to_land`` is the distance to land in cells."""
    row, column = np.unravel_index(np.argmax(error), error.shape)
    if to_land[row, column] <= NEAR:
        return "land coast"
    if min(row, error.shape[0] - 1 - row) <= NEAR:
        return "closed edge"
    return "open ocean"


def worst_cells(trained: TrainedModel, root: Path, samples: int | None) -> dict:
    split = load_split(root, "test", samples)
    periodic_x = trained.dataset.periodic_x
    per_sample, at_land, at_wall_only, abs_maps = [], 0, 0, []
    for fields, gamma, ocean in zip(split.fields, split.gamma, split.ocean, strict=True):
        predicted = trained.predict(fields, ocean)
        per_sample.append(sample_metrics(predicted, gamma, ocean))
        error = np.where(ocean, np.abs(relative_error_map(predicted, gamma, ocean)), 0.0)
        abs_maps.append(error)
        place = place_of_worst(error, signed_distance(ocean, "manhattan", periodic_x))
        at_land += place == "land coast"
        at_wall_only += place == "closed edge"
    ocean = split.ocean[0]
    open_ocean = ocean & (signed_distance(ocean, "manhattan", periodic_x) > NEAR)
    walls = np.zeros_like(ocean)
    walls[:NEAR], walls[-NEAR:] = True, True
    mean_map = np.mean(abs_maps, axis=0)
    metrics = aggregate(per_sample)
    return {
        "samples": len(per_sample),
        "test": {key: metrics[key] for key in ("eps_q", "eps_max", "eps_mean", "rmse")},
        f"worst cell within {NEAR} cells of land": at_land,
        f"worst cell within {NEAR} rows of a closed edge, farther from land": at_wall_only,
        "worst cell elsewhere": len(per_sample) - at_land - at_wall_only,
        "mean |ε| by the closed edges, away from land": float(mean_map[open_ocean & walls].mean()),
        "mean |ε| in the open ocean, away from the edges": float(
            mean_map[open_ocean & ~walls].mean()
        ),
        "cells by the closed edges, away from land": int((open_ocean & walls).sum()),
        "open-ocean cells": int(open_ocean.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", help="a .pt file (default: --pretrained)")
    parser.add_argument("--pretrained", default="global")
    parser.add_argument("--dataset", type=Path, default=Path("data/global-292x360-seed0"))
    parser.add_argument("-n", "--samples", type=int, default=None, help="first N (all: unset)")
    args = parser.parse_args()
    path = args.checkpoint or checkpoint_path(args.pretrained)
    found = worst_cells(load_trained_model(path), args.dataset, args.samples)
    print(json.dumps(found, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
