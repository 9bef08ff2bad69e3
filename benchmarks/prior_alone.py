"""The physics priors alone (no network) against exact Γ: uniform (walls ignored) and geometry.

    python benchmarks/prior_alone.py DATA_ROOT [--split test] [-n 190] [--out DIR] [--nodes 4]

For each prior, the report's four metrics (mean ± std over samples), mean |ε| against the
distance to the coast (Manhattan, cells; a figure), and where each sample's worst cell lies
(``worst_cells.place_of_worst``: within 2 cells of land, within 2 rows of a closed edge, or
in the open ocean). The geometry prior's nodes are placed on the data set's training split, as
training places them, and its table is read from (or made into) DATA_ROOT: the cost of making
it is printed. Writes
``prior_alone.json`` and ``prior_error_by_distance.png`` into --out (docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from worst_cells import place_of_worst  # benchmarks/: one rule for where a worst cell lies

from normcoef.data.distance import signed_distance
from normcoef.data.info import DatasetInfo
from normcoef.data.priors import PRIORS, make_prior
from normcoef.data.storage import load_split
from normcoef.figures import plot_error_by_distance
from normcoef.metrics import aggregate, error_by_distance, relative_error_map, sample_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("-n", "--samples", type=int, default=None)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--train", type=int, default=None, help="training samples (nodes)")
    parser.add_argument("--out", type=Path, default=Path("prior_alone"))
    args = parser.parse_args()

    info = DatasetInfo.load(args.root)
    train = load_split(args.root, "train", args.train)
    split = load_split(args.root, args.split, args.samples)
    to_land = signed_distance(split.ocean[0], "manhattan", info.periodic_x)
    results, curves = {}, {}
    for name in PRIORS:
        prior = make_prior(
            name, info, train.fields, train.ocean, nodes=args.nodes, directories=(args.root,)
        )
        start = time.perf_counter()
        prior(split.fields[0], split.ocean[0])  # the geometry table: read, or made once
        first = time.perf_counter() - start
        per_sample, maps, worst = [], [], {}
        start = time.perf_counter()
        for fields, gamma, ocean in zip(split.fields, split.gamma, split.ocean, strict=True):
            gamma_prior = prior(fields, ocean)
            per_sample.append(sample_metrics(gamma_prior, gamma, ocean))
            error = np.where(ocean, np.abs(relative_error_map(gamma_prior, gamma, ocean)), 0.0)
            maps.append(error)
            place = place_of_worst(error, to_land)
            worst[place] = worst.get(place, 0) + 1
        per_sample_time = (time.perf_counter() - start) / len(split)
        distances, curve, counts = error_by_distance(np.stack(maps), to_land, split.ocean[0])
        curves[name] = curve
        results[name] = {
            "metrics": aggregate(per_sample),
            "worst_cell": worst,
            "first_call_s": first,
            "per_sample_s": per_sample_time,
            "mean_abs_eps_by_distance": dict(zip(distances.tolist(), curve.tolist(), strict=True)),
            "nodes": prior.to_dict(),
        }
        summary = ", ".join(f"{k} {v:.4g}" for k, v in results[name]["metrics"].items())
        print(f"{name}: {summary}; worst cells {worst}; first call {first:.1f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    facts = {"root": str(args.root), "split": args.split, "samples": len(split), **results}
    (args.out / "prior_alone.json").write_text(json.dumps(facts, indent=2) + "\n")
    plot_error_by_distance(
        distances,
        {f"prior {name}": curves[name] for name in PRIORS},
        args.out / "prior_error_by_distance.png",
    )
    print(f"wrote {args.out}/prior_alone.json and prior_error_by_distance.png")


if __name__ == "__main__":
    main()
