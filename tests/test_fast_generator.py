"""The fast exact generator: CHOLMOD solves, the probing colouring's owners, the global
presets' tolerance and its guarantee against brute force, and the device switch.

Every check here is against an independent reference: SuperLU's solves, brute force (one
column per cell), an exhaustive lattice search, the nearest-probe rule written cell by cell.
CUDA tests run only where torch sees a CUDA device.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import compose_config, tiny_spec
from test_physics import basin_mask, smooth_fields

from normcoef.config import generation_spec
from normcoef.data.fields import FieldParameters, make_fields
from normcoef.data.generation import generate_dataset
from normcoef.data.grids import global_grid, python_grid
from normcoef.data.storage import DatasetError
from normcoef.physics.diffusion import DiffusionOperator
from normcoef.physics.normalization import (
    DeviceSolves,
    ProbingColouring,
    _leakage,
    brute_force_normalization,
    decay_rates,
    exact_normalization,
    probed_variance,
    probing_lattice,
    randomized_normalization,
)
from normcoef.physics.solvers import DeviceError, cuda_available, resolve_device, torch_backend

GLOBAL_TOLERANCE = 2e-6  # conf/dataset/full_std.yaml and partial_std.yaml
GUARANTEE = 1e-6  # the largest relative error on Γ those presets promise
needs_cuda = pytest.mark.skipif(not cuda_available(), reason="no CUDA device here")


def generated_operator(grid, seed: int = 0, index: int = 0, **solver) -> DiffusionOperator:
    fields = make_fields(grid, FieldParameters(), seed=seed, index=index)
    return DiffusionOperator(
        fields, grid.mask, FieldParameters().steps, grid.periodic_x, grid.periodic_y, **solver
    )


@pytest.fixture(scope="module")
def coarse_global() -> DiffusionOperator:
    """The global grid's coastlines at a quarter of its resolution (probing still pays)."""
    return generated_operator(global_grid(73, 90))


