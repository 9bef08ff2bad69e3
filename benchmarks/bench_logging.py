"""What MLflow tracking adds to a training step: the same loop with ``logger=none`` and MLflow.

    python benchmarks/bench_logging.py            # quickstart network and batch, ~1 minute
    python benchmarks/bench_logging.py --quick    # 2-layer 8-channel network, seconds

Each repeat trains the network of conf/experiment/quickstart.yaml (6-layer, 32-channel ELU
CNN with additive skips) for ``--steps`` Adam steps on a random batch of the quickstart's shape
(4 x 4 x 64 x 128) and hands ``train/loss`` and ``train/lr`` to a tracker every step, as
``normcoef.training.loop`` does. Repeats alternate between the no-op tracker and an MLflow run
in an SQLite store in a temporary folder, so that a slow spell of a shared CPU hits both; the
MLflow time includes ``finish()``, which writes the metrics still buffered.
Creating the store and starting the run are left out: they happen once per run, not per step.

Prints, per step and as medians over repeats: wall-clock time, the process's CPU time (all its
threads; other processes on a shared machine do not) and the
time the training thread spends inside tracker calls, and the overheads of MLflow over no
tracking. The target is at most ``TARGET_OVERHEAD`` (5 %). Wall time on a busy machine is
noisy: compare the CPU and in-call numbers there.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from normcoef.config import register_configs
from normcoef.tracking import MLflowTracker, NullTracker
from normcoef.training.factory import build_loss, build_model

REPO = Path(__file__).resolve().parents[1]
TARGET_OVERHEAD = 0.05


def quickstart_parts(quick: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The quickstart's network and loss, composed from conf/ like a training run."""
    register_configs()
    small = ["model.layers=4", "model.channels=8"] if quick else []
    with initialize_config_dir(config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=["experiment=quickstart", *small])
    return build_model(cfg.model, cfg.activation, 4), build_loss(cfg.loss)


def timed_loop(model, loss_fn, batch, tracker, steps: int) -> tuple[float, float, float]:
    """(wall, CPU, in-tracker) seconds per step of ``steps`` steps, each logging two metrics."""
    x, y, ocean = batch
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    in_tracker = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    for step in range(1, steps + 1):
        loss = loss_fn(model(x), y, ocean, 1.0, 0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        metrics = {"train/loss": loss.item(), "train/lr": optimizer.param_groups[0]["lr"]}
        called = time.perf_counter()
        tracker.log_metrics(metrics, step)
        in_tracker += time.perf_counter() - called
    called = time.perf_counter()
    tracker.finish()
    in_tracker += time.perf_counter() - called
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall / steps, cpu / steps, in_tracker / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small network, for a smoke run")
    parser.add_argument("--steps", type=int, default=40, help="steps per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each, alternating")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (steadier at 1)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, loss_fn = quickstart_parts(args.quick)
    batch = (
        torch.randn(4, 4, 64, 128),
        torch.randn(4, 1, 64, 128),
        torch.ones(4, 1, 64, 128, dtype=torch.bool),
    )
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"

        def tracker(backend: str) -> NullTracker:
            if backend == "none":
                return NullTracker()
            return MLflowTracker("bench", f"{backend} run", uri)

        tracker("mlflow").finish()  # the store's schema: created once, not timed
        timed_loop(model, loss_fn, batch, tracker("none"), 3)  # warm-up
        times: dict[str, list[tuple[float, float, float]]] = {"none": [], "mlflow": []}
        for _ in range(args.repeats):
            for backend in times:
                times[backend].append(
                    timed_loop(model, loss_fn, batch, tracker(backend), args.steps)
                )

    median = {
        b: [statistics.median(column) for column in zip(*t, strict=True)] for b, t in times.items()
    }
    for backend, (wall, cpu, calls) in median.items():
        walls = ", ".join(f"{1000 * t[0]:.1f}" for t in times[backend])
        print(
            f"{backend:>6}: wall {1000 * wall:.1f} ms/step (repeats: {walls}), "
            f"CPU {1000 * cpu:.1f} ms/step, in tracker calls {1000 * calls:.2f} ms/step"
        )
    (wall_0, cpu_0, _), (wall_1, cpu_1, calls_1) = median["none"], median["mlflow"]
    overheads = {
        "wall": wall_1 / wall_0 - 1,
        "CPU": cpu_1 / cpu_0 - 1,
        "in tracker calls": calls_1 / wall_0,
    }
    for name, value in overheads.items():
        verdict = "ok" if value <= TARGET_OVERHEAD else "over target"
        print(f"MLflow overhead, {name}: {100 * value:+.1f} % ({verdict})")
    print(f"target <= {100 * TARGET_OVERHEAD:.0f} % of a step without tracking")


if __name__ == "__main__":
    main()
