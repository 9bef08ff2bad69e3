"""Solves with T = W + K: a sparse Cholesky factor on the CPU or a CUDA device.

T is symmetric positive definite (W > 0, K a weighted graph Laplacian), so a Cholesky factor
is the natural solver. ``cholmod`` (SuiteSparse's CHOLMOD, through the ``cholespy`` wheel)
solved the global 292x360 grid 4-7x faster per right-hand side than SuperLU on one core
(docs/performance.md); ``superlu`` (scipy) is kept as the reference the benchmark compares
with. The CUDA back end is cholespy's too: the same factor, solved on the device.

Every ``Backend`` offers the few array operations the probing and randomization loops need,
on numpy arrays (CPU) or torch tensors (CUDA), so one loop serves both devices.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

Solver = Literal["cholmod", "superlu"]
SOLVERS: tuple[str, ...] = ("cholmod", "superlu")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
# Right-hand sides per CUDA solve: cholespy's limit.
CUDA_MAX_COLUMNS = 128


class DeviceError(ValueError):
    """Raised when the asked device or solver cannot run here."""


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False without torch).

    Looks for the CUDA driver first, so a machine without one never imports torch (hundreds
    of MB in every generation process).
    """
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda`` for ``auto|cpu|cuda``: auto takes CUDA when there is one."""
    if device not in DEVICES:
        raise DeviceError(f"device={device!r}: unknown; use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if device == "cuda":
        raise DeviceError(
            "device=cuda: no CUDA device here (torch.cuda.is_available() is False); "
            "use device=cpu or device=auto"
        )
    return "cpu"


def _cholespy():
    try:
        import cholespy
    except ImportError as error:  # a declared dependency: only a broken install lacks it
        raise DeviceError(
            "solver=cholmod needs the cholespy package (pip install cholespy); "
            "or use solver=superlu"
        ) from error
    return cholespy


class CholmodFactor:
    """CHOLMOD's factor of a symmetric positive definite matrix; solves on the CPU."""

    def __init__(self, matrix: sp.spmatrix) -> None:
        cholespy = _cholespy()
        coo = sp.coo_matrix(matrix)
        self._solver = cholespy.CholeskySolverD(
            coo.shape[0],
            coo.row.astype(np.int32),
            coo.col.astype(np.int32),
            coo.data.astype(np.float64),
            cholespy.MatrixType.COO,
        )

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        rhs = np.ascontiguousarray(rhs, dtype=np.float64)
        solution = np.empty_like(rhs)
        self._solver.solve(rhs, solution)
        return solution


class SuperLUFactor:
    """scipy's SuperLU factor (the solver before CHOLMOD; kept for comparison)."""

    def __init__(self, matrix: sp.spmatrix) -> None:
        self._lu = splu(sp.csc_matrix(matrix), permc_spec="MMD_AT_PLUS_A")

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        return self._lu.solve(np.ascontiguousarray(rhs))


class CudaCholmodFactor:
    """CHOLMOD's factor analysed and solved on the CUDA device (torch tensors in and out)."""

    def __init__(self, matrix: sp.spmatrix) -> None:
        import torch

        cholespy = _cholespy()
        coo = sp.coo_matrix(matrix)

        def device(array: np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(array)).cuda()

        self._solver = cholespy.CholeskySolverD(
            coo.shape[0],
            device(coo.row.astype(np.int32)),
            device(coo.col.astype(np.int32)),
            device(coo.data.astype(np.float64)),
            cholespy.MatrixType.COO,
        )

    def solve(self, rhs: Any) -> Any:
        """T^{-1} rhs for a (n,) or (n, k) float64 CUDA tensor, k <= 128 per call."""
        import torch

        rhs = rhs.contiguous()
        if rhs.ndim == 1:
            return self.solve(rhs[:, None])[:, 0]
        parts = []
        for start in range(0, rhs.shape[1], CUDA_MAX_COLUMNS):
            part = rhs[:, start : start + CUDA_MAX_COLUMNS].contiguous()
            solution = torch.empty_like(part)
            self._solver.solve(part, solution)
            parts.append(solution)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def check_solver(solver: str) -> None:
    """Refuse an unknown solver name in one line."""
    if solver not in SOLVERS:
        raise DeviceError(f"solver={solver!r}: unknown; use one of {', '.join(SOLVERS)}")


def factorize(matrix: sp.spmatrix, solver: str = "cholmod", device: str = "cpu"):
    """A factor of ``matrix`` with a ``solve(rhs)`` method, for ``solver`` on ``device``."""
    check_solver(solver)
    if device == "cuda":
        if solver != "cholmod":
            raise DeviceError(f"solver={solver} runs on the CPU only; use solver=cholmod")
        return CudaCholmodFactor(matrix)
    return CholmodFactor(matrix) if solver == "cholmod" else SuperLUFactor(matrix)


@dataclass(frozen=True)
class Backend:
    """Array operations of one device: numpy on the CPU, torch on CUDA."""

    device: str
    put: Callable[[np.ndarray], Any]
    """Host array -> device array (float64 stays float64, integers stay integers)."""
    get: Callable[[Any], np.ndarray]
    bincount: Callable[..., Any]
    """``bincount(ids, weights=..., minlength=...)`` as numpy's."""
    as_float: Callable[[Any], Any]
    """A boolean device array as float64."""


def backend(device: str) -> Backend:
    """The ``Backend`` of ``cpu`` or ``cuda``."""
    if device == "cpu":
        return Backend(
            "cpu",
            put=np.asarray,
            get=np.asarray,
            bincount=np.bincount,
            as_float=lambda x: x.astype(np.float64),
        )
    return torch_backend("cuda")


def torch_backend(device: str) -> Backend:
    """Torch tensors on ``device`` (``cuda``; ``cpu`` lets tests run the CUDA code path)."""
    import torch

    return Backend(
        device,
        put=lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(device),
        get=lambda x: x.cpu().numpy(),
        bincount=torch.bincount,
        as_float=lambda x: x.to(torch.float64),
    )
