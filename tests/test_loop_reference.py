"""The training loop's numbers are fixed: weights and losses after a few steps of each batch
source (whole grids resident on the device, crops with their halo, online augmentation) equal
those the loop gave before its refactoring into small parts (issue 20), stored in
tests/data/loop_reference.json by ``python tests/test_loop_reference.py --write``.

CPU only, at 2 torch threads whatever the machine or OMP_NUM_THREADS (the reference was
written at 2: another thread count splits the convolutions' sums otherwise, and 7 Adam steps
carry that to 1e-3). The tolerance (1e-6 relative, 1e-7 absolute, where Adam moves a weight
1e-3 a step) allows another CPU's summation order; on the machine that wrote the reference
they are equal bit for bit.

A convolution's bias that feeds a batch norm has a gradient of exactly zero in exact
arithmetic (the norm removes the mean), so what Adam does with it is rounding noise scaled
to a full step: another CPU moves it by 1e-3. Those biases, and the running means they shift,
are left out of the comparison; the losses show they change nothing the network computes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_fast_loop import settings, tiny_model, train

REFERENCE = Path(__file__).parent / "data" / "loop_reference.json"
SOURCES = {
    "resident": {},
    "crops": {"crop": [4, 6]},
    "online": {"online": ["hflip"]},
}


REFERENCE_THREADS = 2


def noise_only(model: torch.nn.Module) -> set[str]:
    """State-dict names of each conv bias that feeds a batch norm, and that norm's running mean."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        children = list(module.named_children())
        for (conv_name, conv), (norm_name, norm) in zip(children, children[1:], strict=False):
            if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
                stem = f"{prefix}." if prefix else ""
                names |= {f"{stem}{conv_name}.bias", f"{stem}{norm_name}.running_mean"}
    return names


def compared(model: torch.nn.Module, flat: list[float]) -> np.ndarray:
    """The flattened state dict without what :func:`noise_only` names."""
    skip = noise_only(model)
    keep, start = [], 0
    for name, value in model.state_dict().items():
        if name not in skip:
            keep.extend(range(start, start + value.numel()))
        start += value.numel()
    assert start == len(flat), "the reference was written for another model"
    return np.asarray(flat)[keep]


def numbers(run_dir: Path, source: str) -> dict[str, list[float]]:
    """Final weights (flattened, in state-dict order) and the logged losses of 7 steps."""
    values = dict(SOURCES[source])
    online = values.pop("online", None)
    model = tiny_model()
    result = train(run_dir, model=model, online=online, log_every=1, **values)
    weights = torch.cat([p.detach().flatten() for p in model.state_dict().values()])
    losses = [record["train/loss"] for record in result.history]
    return {"weights": weights.double().tolist(), "losses": losses}


@pytest.fixture
def reference_threads():
    """torch at the reference's thread count for one test, then back as it was."""
    before = torch.get_num_threads()
    torch.set_num_threads(REFERENCE_THREADS)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.usefixtures("reference_threads")
def test_the_loop_gives_the_numbers_it_gave_before_its_refactoring(source: str, tmp_path: Path):
    expected = json.loads(REFERENCE.read_text())[source]
    got = numbers(tmp_path, source)
    assert len(got["losses"]) == len(expected["losses"]) == settings().steps
    np.testing.assert_allclose(got["losses"], expected["losses"], rtol=1e-6)
    model = tiny_model()
    assert len(noise_only(model)) == 4  # two conv + batch-norm pairs in the tiny model
    np.testing.assert_allclose(
        compared(model, got["weights"]), compared(model, expected["weights"]), rtol=1e-6, atol=1e-7
    )


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    torch.set_num_threads(REFERENCE_THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        data = {source: numbers(Path(tmp) / source, source) for source in SOURCES}
    REFERENCE.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {REFERENCE}")
