"""How many nodes a geometry table needs: its error between nodes and on generated samples.

    python benchmarks/prior_nodes.py [--height 64 --width 128] [--samples 4] [--nodes 2 3 4 5 7]

On the python grid (M = 10), for each node count per axis: the time to make the table, the
largest |ε| of the prior against exact Γ of the reference fields at the midpoints between
nodes (where the spline is least exact), and the prior's metrics on generated samples with
varying coefficients. docs/results.md chose DEFAULT_NODES from this.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import python_grid
from normcoef.metrics import aggregate, sample_metrics
from normcoef.physics import DiffusionOperator, exact_normalization
from normcoef.physics.geometry_prior import (
    GeometryTable,
    log_nodes,
    reference_fields,
    sample_reference_ratios,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--nodes", type=int, nargs="+", default=[2, 3, 4, 5, 7])
    args = parser.parse_args()

    grid = python_grid(args.height, args.width)
    ocean, periodicity, steps = grid.mask, (grid.periodic_x, grid.periodic_y), 10
    samples = [make_fields(grid, FieldParameters(), 0, k) for k in range(args.samples)]
    exact = [exact_normalization(DiffusionOperator(f, ocean, steps)) for f in samples]
    ratios = [sample_reference_ratios(f, ocean, periodicity) for f in samples]
    x = np.concatenate([r[0] for r in ratios])
    y = np.concatenate([r[1] for r in ratios])
    area = samples[0][2]
    print(f"python grid {args.height}x{args.width}, {args.samples} samples, M = {steps}")
    print("nodes | make (s) | max |ε| between nodes | samples: eps_mean, eps_q, eps_max")
    for count in args.nodes:
        start = time.perf_counter()
        table = GeometryTable.build(
            ocean, area, steps, periodicity, (log_nodes(x, count), log_nodes(y, count))
        )
        made = time.perf_counter() - start
        between = 0.0
        for i in range(count - 1):
            for j in range(count - 1):
                alpha = np.exp((table.log_alpha[i] + table.log_alpha[i + 1]) / 2)
                beta = np.exp((table.log_beta[j] + table.log_beta[j + 1]) / 2)
                fields = reference_fields(ocean, area, alpha, beta, periodicity)
                gamma = exact_normalization(DiffusionOperator(fields, ocean, steps))
                eps = sample_metrics(table.prior(fields, ocean), gamma, ocean)["eps_max"]
                between = max(between, eps)
        scores = aggregate(
            [
                sample_metrics(table.prior(f, ocean), g, ocean)
                for f, g in zip(samples, exact, strict=True)
            ]
        )
        print(
            f"{count:5d} | {made:8.1f} | {between:21.4f} | {scores['eps_mean']:.4f}, "
            f"{scores['eps_q']:.4f}, {scores['eps_max']:.4f}"
        )


if __name__ == "__main__":
    main()