def test_cholmod_and_superlu_solve_alike(coarse_global):
    superlu = generated_operator(global_grid(73, 90), solver="superlu")
    rhs = np.random.default_rng(0).standard_normal((coarse_global.n_ocean, 5))

    fast, reference = coarse_global.solve(rhs), superlu.solve(rhs)

    np.testing.assert_allclose(fast, reference, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(coarse_global.tangent @ fast, rhs, atol=1e-12)


def test_an_unknown_solver_is_refused_in_one_line(coarse_global):
    with pytest.raises(DeviceError, match="solver='umfpack': unknown; use one of cholmod"):
        DiffusionOperator(coarse_global.fields, coarse_global.mask, solver="umfpack")


def exhaustive_lattice(op: DiffusionOperator, tol: float) -> tuple[int, int]:
    """The cheapest admissible lattice by trying every pair (the reference for bisection)."""
    height, width = op.mask.shape
    rates, nu = decay_rates(op), op.steps - 1
    ys = [d for d in range(1, height + 1) if not op.periodic_y or height % d == 0]
    xs = [d for d in range(1, width + 1) if not op.periodic_x or width % d == 0]
    admissible = [
        (sy * sx, i, j)
        for j, sx in enumerate(xs)
        for i, sy in enumerate(ys)
        if _leakage(sy, sx, rates, nu) <= tol
    ]
    _, i, j = min(admissible, key=lambda t: (t[0], t[2], t[1]))
    return ys[i], xs[j]


@pytest.mark.parametrize("tol", [1e-4, GLOBAL_TOLERANCE, 1e-8])
def test_bisected_lattice_is_the_exhaustive_searchs_cheapest(coarse_global, tol):
    sy, sx = probing_lattice(coarse_global, tol)
    ey, ex = exhaustive_lattice(coarse_global, tol)
    assert sy * sx == ey * ex
    assert _leakage(sy, sx, decay_rates(coarse_global), coarse_global.steps - 1) <= tol


@pytest.mark.parametrize("periodic", [(True, False), (False, False), (True, True)])
def test_each_cell_is_owned_by_the_nearest_probe_of_each_colour(periodic):
    mask = basin_mask(23, 30)
    op = DiffusionOperator(smooth_fields(mask), mask, 4, *periodic)
    spacing = (23, 5) if periodic[1] else (4, 5)  # a periodic axis: a divisor of its length
    colouring = ProbingColouring.build(op, spacing)
    index = np.full(mask.shape, -1)
    index[mask] = np.arange(op.n_ocean)
    rows, cols = np.nonzero(mask)

    owners = colouring.owners(colouring.used)

    for k, colour in enumerate(colouring.used):
        oy, ox = divmod(int(colour), spacing[1])
        for cell, (r, c) in enumerate(zip(rows, cols, strict=True)):
            expected = nearest_probe(r, c, oy, ox, spacing, mask.shape, periodic, index)
            got = owners[cell, k]
            assert (got if got < op.n_ocean else -1) == expected, (colour, r, c)


def nearest_probe(r, c, oy, ox, spacing, shape, periodic, index) -> int:
    """The ocean index of the colour's lattice node nearest to (r, c) per axis, or -1."""
    node = []
    for value, origin, step, length, wraps in zip(
        (r, c), (oy, ox), spacing, shape, (periodic[1], periodic[0]), strict=True
    ):
        n = origin + step * int(np.round((value - origin) / step))
        if wraps:
            n %= length
        elif not 0 <= n < length:
            return -1
        node.append(n)
    return int(index[node[0], node[1]])


@pytest.mark.parametrize(
    "grid",
    [python_grid(48, 96), global_grid(73, 90)],
    ids=["python 48x96", "global 73x90"],
)
def test_global_preset_tolerance_keeps_gamma_within_its_guarantee(grid):
    op = generated_operator(grid, seed=1, index=2)
    sy, sx = probing_lattice(op, GLOBAL_TOLERANCE)
    assert sy * sx < op.n_ocean, "the test must exercise probing, not its brute-force fallback"

    exact, reference = exact_normalization(op, GLOBAL_TOLERANCE), brute_force_normalization(op)

    error = np.abs(exact[grid.mask] / reference[grid.mask] - 1).max()
    assert error <= GUARANTEE
    assert error > 1e-12, "a looser tolerance that changed nothing would test nothing"


def test_irregular_coasts_keep_the_guarantee():
    mask = basin_mask(40, 48)
    op = DiffusionOperator(smooth_fields(mask, ratio=0.3), mask, steps=6)
    assert np.prod(probing_lattice(op, GLOBAL_TOLERANCE)) < op.n_ocean

    exact, reference = exact_normalization(op, GLOBAL_TOLERANCE), brute_force_normalization(op)

    np.testing.assert_allclose(exact[mask], reference[mask], rtol=GUARANTEE)


def test_both_global_presets_share_one_generation_at_the_guaranteed_tolerance():
    full, partial = (
        generation_spec(compose_config("generate", f"dataset={name}").dataset)
        for name in ("full_std", "partial_std")
    )
    assert full.describe() == partial.describe()
    assert full.tolerance == GLOBAL_TOLERANCE
    assert compose_config("generate", "dataset=full_std").dataset.root == (
        compose_config("generate", "dataset=partial_std").dataset.root
    )


def test_exact_generation_is_deterministic(coarse_global):
    first = exact_normalization(coarse_global, GLOBAL_TOLERANCE)
    again = exact_normalization(generated_operator(global_grid(73, 90)), GLOBAL_TOLERANCE)
    np.testing.assert_array_equal(first, again)


def test_randomization_depends_on_its_seed_only_not_on_batch_or_solver(coarse_global):
    superlu = generated_operator(global_grid(73, 90), solver="superlu")

    reference = randomized_normalization(superlu, 300, seed=4, batch=256)
    for batch in (1, 7, 8, 300):
        estimate = randomized_normalization(coarse_global, 300, seed=4, batch=batch)
        np.testing.assert_allclose(estimate, reference, rtol=1e-11)


# --- devices -------------------------------------------------------------------------------


def test_an_unknown_device_is_refused_in_one_line():
    with pytest.raises(DeviceError, match="device='tpu': unknown; use one of auto, cpu, cuda"):
        resolve_device("tpu")


@pytest.mark.skipif(cuda_available(), reason="checks the machine without CUDA")
def test_without_cuda_auto_runs_on_the_cpu_and_cuda_is_refused(coarse_global):
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceError, match="device=cuda: no CUDA device here"):
        exact_normalization(coarse_global, GLOBAL_TOLERANCE, device="cuda")


