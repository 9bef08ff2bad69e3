"""A network trained at one resolution, scored on a data set of another (issue 28's levers).

    python benchmarks/resolution.py DATA_ROOT [--checkpoint PT] [-n 16] [--factor 2] [--out F]

For each test sample, against exact Γ, the report's four metrics of:

- ``prior``: the geometry prior alone, its nodes placed over the samples (``cover_inputs``);
- ``direct``: the network on the samples as they are, on that prior;
- ``coarsened`` (with ``--factor k``, a grid k times finer than the training's): the network
  on the samples coarsened k times (``coarsen_fields``: the training's cells per length scale
  again), its correction log(γ²/γ_prior²) refined back (``refine``) onto the fine prior.

The default checkpoint is the shipped ``global`` network (trained at 292x360). Writes a JSON
of the aggregated metrics to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from normcoef.data.coarsening import block_mean, coarsen_fields, refine, refine_fields
from normcoef.data.storage import load_split
from normcoef.inference import load_trained_model
from normcoef.metrics import aggregate, sample_metrics
from normcoef.training.forward import predict_gamma

SHIPPED = Path(__file__).resolve().parents[1] / "normcoef" / "pretrained" / "global.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED)
    parser.add_argument("-n", "--samples", type=int, default=16)
    parser.add_argument("--factor", type=int, default=1)
    parser.add_argument("--refine", type=int, default=1, help="the grid is k times coarser")
    parser.add_argument("--out", type=Path, default=Path("resolution.json"))
    args = parser.parse_args()

    torch.set_num_threads(1)
    trained = load_trained_model(args.checkpoint)
    standardizer, model = trained.standardizer, trained.model
    test = load_split(args.root, "test", args.samples)
    standardizer.read_tables_from(args.root)
    training_prior = standardizer.cell_prior
    print(standardizer.cover_inputs(list(test.fields), list(test.ocean)) or "nodes kept")
    fine_prior = standardizer.cell_prior
    periodicity = standardizer.info.periodicity
    rows: dict[str, list[dict[str, float]]] = {
        "prior": [],
        "direct": [],
        "coarsened": [],
        "refined": [],
    }
    start = time.perf_counter()
    for fields, gamma, ocean in zip(test.fields, test.gamma, test.ocean, strict=True):
        standardizer.prior_model = fine_prior
        prior = fine_prior(fields, ocean)
        rows["prior"].append(sample_metrics(prior, gamma, ocean))
        direct = predict_gamma(model, standardizer, fields, ocean, trained.device, prior=prior)
        rows["direct"].append(sample_metrics(direct, gamma, ocean))
        if args.factor > 1:
            standardizer.prior_model = training_prior  # coarse inputs: the training's ratios
            coarse_fields, coarse = coarsen_fields(fields, ocean, args.factor, periodicity)
            coarse_prior = training_prior(coarse_fields, coarse)
            coarse_gamma = predict_gamma(
                model, standardizer, coarse_fields, coarse, trained.device, prior=coarse_prior
            )
            correction = np.where(
                coarse, np.log(coarse_gamma**2 / np.where(coarse, coarse_prior, 1.0) ** 2), 0.0
            )
            fine = refine(correction, coarse, ocean, args.factor, periodicity[0])
            rows["coarsened"].append(sample_metrics(prior * np.exp(fine / 2), gamma, ocean))
        if args.refine > 1:
            standardizer.prior_model = training_prior
            fine_fields, fine = refine_fields(fields, ocean, args.refine, periodicity)
            fine_prior_values = training_prior(fine_fields, fine)
            fine_gamma = predict_gamma(
                model, standardizer, fine_fields, fine, trained.device, prior=fine_prior_values
            )
            correction = np.zeros(fine.shape)
            correction[fine] = np.log(fine_gamma[fine] ** 2 / fine_prior_values[fine] ** 2)
            mean, _ = block_mean(correction, fine, args.refine)
            rows["refined"].append(sample_metrics(prior * np.exp(mean / 2), gamma, ocean))
        print(
            f"sample {len(rows['prior'])}: "
            + ", ".join(f"{k} eps_q {v[-1]['eps_q']:.4f}" for k, v in rows.items() if v),
            flush=True,
        )
    results = {name: aggregate(values) for name, values in rows.items() if values}
    results["seconds"] = time.perf_counter() - start
    args.out.write_text(json.dumps(results, indent=1))
    for name, metrics in results.items():
        print(name, metrics)


if __name__ == "__main__":
    main()
