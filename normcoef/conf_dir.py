"""Where the Hydra configuration lives: ``conf/`` beside the package (an editable install).

Its own module at the bottom of the layers, so that the training layer (the checkpoint
allow-list of ``training.factory``) finds it without importing the config schemas above it.
"""

from __future__ import annotations

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
