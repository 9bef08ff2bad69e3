"""Throughput of the training loop for the report configuration, and its cost over a bare step.

    python benchmarks/bench_training.py --steps 4 --threads 1         # CPU, ~1.5 minutes
    python benchmarks/bench_training.py --device cuda --steps 200     # one GPU
    python benchmarks/bench_training.py --device cuda --steps 200 --channels-last \\
        --mixed-precision --compile reduce-overhead                   # the fast settings
    python benchmarks/bench_training.py --device cuda --steps 200 --batch 64 --crop 64 64
                                                   # 64 crops of 64x64 with halo per step

The network is the report's (10-layer, 64-channel ELU CNN with additive skips, valid padding
with a circular east-west halo, Manhattan distance map: 4 inputs), composed from conf/ like a
training run, with its MSE loss and Adam; the batch is ``--batch`` random 200x360 samples (the
loop's cost does not depend on the values). Repeats alternate between

- bare: forward, loss, backward and Adam step on tensors already on the device, no read-back
  until the end (where the device is synchronized), and
- loop: ``train_model`` itself on an in-memory data set of ``--samples`` samples of that
  shape: batch schedule, resident data, losses read back every ``--log-every`` steps.
  Its per-step time is the difference between a run of ``steps + 1`` steps and one of 1 step,
  so the fixed costs of a run (data to the device, final evaluation and checkpoints) cancel.

With ``--crop H W`` a step trains on ``--batch`` windows of H x W cells cut with their halo
(``trainer.crop``); pixel-passes then count the windows' cells, not their halo.
Both use the same options (channels-last, bfloat16 autocast, torch.compile). Prints medians of
samples/s, pixels/s (pixel-passes: pixels trained on per second), effective TFLOP/s
(convolutions only, counted analytically: 2 k² C_in C_out H_out W_out per convolution forward,
x3 for forward and backward) and the loop's overhead over the bare step; on CUDA also the host
synchronizations per loop step that torch's sync debug mode reports (the loop's own: the
read-back of the losses and the copy of the batch indices, once per ``--log-every`` steps).
Targets (issue 10): >= 100 M pixel-passes/s on one H100 (the report's 5e6 passes of a 200x360
image in one hour) and a loop overhead <= 5 %.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from torch import nn

from normcoef.config import register_configs
from normcoef.data.storage import Split
from normcoef.data.torch_dataset import NormalizationDataset, PreparedData, Standardizer
from normcoef.training.crops import crop_sampler
from normcoef.training.factory import build_loss, build_model
from normcoef.training.loop import Optimization, RunOutputs, resident_split, train_model, train_step
from normcoef.training.schedules import constant
from normcoef.training.settings import LoopSettings

REPO = Path(__file__).resolve().parents[1]
TARGET_PIXELS_PER_S = 100e6
TARGET_OVERHEAD = 0.05


def report_parts() -> tuple[nn.Module, nn.Module]:
    """The report's network and loss, composed from conf/ like a training run."""
    register_configs()
    overrides = ["model=skip_add", "activation=elu", "distance_map=manhattan"]
    with initialize_config_dir(config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=overrides)
    torch.manual_seed(0)
    return build_model(cfg.model, cfg.activation, 4), build_loss(cfg.loss)


