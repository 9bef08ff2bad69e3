"""Generate a data set: ``python -m normcoef.generate dataset=python``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from normcoef.config import generation_spec, register_configs
from normcoef.data.generation import generate_dataset, summary

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    root = cfg.dataset.root
    generate_dataset(root, generation_spec(cfg.dataset), progress=cfg.progress, workers=cfg.workers)
    print(summary(root))


if __name__ == "__main__":
    main()
