"""How many CPU threads one training process uses: its share of the cores it may run on.

torch's default is every core of the machine, whatever else runs there. Two jobs of a
parallel sweep (``hydra/launcher=local_parallel``) then ask for twice the cores there are, and
OpenMP's threads, which wait for each other at every operation, stall whenever one of them is
descheduled: measured with benchmarks/bench_threads.py, a run beside a competitor fell to a
fifth of its speed alone (README, "CPU threads").
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (cgroups, ``taskset``), and within
    a SLURM job its ``--cpus-per-task`` when that is fewer (SLURM may not pin the process)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        cores = min(cores, int(slurm))
    return cores


def thread_share(parallel_jobs: int = 1) -> int:
    """Threads for one of ``parallel_jobs`` processes that run at once on this host: an equal
    share of the usable cores, at least one."""
    return max(1, usable_cores() // max(1, parallel_jobs))
