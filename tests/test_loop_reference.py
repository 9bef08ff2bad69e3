"""The training loop's numbers are fixed: weights and losses after a few steps of each batch
source (whole grids resident on the device, crops with their halo, online augmentation) equal
those the loop gave before its refactoring into small parts (issue 20), stored in
tests/data/loop_reference.json by ``python tests/test_loop_reference.py --write``.

CPU only, at 2 torch threads whatever the machine or OMP_NUM_THREADS (the reference was
written at 2: another thread count splits the convolutions' sums otherwise, and 7 Adam steps
carry that to 1e-3). The tolerance (1e-6 relative) allows another CPU's summation order; on
the machine that wrote the reference they are equal bit for bit.
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
    np.testing.assert_allclose(got["weights"], expected["weights"], rtol=1e-6, atol=1e-9)


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    torch.set_num_threads(REFERENCE_THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        data = {source: numbers(Path(tmp) / source, source) for source in SOURCES}
    REFERENCE.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {REFERENCE}")
