"""Cost of the three normalization methods on the global grid (Weaver et al. 2021, section 5).

    python benchmarks/bench_normalization.py            # 292 x 360 global grid, several minutes
    python benchmarks/bench_normalization.py --quick    # 146 x 180, under a minute

Fields are sample 0 of seed 0 (``make_fields(grid, FieldParameters(), seed=0, index=0)``).
Brute force (one column per ocean cell) is timed on a random subset of ocean cells and
extrapolated linearly to all of them; randomization is timed with ``--measured-samples``
samples and extrapolated linearly to ``--samples`` when fewer. Both costs are linear in the
number of columns (each column costs M/2 solves with the same factorization), so the
extrapolation is fair up to batching effects. Timings are wall-clock on whatever CPU runs this.

All three methods run BLAS single-threaded (``single_threaded_blas`` in
normcoef.physics.normalization): SuperLU's multi-right-hand-side solves call BLAS, and on a
small shared CPU the threaded OpenBLAS was 2-8x slower per column than one thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import global_grid
from normcoef.physics.diffusion import DiffusionOperator
from normcoef.physics.normalization import (
    DEFAULT_TOLERANCE,
    brute_force_variance,
    exact_normalization,
    probing_lattice,
    randomized_normalization,
)

TARGET_SPEEDUP = 50.0


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="146 x 180 grid, fewer samples")
    parser.add_argument(
        "--subset", type=int, default=None, help="ocean cells for brute force (512; 128 quick)"
    )
    parser.add_argument("--samples", type=int, default=10_000, help="randomization N reported")
    parser.add_argument(
        "--measured-samples",
        type=int,
        default=None,
        help="randomization N actually run (1000; 50 quick), extrapolated to --samples",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the brute-force subset")
    return parser.parse_args()


def main() -> None:
    run(parse_args())


def run(args: argparse.Namespace) -> None:
    shape = (146, 180) if args.quick else (292, 360)
    subset = args.subset or (128 if args.quick else 512)
    measured_samples = args.measured_samples or (50 if args.quick else 1000)
    measured_samples = min(measured_samples, args.samples)

    grid, grid_time = timed(global_grid, *shape)
    params = FieldParameters()
    fields = make_fields(grid, params, seed=0, index=0)
    op, factor_time = timed(
        DiffusionOperator, fields, grid.mask, params.steps, grid.periodic_x, grid.periodic_y
    )
    n_ocean = op.n_ocean
    print(f"grid global {shape[0]}x{shape[1]}: {n_ocean} ocean cells ({grid.mask.mean():.1%})")
    print(f"  M = {op.steps}, built in {grid_time:.1f} s, T factorized in {factor_time:.2f} s")

    (sy, sx), lattice_time = timed(probing_lattice, op, DEFAULT_TOLERANCE)
    rows, cols = np.nonzero(op.mask)
    colours = np.unique((rows % sy) * sx + (cols % sx)).size
    print(
        f"probing lattice {sy} x {sx} (tol {DEFAULT_TOLERANCE:g}): {colours} colours, "
        f"chosen in {lattice_time:.2f} s"
    )

    gamma_exact, exact_time = timed(exact_normalization, op)
    print(f"exact (probing): {exact_time:.1f} s ({colours * op.steps // 2} column solves)")

    subset = min(subset, n_ocean)
    cells = np.sort(np.random.default_rng(args.seed).choice(n_ocean, subset, replace=False))
    variance, subset_time = timed(brute_force_variance, op, cells)
    brute_time = subset_time * n_ocean / subset
    speedup = brute_time / exact_time
    gamma_subset = variance**-0.5
    max_difference = np.max(np.abs(gamma_exact[op.mask][cells] / gamma_subset - 1))
    print(
        f"brute force: {subset_time:.1f} s for {subset} random ocean cells, "
        f"EXTRAPOLATED linearly to all {n_ocean} cells: {brute_time:.0f} s"
    )
    if args.quick:
        verdict = f"the {TARGET_SPEEDUP:g}x target is for the 292x360 grid"
    else:
        verdict = (
            f"{'meets' if speedup >= TARGET_SPEEDUP else 'MISSES'} the {TARGET_SPEEDUP:g}x target"
        )
    print(
        f"speed-up exact vs brute force: {speedup:.1f}x ({verdict}; ratio of column counts "
        f"{n_ocean / colours:.1f}x)"
    )
    print(f"max relative difference of Γ, exact vs brute force on the subset: {max_difference:.2e}")

    gamma_random, measured_time = timed(randomized_normalization, op, measured_samples, seed=0)
    random_time = measured_time * args.samples / measured_samples
    ratio = gamma_random[op.mask] / gamma_exact[op.mask]
    variance_error = np.sqrt(np.mean((ratio**-2 - 1) ** 2))
    extrapolated = measured_samples < args.samples
    note = f", EXTRAPOLATED linearly from N = {measured_samples}" if extrapolated else ""
    print(
        f"randomization N = {measured_samples}: {measured_time:.1f} s, rms relative error of the "
        f"variance {variance_error:.3f} (theory sqrt(2/N) = {np.sqrt(2 / measured_samples):.3f})"
    )
    print(f"randomization N = {args.samples}: {random_time:.0f} s{note}")

    star = " (extrapolated)"
    print()
    print(
        f"| Method (global {shape[0]}x{shape[1]}, {n_ocean} ocean cells, M = {op.steps}) "
        "| Time (s) | vs exact |"
    )
    print("|---|---:|---:|")
    print(f"| Exact, probing ({sy}x{sx} lattice, {colours} colours) | {exact_time:.0f} | 1 |")
    print(f"| Brute force, one column per cell{star} | {brute_time:.0f} | {speedup:.0f}x |")
    print(
        f"| Randomization, N = {args.samples}{star if extrapolated else ''} "
        f"| {random_time:.0f} | {random_time / exact_time:.0f}x |"
    )
    print()
    print(
        f"Max relative difference of Γ (exact vs brute force, {subset} cells): {max_difference:.1e}"
    )


if __name__ == "__main__":
    main()
