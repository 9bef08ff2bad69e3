"""What a sweep's directory tells beyond MLflow: jobs that died before tracking started (from
their Hydra folders and logs), and the Optuna search's best trial and trial states."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from normcoef.report.table import RunResult
from normcoef.tracking import job_context


def missing_jobs(sweep_dir: Path, recorded: Sequence[dict[str, str]]) -> list[RunResult]:
    """Jobs of the sweep directory whose overrides are none of ``recorded`` (those of the
    sweep's MLflow runs): they failed before tracking started."""
    jobs = []
    for hydra_yaml in sorted(sweep_dir.glob("**/.hydra/hydra.yaml")):
        hydra = OmegaConf.load(hydra_yaml).hydra
        overrides = job_context(hydra).overrides
        if overrides not in recorded:
            log = hydra_yaml.parent.parent / "train.log"
            errors = [line for line in _lines(log) if "ERROR" in line]
            reason = errors[-1].split(" - ", 1)[-1] if errors else f"no MLflow run; see {log}"
            jobs.append(RunResult(overrides, "MISSING", failure=reason))
    return jobs


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def optuna_summary(sweep_dir: Path, storage: str | None, study_name: str | None) -> str:
    """Best trial of an Optuna search, and the study's trial states when its storage is known."""
    lines = []
    results = sweep_dir / "optimization_results.yaml"
    if results.exists():
        best = OmegaConf.load(results)
        params = " ".join(f"{k}={v}" for k, v in best.best_params.items())
        lines.append(f"Optuna best trial: value {best.best_value:.4g}, `{params}`")
    if storage and study_name:
        import optuna

        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except Exception as error:  # no such study, or the storage is out of reach
            lines.append(f"Optuna study `{study_name}` not read from {storage}: {error}")
            return "\n".join(lines)
        states: dict[str, int] = {}
        for trial in study.trials:
            states[trial.state.name] = states.get(trial.state.name, 0) + 1
        counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        lines.append(
            f"Optuna study `{study_name}` ({storage}): {len(study.trials)} trials, {counts}"
        )
    return "\n".join(lines)
