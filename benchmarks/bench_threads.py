"""CPU threads for training: steps/s of the quickstart network alone and beside a competitor.

    python benchmarks/bench_threads.py              # ~4 minutes on 2 cores; make bench-threads

Each measurement is a fresh process that trains the quickstart's network (6-layer, 32-channel
ELU CNN with additive skips, batch 4 of 64x128, Adam) for ``--seconds`` and reports its steps
per second, with

- ``threads``: ``torch.set_num_threads`` (1, or every core), and
- ``wait``: OpenMP's wait policy, the default (threads spin at a barrier, which is what makes a
  shared machine slow: a spinning thread holds a core the other process needs) or ``PASSIVE``
  (threads sleep), set in the environment before torch loads,

alone, or while a competitor runs: a second process training the same network with torch's
default threads, as a second job of a sweep or another user's run would. The configurations
are interleaved and repeated (``--repeats``) and the medians printed as steps/s and as ratios
to one thread alone, so a noisy machine shifts all of them alike. The default of
``trainer.num_threads`` (README, "CPU threads") was chosen from this table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time
import torch
from torch import nn
threads, seconds = int(sys.argv[1]), float(sys.argv[2])
if threads:
    torch.set_num_threads(threads)
torch.manual_seed(0)
layers, channels = 6, 32
convs = [nn.Conv2d(4, channels, 3, padding=1)]
convs += [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(layers - 2)]
head = nn.Conv2d(channels, 1, 3, padding=1)
model = nn.Sequential(*[m for c in convs for m in (c, nn.ELU())], head)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(4, 4, 64, 128), torch.randn(4, 1, 64, 128)
def step():
    optimizer.zero_grad(set_to_none=True)
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    optimizer.step()
for _ in range(3):
    step()
steps, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds or steps < 2:
    step()
    steps += 1
print(json.dumps({"steps_per_s": steps / (time.perf_counter() - start)}))
"""


def measure(threads: int, wait: str, seconds: float, competitor: bool) -> float:
    """Steps/s of one worker process; with ``competitor`` another one runs meanwhile."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if wait.startswith("spin="):  # libgomp: spin this many times before sleeping
        env["GOMP_SPINCOUNT"] = wait.removeprefix("spin=")
    elif wait != "default":
        env["OMP_WAIT_POLICY"] = wait
    rival = None
    if competitor:
        rival_env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        rival = subprocess.Popen(
            [sys.executable, "-c", WORKER, "0", str(seconds * 3)],
            env=rival_env,
            stdout=subprocess.DEVNULL,
        )
        time.sleep(2.0)  # the rival past its imports and warm-up
    try:
        out = subprocess.run(
            [sys.executable, "-c", WORKER, str(threads), str(seconds)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()
    return float(json.loads(out)["steps_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--waits",
        nargs="+",
        default=["default", "PASSIVE"],
        help="OpenMP waits: default, PASSIVE, ACTIVE, spin=N (libgomp's GOMP_SPINCOUNT)",
    )
    parser.add_argument("--threads", type=int, nargs="+", help="thread counts (1 and all)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    counts = sorted(set(args.threads or (1, cores)))
    configs = list(itertools.product((False, True), counts, args.waits))
    results: dict[tuple, list[float]] = {c: [] for c in configs}
    for _ in range(args.repeats):
        for config in configs:
            competitor, threads, wait = config
            results[config].append(measure(threads, wait, args.seconds, competitor))
    base = statistics.median(results[(False, counts[0], args.waits[0])])
    print(f"{cores} cores; load average before the last measurement: {os.getloadavg()[0]:.2f}")
    print(f"{'competitor':<11}{'threads':>8}  {'OMP wait':<12}{'steps/s':>9}{'ratio':>8}")
    for (competitor, threads, wait), values in results.items():
        median = statistics.median(values)
        print(
            f"{'yes' if competitor else 'no':<11}{threads:>8}  {wait:<12}"
            f"{median:>9.2f}{median / base:>8.2f}"
        )


if __name__ == "__main__":
    main()
