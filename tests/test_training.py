"""Specification of a training run: tracking, resume, determinism, augmentation, failures.

Runs call ``run_training`` on configs that Hydra composes from conf/, on a 16x24 python grid
with 3/1/2 samples, 3-layer 4-channel networks and a few CPU steps. Each test gets its own
MLflow SQLite store, a copy of one created once for the module (creating a store runs
seconds of schema migrations). The real ``python -m normcoef.train`` runs as a subprocess.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TinyDataset
from helpers import compose_config, one_error_line, tiny_overrides
from hydra.errors import ConfigCompositionException
from mlflow import MlflowClient
from omegaconf import DictConfig

from normcoef.pipeline import load_data, refuse_data_parallel, run_training
from normcoef.tracking import MLflowTracker
from normcoef.training.checkpoint import load_checkpoint
from normcoef.training.factory import build_model
from normcoef.training.loop import DivergenceError
from normcoef.training.threads import usable_cores

TINY = [
    *tiny_overrides(test=2, layers=3, steps=4, eval_every=2),
    "evaluation.randomization_samples=50",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: TinyDataset) -> Path:
    """The tiny data set under data/ and an empty MLflow store to copy, template.db."""
    root = tmp_path_factory.mktemp("training")
    tiny_dataset(test=2, into=root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # the store's default experiment keeps its artifacts here
        MlflowClient(f"sqlite:///{root / 'template.db'}").search_experiments()
    return root


def new_store(workdir: Path, directory: Path) -> str:
    """A fresh MLflow store in ``directory``; its artifacts go to the working directory."""
    shutil.copyfile(workdir / "template.db", directory / "mlflow.db")
    return f"sqlite:///{directory / 'mlflow.db'}"


@pytest.fixture
def store(workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    return new_store(workdir, tmp_path)


def config(workdir: Path, out: Path, *overrides: str, uri: str | None = None) -> DictConfig:
    """conf/train.yaml with the tiny presets; tracked in ``uri``, else untracked."""
    logger = [f"logger.tracking_uri={uri}"] if uri else ["logger=none"]
    return compose_config(
        "train",
        f"dataset.root={workdir / 'data'}",
        f"trainer.output_dir={out}",
        *TINY,
        *logger,
        *overrides,
    )


def tracked_run(uri: str, output_dir: Path):
    """The one MLflow run of ``uri`` that trained into ``output_dir``."""
    client = MlflowClient(uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("normcoef").experiment_id],
        filter_string=f"params.`trainer.output_dir` = '{output_dir}'",
    )
    assert len(runs) == 1
    return runs[0]


def artifacts(uri: str, run_id: str, path: str | None = None) -> list[str]:
    client = MlflowClient(uri)
    found = []
    for item in client.list_artifacts(run_id, path):
        found += artifacts(uri, run_id, item.path) if item.is_dir else [item.path]
    return found


def final_metrics(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if k.startswith(("test/", "best/"))}


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


# --- one tracked run, end to end ---------------------------------------------------------


@pytest.fixture(scope="module")
def finished(workdir: Path, tmp_path_factory: pytest.TempPathFactory):
    """(returned value, MLflow run, store URI) of a tracked run monitoring val/eps_q."""
    out = tmp_path_factory.mktemp("finished")
    uri = new_store(workdir, out)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(out)
        value = run_training(config(workdir, out, "trainer.monitor=val/eps_q", uri=uri))
    return value, tracked_run(uri, out), uri


def test_finished_run_logs_the_flattened_config_and_the_model_size(finished):
    _, run, _ = finished
    params = run.data.params
    assert run.info.status == "FINISHED"
    assert params["model.layers"] == "3"
    assert params["model.channels"] == "4"
    assert params["trainer.monitor"] == "val/eps_q"
    assert params["dataset.splits.train"] == "3"
    assert params["augmentation.transforms"] == "[]"
    # 3x3 convs with BatchNorm 3->4 (120) and 4->4 (156), then the 4->1 output conv (37).
    assert params["model.parameters"] == "313"
    assert params["data.train_samples"] == "3"
    assert params["device"] == "cpu"
    assert params["threads"] == str(usable_cores())  # one run alone: every usable core


def test_finished_run_logs_loss_per_step_and_cnn_and_randomization_test_metrics(finished):
    _, run, uri = finished
    history = MlflowClient(uri).get_metric_history
    assert [m.step for m in history(run.info.run_id, "train/loss")] == [1, 2, 3, 4]
    assert [m.step for m in history(run.info.run_id, "val/eps_q")] == [2, 4]
    for method in ("cnn", "randomization"):
        for metric in ("eps_q", "eps_max", "eps_mean", "rmse"):
            assert run.data.metrics[f"test/{method}/{metric}"] > 0


def test_finished_run_stores_config_metrics_table_checkpoints_and_figures(finished):
    _, run, uri = finished
    stored = set(artifacts(uri, run.info.run_id))
    assert {"config.yaml", "test_metrics.md"} <= stored
    assert {"checkpoints/best.pt", "checkpoints/last.pt"} <= stored
    assert {path for path in stored if path.startswith("figures/")} == {
        "figures/error_by_distance.png",
        "figures/ocean_cells_by_distance.png",
        "figures/mean_abs_error_map.png",
    }


def test_run_returns_the_best_monitored_value_it_logs(finished):
    value, run, uri = finished
    validation = MlflowClient(uri).get_metric_history(run.info.run_id, "val/eps_q")
    assert value == run.data.metrics["best/val/eps_q"]
    assert value == pytest.approx(min(m.value for m in validation))


# --- resume ------------------------------------------------------------------------------

# lr 0.03 makes val/loss rise after step 2, so the best checkpoint is saved before the
# interruption at step 3 and the resumed run must carry it to its final evaluation.
RESUMABLE = ["trainer.steps=6", "optimizer.lr=0.03", "scheduler=cosine"]
STOP = 3


@pytest.fixture(scope="module")
def interrupted(workdir: Path, tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted run and one stopped after step 3, tracked in one store."""
    out = tmp_path_factory.mktemp("resume")
    uri = new_store(workdir, out)
    stop = f"trainer.stop_at={STOP}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(out)
        run_training(config(workdir, out / "whole", *RESUMABLE, uri=uri))
        run_training(config(workdir, out / "stopped", *RESUMABLE, stop, uri=uri))
    return out, uri, tracked_run(uri, out / "whole"), tracked_run(uri, out / "stopped")


