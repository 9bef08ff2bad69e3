"""Cost of the normalization methods per sample, on the global and the python grid, in one run.

    python benchmarks/bench_normalization.py            # both grids at the report's sizes
    python benchmarks/bench_normalization.py --quick    # half the resolution, no SuperLU row

Fields are sample 0 of seed 0 (``make_fields(grid, FieldParameters(), seed=0, index=0)``,
M = 10). Rows, per grid:

- exact at the preset's tolerance (global presets 2e-6, Γ within 1e-6; python 1e-8) and at
  1e-8, with CHOLMOD; and at 1e-8 with SuperLU, the solver before CHOLMOD (the "before"
  figure, same probing loop);
- brute force (one column per ocean cell), timed on a random subset of cells and
  extrapolated linearly (each column costs the same M/2 solves);
- randomization with N = 10^4, timed with ``--measured-samples`` and extrapolated linearly.

The time of a row includes building the operator (factorizing T). Every method runs BLAS
single-threaded, on one core; the table says the process's peak RSS and thread count.
Timings are wall-clock on whatever CPU runs this: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.grids import Grid, global_grid, python_grid
from normcoef.physics.diffusion import DiffusionOperator
from normcoef.physics.normalization import (
    DEFAULT_TOLERANCE,
    ProbingColouring,
    brute_force_variance,
    exact_normalization,
    probing_lattice,
    randomized_normalization,
)

GLOBAL_TOLERANCE = 2e-6  # conf/dataset/full_std.yaml, partial_std.yaml
TARGET_SECONDS = 10.0  # issue: an exact global sample in under 10 s on one core


@dataclass
class Row:
    method: str
    seconds: float
    extrapolated: bool = False
    note: str = ""


def timed(function: Callable, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="half resolution, no SuperLU row")
    parser.add_argument("--subset", type=int, default=512, help="ocean cells for brute force")
    parser.add_argument("--samples", type=int, default=10_000, help="randomization N reported")
    parser.add_argument(
        "--measured-samples", type=int, default=400, help="randomization N run (extrapolated)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the brute-force subset")
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="cuda adds exact and randomization rows solved on the GPU, checked against the CPU",
    )
    return parser.parse_args()


def operator(grid: Grid, solver: str = "cholmod") -> DiffusionOperator:
    params = FieldParameters()
    fields = make_fields(grid, params, seed=0, index=0)
    return DiffusionOperator(
        fields, grid.mask, params.steps, grid.periodic_x, grid.periodic_y, solver=solver
    )


def colours(op: DiffusionOperator, tol: float) -> int:
    return ProbingColouring.build(op, probing_lattice(op, tol)).used.size


def exact_row(
    grid: Grid, tol: float, solver: str = "cholmod", device: str = "cpu"
) -> tuple[Row, np.ndarray]:
    def build_and_solve():
        op = operator(grid, solver)
        return op, exact_normalization(op, tol, device=device)

    (op, gamma), seconds = timed(build_and_solve)
    sy, sx = probing_lattice(op, tol)
    note = f"{sy}x{sx} lattice, {colours(op, tol)} colours"
    where = "" if device == "cpu" else f" on {device}"
    return Row(f"exact, tol {tol:g}, {solver}{where}", seconds, note=note), gamma


def bench_grid(name: str, grid: Grid, preset_tol: float, args: argparse.Namespace) -> list[Row]:
    op = operator(grid)
    rows = []
    fast, gamma = exact_row(grid, preset_tol)
    rows.append(fast)
    if preset_tol != DEFAULT_TOLERANCE:
        tight, gamma_tight = exact_row(grid, DEFAULT_TOLERANCE)
        rows.append(tight)
        error = np.abs(gamma[op.mask] / gamma_tight[op.mask] - 1).max()
        fast.note += f"; max |Γ/Γ(1e-8) - 1| {error:.1e}"
    if not args.quick:
        rows.append(exact_row(grid, DEFAULT_TOLERANCE, solver="superlu")[0])
    if args.device == "cuda":
        exact_row(grid, preset_tol, device="cuda")  # CUDA's start-up is not the method's cost
        on_device, gamma_device = exact_row(grid, preset_tol, device="cuda")
        difference = np.abs(gamma_device[op.mask] / gamma[op.mask] - 1).max()
        on_device.note += f"; max |Γ(cuda)/Γ(cpu) - 1| {difference:.1e}"
        rows.append(on_device)

    subset = min(args.subset, op.n_ocean)
    cells = np.sort(np.random.default_rng(args.seed).choice(op.n_ocean, subset, replace=False))
    variance, seconds = timed(brute_force_variance, op, cells)
    error = np.abs(gamma[op.mask][cells] * np.sqrt(variance) - 1).max()
    fast.note += f"; max |Γ/Γ(brute) - 1| on {subset} cells {error:.1e}"
    rows.append(
        Row(
            "brute force, one column per cell",
            seconds * op.n_ocean / subset,
            extrapolated=True,
            note=f"timed on {subset} cells",
        )
    )

    measured = min(args.measured_samples, args.samples)
    estimate, seconds = timed(randomized_normalization, op, measured, seed=0)
    ratio = estimate[op.mask] / gamma[op.mask]
    variance_error = np.sqrt(np.mean((ratio**-2 - 1) ** 2))
    rows.append(
        Row(
            f"randomization, N = {args.samples}",
            seconds * args.samples / measured,
            extrapolated=measured < args.samples,
            note=(
                f"timed at N = {measured}: rms variance error {variance_error:.3f} "
                f"(sqrt(2/N) = {np.sqrt(2 / measured):.3f})"
            ),
        )
    )
    if args.device == "cuda":
        on_device, seconds = timed(randomized_normalization, op, measured, seed=0, device="cuda")
        difference = np.abs(on_device[op.mask] / estimate[op.mask] - 1).max()
        rows.append(
            Row(
                f"randomization, N = {args.samples}, on cuda",
                seconds * args.samples / measured,
                extrapolated=measured < args.samples,
                note=f"timed at N = {measured}; max |Γ(cuda)/Γ(cpu) - 1| {difference:.1e}",
            )
        )
    print_table(name, grid, op, rows)
    return rows


def print_table(name: str, grid: Grid, op: DiffusionOperator, rows: list[Row]) -> None:
    height, width = grid.shape
    reference = rows[0].seconds
    print(f"\n{name} {height}x{width}: {op.n_ocean} ocean cells, M = {op.steps}\n")
    print("| Method | Time per sample (s) | vs fast exact | Notes |")
    print("|---|---:|---:|---|")
    for row in rows:
        star = " (extrapolated)" if row.extrapolated else ""
        print(
            f"| {row.method}{star} | {row.seconds:.1f} | {row.seconds / reference:.1f}x "
            f"| {row.note} |"
        )


def threads() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    args = parse_args()
    scale = 2 if args.quick else 1
    grids = [
        ("global", global_grid(292 // scale, 360 // scale), GLOBAL_TOLERANCE),
        ("python", python_grid(200 // scale, 360 // scale), DEFAULT_TOLERANCE),
    ]
    results = {name: bench_grid(name, grid, tol, args) for name, grid, tol in grids}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:.0f} MiB, {threads()} threads, BLAS limited to 1 thread")
    fast = results["global"][0].seconds
    if not args.quick:
        verdict = "meets" if fast <= TARGET_SECONDS else "MISSES"
        print(f"exact global sample: {fast:.1f} s ({verdict} the {TARGET_SECONDS:g} s target)")


if __name__ == "__main__":
    main()
