"""An interrupted training run says one line and exits with the shell's status: Ctrl-C
(SIGINT) 130, ``kill`` or a batch system's time limit (SIGTERM) 143. The line says how the
MLflow run ended and gives the command that resumes it, and that command does.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TinyDataset
from helpers import one_error_line, tiny_overrides
from mlflow import MlflowClient

from normcoef.console import Terminated, console_main, interrupted_status
from normcoef.tracking.store import prepare_tracking_store
from normcoef.training.checkpoint import load_checkpoint


def test_the_status_of_an_interrupt_is_the_shells():
    assert interrupted_status(KeyboardInterrupt()) == 130
    assert interrupted_status(Terminated()) == 143


def test_a_command_interrupted_says_one_line(capsys: pytest.CaptureFixture):
    def run(argv: list[str] | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stopped:
        console_main(run)([])
    assert stopped.value.code == 130
    one_error_line(capsys.readouterr().err, "interrupted: ")


@pytest.mark.slow
@pytest.mark.reliability(
    "train",
    "Ctrl-C or SIGTERM during training",
    "handled",
    "one line: the run ended KILLED, where its checkpoints are, the command that resumes it; "
    "exit 130 or 143",
)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_says_one_line_and_how_to_resume(
    tiny_dataset: TinyDataset, tmp_path: Path, signum: signal.Signals
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_tracking_store(uri, "normcoef")  # created beforehand: MLflow logs its creation
    arguments = [
        f"dataset.root={tiny_dataset(2)}",
        *tiny_overrides(test=2, steps=100000),
        "trainer.checkpoint_every=1",
        f"logger.tracking_uri={uri}",
        "hydra.run.dir=run",
    ]
    command = [sys.executable, "-m", "normcoef.train", *arguments]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 240
    while not last.exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint written in time"
        time.sleep(0.2)
    time.sleep(0.5)  # past the atomic rename of the first checkpoint
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 128 + signum, stderr
    line = one_error_line(stderr, "interrupted: MLflow run ")
    assert "ended KILLED; its checkpoints are in " in line
    client = MlflowClient(uri)
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "KILLED"
    resume = shlex.split(line.split("resume with: ", 1)[1])
    assert resume[:3] == ["python", "-m", "normcoef.train"]
    stopped_at = load_checkpoint(last)["step"]
    assert resume[-1] == f"trainer.resume={last}"
    # The command resumes: here with fewer steps, into another folder, so it ends at once.
    replaced = ("trainer.steps=", "hydra.run.dir=")
    again = [
        sys.executable,
        *[a for a in resume[1:-1] if not a.startswith(replaced)],
        f"trainer.steps={stopped_at + 1}",
        "hydra.run.dir=again",
        "evaluate=false",
        resume[-1],
    ]
    done = subprocess.run(again, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert load_checkpoint(tmp_path / "again/checkpoints/last.pt")["step"] == stopped_at + 1