@pytest.mark.parametrize("by", ["path", "run_id"])
def test_resumed_run_ends_with_the_weights_and_metrics_of_an_uninterrupted_run(
    workdir: Path, interrupted, by: str, monkeypatch: pytest.MonkeyPatch
):
    out, uri, whole, stopped = interrupted
    whole_dir = out / "whole" / whole.info.run_id
    stopped_dir = out / "stopped" / stopped.info.run_id
    assert load_checkpoint(stopped_dir / "last.pt")["step"] == STOP
    assert load_checkpoint(whole_dir / "best.pt")["best_step"] < STOP, "the scenario changed"
    source = stopped_dir / "last.pt" if by == "path" else stopped.info.run_id

    monkeypatch.chdir(out)
    resumed_out = out / f"resumed_by_{by}"
    value = run_training(
        config(workdir, resumed_out, *RESUMABLE, f"trainer.resume={source}", uri=uri)
    )

    resumed = tracked_run(uri, resumed_out)
    resumed_dir = resumed_out / resumed.info.run_id
    assert resumed.info.status == "FINISHED"
    assert_same_weights(resumed_dir / "last.pt", whole_dir / "last.pt")
    assert_same_weights(resumed_dir / "best.pt", whole_dir / "best.pt")
    assert value == whole.data.metrics["best/val/loss"]
    assert final_metrics(resumed) == final_metrics(whole)
    client = MlflowClient(uri)
    resumed_losses, whole_losses = (
        [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")]
        for run in (resumed, whole)
    )
    assert resumed_losses == whole_losses[STOP:]


def test_resuming_from_an_unknown_run_says_what_it_looked_for(
    workdir: Path, store: str, tmp_path: Path
):
    cfg = config(workdir, tmp_path, f"trainer.resume={'0123456789abcdef' * 2}", uri=store)
    with pytest.raises(FileNotFoundError, match="checkpoints/last.pt of MLflow run '0123"):
        run_training(cfg)


def test_a_mistyped_resume_path_is_not_taken_for_a_run_id(workdir: Path, tmp_path: Path):
    cfg = config(workdir, tmp_path, f"trainer.resume={tmp_path / 'chekpoints'}")
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*chekpoints"):
        run_training(cfg)
    assert not (tmp_path / "mlflow.db").exists()


def test_resuming_a_finished_run_trains_nothing_and_evaluates_its_best_checkpoint(
    workdir: Path, interrupted, monkeypatch: pytest.MonkeyPatch
):
    out, uri, whole, _ = interrupted
    whole_dir = out / "whole" / whole.info.run_id
    monkeypatch.chdir(out)
    again = out / "again"
    resume = f"trainer.resume={whole_dir / 'last.pt'}"
    value = run_training(config(workdir, again, *RESUMABLE, resume, uri=uri))
    rerun = tracked_run(uri, again)
    assert rerun.info.status == "FINISHED"
    assert value == whole.data.metrics["best/val/loss"]
    assert final_metrics(rerun) == final_metrics(whole)
    assert_same_weights(again / rerun.info.run_id / "last.pt", whole_dir / "last.pt")


# --- determinism -------------------------------------------------------------------------


def test_same_seed_gives_identical_weights_and_another_seed_different_ones(
    workdir: Path, tmp_path: Path
):
    for name, seed in (("first", 7), ("again", 7), ("other", 8)):
        cfg = config(workdir, tmp_path / name, f"trainer.seed={seed}", "evaluate=false")
        run_training(cfg)

    def last(name: str) -> Path:  # each untracked run has its own <time>_<id> folder
        (path,) = (tmp_path / name).glob("*/last.pt")
        return path

    assert_same_weights(last("first"), last("again"))
    with pytest.raises(AssertionError):
        assert_same_weights(last("first"), last("other"))


# --- augmentation ------------------------------------------------------------------------


def test_offline_hflip_doubles_the_training_split_and_is_tracked_like_any_run(
    workdir: Path, store: str, tmp_path: Path
):
    cfg = config(workdir, tmp_path, "augmentation=hflip", "evaluate=false", uri=store)
    assert len(load_data(cfg).train) == 2 * 3
    run_training(cfg)

    run = tracked_run(store, tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.params["augmentation.transforms"] == '["hflip"]'
    assert run.data.params["augmentation.mode"] == "offline"
    assert run.data.params["data.train_samples"] == "6"
    assert run.data.params["data.valid_samples"] == "1"
    assert "best/val/loss" in run.data.metrics


# --- failures ----------------------------------------------------------------------------


def test_diverging_run_fails_naming_the_step_and_a_fix_and_marks_the_mlflow_run_failed(
    workdir: Path, store: str, tmp_path: Path
):
    cfg = config(workdir, tmp_path, "optimizer.lr=1e12", uri=store)
    with pytest.raises(
        DivergenceError, match=r"training loss is (nan|inf) at step \d+: lower optimizer.lr"
    ):
        run_training(cfg)

    run = tracked_run(store, tmp_path)
    assert run.info.status == "FAILED"
    assert "lower optimizer.lr" in run.data.tags["normcoef.failure"]


def test_unknown_monitor_is_refused_before_training_naming_the_choices(
    workdir: Path, tmp_path: Path
):
    cfg = config(workdir, tmp_path, "trainer.monitor=val/epsq")
    with pytest.raises(ValueError, match=r"trainer.monitor='val/epsq'.*val/eps_q"):
        run_training(cfg, run_dir=tmp_path / "run")
    assert not list((tmp_path / "run").glob("*.pt"))


def test_misspelt_option_is_refused_listing_the_available_ones(workdir: Path, tmp_path: Path):
    with pytest.raises(ConfigCompositionException, match="Could not find 'model/resnet'") as error:
        config(workdir, tmp_path, "model=resnet")
    assert "skip_add" in str(error.value)


# --- the real command line ---------------------------------------------------------------


def cli(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "normcoef.train", *overrides]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_refuses_a_misspelt_key_naming_it_without_a_traceback(tmp_path: Path):
    done = cli(tmp_path, "trainer.stepz=3")
    assert done.returncode == 2
    line = one_error_line(done.stderr, "error: trainer.stepz=3: trainer has no key 'stepz'")
    assert "did you mean trainer.steps?" in line


def test_cli_trains_into_the_hydra_run_directory(workdir: Path, tmp_path: Path):
    data = f"dataset.root={workdir / 'data'}"
    done = cli(tmp_path, data, *TINY, "logger=none", "evaluate=false", "hydra.run.dir=run")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert load_checkpoint(tmp_path / "run/checkpoints/last.pt")["step"] == 4
    assert (tmp_path / "run/checkpoints/best.pt").exists()
    assert (tmp_path / "run/.hydra/overrides.yaml").exists()


def test_cli_trains_into_trainer_output_dir_inside_the_hydra_run_directory(
    workdir: Path, tmp_path: Path
):
    data = f"dataset.root={workdir / 'data'}"
    overrides = [*TINY, "logger=none", "evaluate=false", "hydra.run.dir=run"]
    done = cli(tmp_path, data, *overrides, "trainer.output_dir=weights")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert load_checkpoint(tmp_path / "run/weights/last.pt")["step"] == 4
    assert not (tmp_path / "run/checkpoints").exists()


# --- models from configs -----------------------------------------------------------------


@pytest.mark.parametrize("distance_map", ["none", "manhattan", "euclidean"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("model", ["cnn", "skip_add", "skip_concat"])
def test_factory_built_model_outputs_one_channel_on_the_data_grid(
    workdir: Path, tmp_path: Path, model: str, padding: str, distance_map: str
):
    overrides = [f"model={model}", f"model.padding={padding}", f"distance_map={distance_map}"]
    cfg = config(workdir, tmp_path, *overrides, "model.layers=4")
    data = load_data(cfg)
    network = build_model(cfg.model, cfg.activation, data.standardizer.in_channels).eval()
    x, y, _ = data.train.item(0)
    assert x.shape[0] == (3 if distance_map == "none" else 4)
    with torch.no_grad():
        assert network(x[None]).shape == (1, *y.shape) == (1, 1, 16, 24)


def test_a_torchrun_launch_with_several_processes_is_refused_with_advice():
    refuse_data_parallel({"WORLD_SIZE": "1"})
    with pytest.raises(RuntimeError, match="WORLD_SIZE=2.*one process per GPU"):
        refuse_data_parallel({"WORLD_SIZE": "2"})


@pytest.mark.reliability(
    "train",
    "trainer.resume of another network (other channels)",
    "error",
    "one line: which tensor differs, resume with its config; no MLflow run opened",
)
def test_resuming_another_network_is_refused_before_any_run_opens(
    workdir: Path, interrupted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from normcoef.training.checkpoint import CheckpointError

    out, _, _, stopped = interrupted
    last = out / "stopped" / stopped.info.run_id / "last.pt"
    monkeypatch.chdir(tmp_path)
    uri = new_store(workdir, tmp_path)
    cfg = config(
        workdir,
        tmp_path / "wider",
        *RESUMABLE,
        f"trainer.resume={last}",
        "model.channels=8",
        uri=uri,
    )
    with pytest.raises(CheckpointError, match=f"^cannot resume from {last}: it holds another"):
        run_training(cfg)
    assert every_run(uri) == []


def test_a_misspelt_monitor_is_refused_before_any_run_opens(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    uri = new_store(workdir, tmp_path)
    with pytest.raises(ValueError, match=r"trainer.monitor='val/epsq': choose one of val/loss"):
        run_training(config(workdir, tmp_path / "out", "trainer.monitor=val/epsq", uri=uri))
    assert every_run(uri) == []


def every_run(uri: str) -> list:
    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_an_interrupt_while_the_run_logs_its_params_ends_it_killed_not_running(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """SIGTERM arrives as KeyboardInterrupt (normcoef.train); one that lands while the new run
    logs its params and config must still close the run."""
    monkeypatch.chdir(tmp_path)
    uri = new_store(workdir, tmp_path)

    def interrupted(self, params):
        raise KeyboardInterrupt

    monkeypatch.setattr(MLflowTracker, "log_params", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_training(config(workdir, tmp_path / "out", uri=uri))
    assert [run.info.status for run in every_run(uri)] == ["KILLED"]
