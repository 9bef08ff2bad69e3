"""Specification of the MLflow gateway (``normcoef.tracking``): it is the only module that
reaches MLflow; a job run's tags carry its overrides one per key; a run written into after the
fact (an evaluation's) is checked first and keeps its status.

Runs are made in SQLite stores copied from one template (tests/test_report.py's fixtures);
no network is trained here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf
from test_report import store, template  # noqa: F401 (the store fixture, one template store)

from normcoef.tracking import (
    ExistingRun,
    JobContext,
    RunStore,
    Tag,
    configured_tracking_uri,
    run_overrides,
    run_tags,
)
from normcoef.tracking.store import DEFAULT_TRACKING_URI
from normcoef.tracking.tags import parse_override_dirname

PACKAGE = Path(__file__).resolve().parents[1] / "normcoef"
# Modules that still reach MLflow themselves, or spell tag names, until the lead merges their
# move to the gateway.
NOT_YET_THROUGH_THE_GATEWAY: set[str] = set()


def mlflow_importers(root: Path) -> list[str]:
    """Modules under ``root`` (the tracking package excepted) that import ``mlflow``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] == "tracking" or str(relative) in NOT_YET_THROUGH_THE_GATEWAY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "mlflow" or name.startswith("mlflow.") for name in names):
                found.append(str(relative))
    return sorted(set(found))


def tag_spellers(root: Path) -> list[str]:
    """Modules under ``root`` (tracking/tags.py excepted) that spell a tag name literally."""
    names = {value for key, value in vars(Tag).items() if key.isupper()}
    assert len(names) == 15  # the namespace is read, not an empty set
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = str(path.relative_to(root))
        if relative in {"tracking/tags.py", *NOT_YET_THROUGH_THE_GATEWAY}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(relative)
    return sorted(set(found))


def test_no_module_outside_the_tracking_package_imports_mlflow():
    assert mlflow_importers(PACKAGE) == []


def test_tag_names_are_spelt_once_in_the_tags_module():
    assert tag_spellers(PACKAGE) == []


def tracking_uri_readers(root: Path) -> list[str]:
    """Modules under ``root`` (the tracking package excepted) that read ``tracking_uri`` from
    a config themselves (``<x>.logger.tracking_uri``, ``<x>.get("tracking_uri")``)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] == "tracking":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            attribute = (
                isinstance(node, ast.Attribute)
                and node.attr == "tracking_uri"
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "logger"
            )
            getter = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and any(
                    isinstance(a, ast.Constant) and a.value == "tracking_uri" for a in node.args
                )
            )
            if attribute or getter:
                found.append(str(relative))
    return sorted(set(found))


def test_the_tracking_uri_is_read_from_a_config_only_in_the_tracking_package():
    assert tracking_uri_readers(PACKAGE) == []


def test_a_config_without_a_tracking_uri_means_the_embedded_store():
    none = OmegaConf.create({"_target_": "normcoef.tracking.NullTracker"})
    server = OmegaConf.create({"tracking_uri": "http://mlflow:5000"})
    assert configured_tracking_uri(none) == DEFAULT_TRACKING_URI
    assert configured_tracking_uri(OmegaConf.create({"tracking_uri": None})) == DEFAULT_TRACKING_URI
    assert configured_tracking_uri(server) == "http://mlflow:5000"


def test_every_name_the_tracking_package_exports_is_used_outside_it():
    """A small surface: what the rest of normcoef (or conf/) uses, nothing for tests alone."""
    import normcoef.tracking

    outside = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "tracking"]
    repo = PACKAGE.parent
    outside += [*(repo / "hydra_plugins").rglob("*.py"), *(repo / "benchmarks").rglob("*.py")]
    outside += list((repo / "conf").rglob("*.yaml"))
    text = "\n".join(p.read_text() for p in outside)
    unused = [n for n in normcoef.tracking.__all__ if not re.search(rf"\b{n}\b", text)]
    assert unused == []


# --- the tags of a job run ---------------------------------------------------------------


def test_a_job_runs_tags_hold_each_override_and_its_sweeps_parent():
    job = JobContext({"activation": "elu", "model.layers": "3"}, {"experiment": "smoke/x"})
    tags = run_tags("activation_smoke", job, "activation=elu,model.layers=3", "multirun/s1", "p1")
    assert tags == {
        Tag.EXPERIMENT: "activation_smoke",
        Tag.OVERRIDE_DIRNAME: "activation=elu,model.layers=3",
        Tag.SWEEP: "multirun/s1",
        Tag.PRESET: "experiment=smoke/x",
        Tag.OVERRIDE_PREFIX + "activation": "elu",
        Tag.OVERRIDE_PREFIX + "model.layers": "3",
        Tag.PARENT_RUN: "p1",
    }
    assert run_overrides(tags) == job.overrides


def test_a_run_outside_a_sweep_has_no_parent_and_its_defaults_are_named():
    tags = run_tags("quickstart", JobContext())
    assert tags == {Tag.EXPERIMENT: "quickstart", Tag.OVERRIDE_DIRNAME: "(defaults)", Tag.SWEEP: ""}
    assert run_overrides(tags) == {}


def test_the_structured_overrides_win_over_the_override_string():
    tags = {Tag.OVERRIDE_PREFIX + "loss": "mse", Tag.OVERRIDE_DIRNAME: "loss=rel_sq"}
    assert run_overrides(tags) == {"loss": "mse"}


def test_an_old_runs_override_string_keeps_lists_whole():
    assert parse_override_dirname("a.b=[1,2],loss=mse") == {"a.b": "[1,2]", "loss": "mse"}
    assert parse_override_dirname("(defaults)") == {}


# --- writing into a run that exists ------------------------------------------------------


def finished_run(uri: str) -> str:
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("normcoef").experiment_id
    run_id = client.create_run(experiment_id).info.run_id
    client.set_terminated(run_id, "FINISHED")
    return run_id


def test_an_unknown_run_is_refused_before_anything_is_written(store: str):  # noqa: F811
    with pytest.raises(ValueError, match=f"no MLflow run 'nope' at {store}"):
        ExistingRun("nope", store)


def test_an_existing_run_gets_metrics_text_and_artifacts_and_stays_finished(
    store: str,  # noqa: F811
    tmp_path: Path,
):
    run_id = finished_run(store)
    figure = tmp_path / "gamma.png"
    figure.write_bytes(b"png")
    run = ExistingRun(run_id, store)
    run.log_metrics({"test/cnn/eps_q": 0.25, "test/cnn/eps_max": 0.5})
    run.log_text("| table |", "test_metrics.md")
    run.log_artifacts([figure], "figures")

    stored = MlflowClient(store).get_run(run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.metrics == {"test/cnn/eps_q": 0.25, "test/cnn/eps_max": 0.5}
    artifacts = {a.path for a in MlflowClient(store).list_artifacts(run_id)}
    assert artifacts == {"figures", "test_metrics.md"}


def test_a_missing_sqlite_store_is_not_created_by_asking(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'nowhere.db'}"
    assert not RunStore(uri).exists()
    assert not (tmp_path / "nowhere.db").exists()
    assert RunStore("http://localhost:5000").exists()  # a server: MLflow answers for it
