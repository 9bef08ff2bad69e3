"""The arguments naming a trained network, shared by the evaluate and predict commands:
CHECKPOINT (a file, a run directory or an MLflow run id) or ``--pretrained NAME``."""

from __future__ import annotations

import argparse

from normcoef.inference import RESOLUTIONS, TrainedModel, load_trained_model, resolve_checkpoint
from normcoef.pretrained import available, checkpoint_path, describe, grid_path
from normcoef.tracking import DEFAULT_TRACKING_URI

CHECKPOINT_HELP = "a .pt file, a run directory (best.pt, else last.pt) or an MLflow run id"


def add_checkpoint_arguments(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    """The command-line arguments ``load_from_arguments`` reads, shared by the entry points;
    without ``positional`` the caller adds CHECKPOINT itself (``checkpoint_or_pretrained``)."""
    if positional:
        parser.add_argument("checkpoint", nargs="?", help=CHECKPOINT_HELP + " (or --pretrained)")
    parser.add_argument(
        "--pretrained",
        metavar="NAME",
        help="a network shipped with normcoef instead of CHECKPOINT: "
        + (", ".join(available()) or "none shipped")
        + " (provenance: normcoef/pretrained/NAME.json)",
    )
    parser.add_argument(
        "--tracking-uri", help=f"MLflow tracking URI (default {DEFAULT_TRACKING_URI})"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")


def checkpoint_or_pretrained(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exactly one of CHECKPOINT and --pretrained, or argparse's one-line usage error."""
    if args.pretrained is not None and args.checkpoint is not None:
        parser.error(f"give CHECKPOINT ({args.checkpoint}) or --pretrained, not both")
    if args.pretrained is None and args.checkpoint is None:
        parser.error(
            "give a CHECKPOINT or --pretrained NAME ("
            + (", ".join(available()) or "none shipped")
            + ")"
        )


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """How the network is run on each input: flips averaged (--tta), and a grid finer or
    coarser than its own shown at its own resolution or as it is (--resolution)."""
    parser.add_argument(
        "--tta", action="store_true", help="average the CNN's γ² over flips of each input"
    )
    parser.add_argument(
        "--resolution",
        choices=RESOLUTIONS,
        default="auto",
        help="a grid k times finer or coarser than the network's: shown to it at its own "
        "resolution, its correction put onto the grid's own prior (auto, the default), or as "
        "it is (native)",
    )


def load_from_arguments(args: argparse.Namespace) -> TrainedModel:
    """The network the arguments name: a shipped one (``--pretrained``, its grid with it)
    or a checkpoint, run directory or MLflow run id; run at ``--resolution``."""
    if args.pretrained is not None:
        trained = load_trained_model(checkpoint_path(args.pretrained), args.device)
        trained.grid = grid_path(args.pretrained)
        print(f"Using {describe(args.pretrained)}.")
    else:
        checkpoint = resolve_checkpoint(args.checkpoint, args.tracking_uri)
        trained = load_trained_model(checkpoint, args.device)
    trained.resolution = getattr(args, "resolution", "auto")
    return trained