def synthetic_data(samples: int, height: int, width: int) -> PreparedData:
    """Random fields on a grid with some land; no validation or test samples."""
    rng = np.random.default_rng(0)
    ocean = np.ones((samples, height, width), dtype=bool)
    ocean[:, : height // 5, : width // 4] = False
    fields = rng.uniform(1.0, 2.0, (samples, 3, height, width))
    gamma = rng.uniform(1.0, 3.0, (samples, height, width)) * ocean
    train = Split([str(i) for i in range(samples)], fields, gamma, ocean)
    standardizer = Standardizer.fit(train, "partial", "manhattan")
    empty = NormalizationDataset(train.head(0), standardizer)
    return PreparedData(NormalizationDataset(train, standardizer), empty, empty, standardizer)


def conv_flops(model: nn.Module, x: torch.Tensor, with_halo: bool = False) -> float:
    """FLOPs of the convolutions of one forward and backward pass of batch ``x`` (crops
    already carrying their halo with ``with_halo``)."""
    shapes: list[tuple[torch.Size, torch.Size]] = []
    hooks = [
        module.register_forward_hook(lambda m, _, out: shapes.append((m.weight.shape, out.shape)))
        for module in model.modules()
        if isinstance(module, nn.Conv2d)
    ]
    with torch.no_grad():
        model.forward_with_halo(x) if with_halo else model(x)
    for hook in hooks:
        hook.remove()
    # weight (C_out, C_in, k, k), output (B, C_out, H_out, W_out)
    forward = sum(2 * w[1] * w[2] * w[3] * out.numel() for w, out in shapes)
    return 3.0 * forward


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_step_time(args, device: torch.device, data: PreparedData) -> float:
    """Seconds per bare step: forward, loss, backward, Adam, on resident tensors."""
    model, loss_fn = report_parts()
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format).train()
    forward = model.forward_with_halo if args.crop else model  # crops carry their halo
    if args.compile != "none":
        forward = torch.compile(forward, mode=args.compile)
    x, y, ocean = bare_batch(args, device, data, model)
    x = x.contiguous(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    autocast = args.mixed_precision and device.type == "cuda"
    scale = data.standardizer.target_scale

    def step() -> None:
        train_step(
            forward, loss_fn, optimizer, (x, y, ocean), scale, autocast, args.compile != "none"
        )

    for _ in range(args.warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / args.steps


def bare_batch(
    args, device: torch.device, data: PreparedData, model: nn.Module
) -> tuple[torch.Tensor, ...]:
    """The bare step's fixed batch: whole grids, or with ``--crop`` one batch of crops cut
    with their halo as the loop cuts them."""
    resident = resident_split(data.train, device)
    assert resident is not None
    if not args.crop:
        return tuple(part[: args.batch] for part in resident)
    sampler = crop_sampler(model, resident, args.crop)
    pairs = next(sampler.schedule(0, 1, len(data.train), args.batch, 0, device, 1))
    return sampler.batch(pairs)


def loop_run_time(args, device: torch.device, data: PreparedData, steps: int, tmp: Path) -> float:
    """Seconds of one ``train_model`` run of ``steps`` steps into a fresh folder."""
    model, loss_fn = report_parts()
    settings = LoopSettings(
        steps=steps,
        batch_size=args.batch,
        eval_every=steps,
        checkpoint_every=steps,
        monitor="train/loss",
        mixed_precision=args.mixed_precision,
        progress=False,
        log_every=args.log_every,
        channels_last=args.channels_last,
        compile=args.compile,
        crop=args.crop,
    )
    run_dir = Path(tempfile.mkdtemp(dir=tmp))
    synchronize(device)
    start = time.perf_counter()
    adam = functools.partial(torch.optim.Adam, lr=1e-3)  # conf/optimizer/adam
    train_model(
        model, loss_fn, data, settings, device, Optimization(adam, constant), RunOutputs(run_dir)
    )
    synchronize(device)
    return time.perf_counter() - start


def loop_step_time(args, device: torch.device, data: PreparedData, tmp: Path) -> float:
    """Seconds per loop step, fixed costs of a run cancelled (see the module docstring)."""
    short = loop_run_time(args, device, data, 1, tmp)
    long = loop_run_time(args, device, data, args.steps + 1, tmp)
    return (long - short) / args.steps


def host_syncs_per_step(args, device: torch.device, data: PreparedData, tmp: Path) -> float:
    """Host synchronizations per loop step on CUDA, as torch's sync debug mode reports them
    (fixed costs of a run cancelled as for the time)."""
    counts = []
    for steps in (1, args.steps + 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                loop_run_time(args, device, data, steps, tmp)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
    return (counts[1] - counts[0]) / args.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=200)
    parser.add_argument("--width", type=int, default=360)
    parser.add_argument("--batch", type=int, default=1, help="samples per step (report: 1)")
    parser.add_argument("--samples", type=int, default=4, help="training samples of the loop")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=2, help="untimed bare steps per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each, alternating")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch's default)")
    parser.add_argument("--log-every", type=int, default=10, help="trainer.log_every")
    parser.add_argument("--channels-last", action="store_true", help="trainer.channels_last")
    parser.add_argument("--mixed-precision", action="store_true", help="bfloat16, CUDA only")
    parser.add_argument("--compile", default="none", help="trainer.compile mode")
    parser.add_argument(
        "--crop", type=int, nargs=2, metavar=("H", "W"), help="trainer.crop: train on windows"
    )
    args = parser.parse_args()
    if args.batch > args.samples and not args.crop:
        parser.error(f"--batch {args.batch} exceeds --samples {args.samples}")

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = synthetic_data(args.samples, args.height, args.width)
    model, _ = report_parts()
    batch = bare_batch(args, torch.device("cpu"), data, model)[0]
    flops = conv_flops(model, batch, with_halo=bool(args.crop))
    load_before = os.getloadavg()
    bare, loop = [], []
    with tempfile.TemporaryDirectory() as tmp:
        loop_run_time(args, device, data, 1, Path(tmp))  # warm-up: allocator, cuDNN, compile
        for _ in range(args.repeats):
            bare.append(bare_step_time(args, device, data))
            loop.append(loop_step_time(args, device, data, Path(tmp)))
        syncs = (
            host_syncs_per_step(args, device, data, Path(tmp)) if device.type == "cuda" else None
        )
    load_after = os.getloadavg()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{name}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
        f"{args.batch} x 4 x {args.height} x {args.width}"
        + (f" as crops of {args.crop[0]} x {args.crop[1]} (+ halo)" if args.crop else "")
        + f", {args.steps} steps x {args.repeats} repeats, log_every {args.log_every}, "
        f"channels_last {args.channels_last}, "
        f"mixed_precision {args.mixed_precision}, compile {args.compile}"
    )
    print(
        "load average (1, 5, 15 min): before "
        + ", ".join(f"{v:.2f}" for v in load_before)
        + "; after "
        + ", ".join(f"{v:.2f}" for v in load_after)
    )
    # Pixels trained on: the loss's cells (a crop's, without its halo).
    height, width = args.crop or (args.height, args.width)
    pixels = args.batch * height * width
    for label, times in (("bare", bare), ("loop", loop)):
        step = statistics.median(times)
        repeats = ", ".join(f"{1000 * t:.1f}" for t in times)
        print(
            f"{label}: {1000 * step:.1f} ms/step (repeats: {repeats}); "
            f"{args.batch / step:.2f} samples/s, {pixels / step / 1e6:.2f} M pixels/s, "
            f"{flops / step / 1e12:.3f} TFLOP/s (convolutions, {flops / 1e9:.1f} GFLOP/step)"
        )
    if syncs is not None:
        own = "the loop's own: ~2 per --log-every steps"
        print(f"loop: {syncs:.2f} host synchronizations per step ({own})")
    overhead = statistics.median(loop) / statistics.median(bare) - 1
    verdict = "ok" if overhead <= TARGET_OVERHEAD else "over target"
    print(f"loop overhead over bare steps: {100 * overhead:+.1f} % ({verdict}; target <= 5 %)")
    rate = pixels / statistics.median(loop)
    print(
        f"loop: {rate / 1e6:.2f} M pixel-passes/s; the report's 5e6 passes of 200x360 take "
        f"{5e6 * 200 * 360 / rate / 3600:.1f} h (target >= {TARGET_PIXELS_PER_S / 1e6:.0f} M/s, "
        "1 h, on one H100)"
    )


if __name__ == "__main__":
    main()