def torch_solves_on_the_cpu(op: DiffusionOperator) -> DeviceSolves:
    """The CUDA code path (torch tensors, torch's bincount) with the CPU's factor."""
    import torch

    def solve(x):
        return torch.from_numpy(op.solve(x.numpy()))

    ops = torch_backend("cpu")
    return DeviceSolves(ops, solve, ops.put(op.area), op.half_steps, batch=16)


def test_the_torch_code_path_gives_numpys_variance(coarse_global):
    colouring = ProbingColouring.build(coarse_global, probing_lattice(coarse_global, 1e-6))
    numpy_path = probed_variance(coarse_global, colouring, DeviceSolves.on(coarse_global))
    torch_path = probed_variance(coarse_global, colouring, torch_solves_on_the_cpu(coarse_global))
    np.testing.assert_allclose(torch_path, numpy_path, rtol=1e-12)


def test_the_torch_code_path_applies_the_square_root_as_the_operator_does(coarse_global):
    x = np.random.default_rng(2).standard_normal((coarse_global.n_ocean, 3))
    solves = torch_solves_on_the_cpu(coarse_global)
    got = solves.ops.get(solves.sqrt(solves.ops.put(x)))
    np.testing.assert_allclose(got, coarse_global.apply_sqrt(x), rtol=1e-12)


@needs_cuda
def test_cuda_gives_the_cpus_exact_gamma(coarse_global):
    cpu = exact_normalization(coarse_global, GLOBAL_TOLERANCE, device="cpu")
    cuda = exact_normalization(coarse_global, GLOBAL_TOLERANCE, device="cuda")
    np.testing.assert_allclose(cuda, cpu, rtol=1e-10)


@needs_cuda
def test_cuda_gives_the_cpus_randomization(coarse_global):
    cpu = randomized_normalization(coarse_global, 200, seed=1, device="cpu")
    cuda = randomized_normalization(coarse_global, 200, seed=1, device="cuda")
    np.testing.assert_allclose(cuda, cpu, rtol=1e-10)


# --- resuming across tolerances ----------------------------------------------------------


@pytest.mark.reliability(
    "generate",
    "a data set made at a tighter tolerance than asked",
    "warning",
    "finished at its own tolerance (one tolerance per data set), with a one-line note",
)
def test_a_data_set_made_tighter_is_finished_at_its_own_tolerance(tmp_path, capsys):
    spec = tiny_spec(test=0)
    spec.splits = {"train": 1, "valid": 0}
    generate_dataset(tmp_path, spec, progress=False)  # tolerance 1e-8, the default
    looser = tiny_spec(test=0)
    looser.tolerance = 1e-5

    generate_dataset(tmp_path, looser, progress=False)  # more samples, looser tolerance asked

    made = json.loads((tmp_path / "metadata.json").read_text())["generator"]
    assert made["tolerance"] == spec.tolerance
    assert "tighter than the 1e-05 asked" in capsys.readouterr().err
    assert len(list((tmp_path / "train" / "Y").glob("*.npz"))) == 3


@pytest.mark.reliability(
    "generate",
    "a data set made at a looser tolerance than asked",
    "error",
    "one line naming its parameters; nothing overwritten",
)
def test_a_data_set_made_looser_is_not_finished_tighter(tmp_path):
    looser = tiny_spec(test=0)
    looser.splits, looser.tolerance = {"train": 1, "valid": 0}, 1e-5
    generate_dataset(tmp_path, looser, progress=False)
    before = sorted(p.stat().st_mtime_ns for p in tmp_path.rglob("*.npz"))

    with pytest.raises(DatasetError, match="made with other parameters"):
        generate_dataset(tmp_path, tiny_spec(test=0), progress=False)
    assert sorted(p.stat().st_mtime_ns for p in tmp_path.rglob("*.npz")) == before
