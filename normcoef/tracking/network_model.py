"""A trained network as an MLflow model, defined from code (MLflow "models from code").

MLflow loads this file (``mlflow.pyfunc.load_model``) and the ``checkpoint`` artifact logged
with it: no pickled Python object is stored, and the checkpoint is read by
``normcoef.inference.load_trained_model`` (tensors and plain values only, a config that may
build only the options of conf/), so loading it is as safe as ``normcoef-predict``.

Nothing in normcoef imports this module: the tracker hands MLflow its path
(``tracker.NETWORK_MODEL_CODE``) and MLflow copies the file into the logged model, whose copy is
what loads later. It wraps ``inference``, a layer above the rest of ``tracking``
(tests/test_layers.py), and stays in this folder, the only one that imports ``mlflow``. A
logged model needs only ``normcoef.inference.load_trained_model`` to keep its name.

Input: ``{"fields": (N, 3, H, W) float64 A_i, A_j, W, "mask": (N, H, W) bool, True on
ocean}``; output: γ (N, H, W) float64, NaN on land.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class NetworkModel(PythonModel):
    """γ of a batch of fields on their ocean masks, by the network of one checkpoint.

    ``predict`` has no type hint: its input is a dict of arrays, not the list[...] MLflow
    validates; the signature logged with the model checks it (``MLflowTracker.log_network``).
    """

    def load_context(self, context: Any) -> None:
        from normcoef.inference import load_trained_model

        self.trained = load_trained_model(context.artifacts["checkpoint"], "cpu")

    def predict(self, context, model_input, params=None):
        fields = np.asarray(model_input["fields"], dtype=np.float64)
        masks = np.asarray(model_input["mask"]).astype(bool)
        if fields.ndim == 3:  # one sample
            fields, masks = fields[None], masks[None]
        return np.stack(
            [
                np.where(mask, self.trained.predict(sample, mask), np.nan)
                for sample, mask in zip(fields, masks, strict=True)
            ]
        )


mlflow.models.set_model(NetworkModel())
