"""The one gateway to MLflow: every MLflow read and write of normcoef goes through here.

- ``store``: where runs are written (``DEFAULT_TRACKING_URI``), stores created under a lock;
- ``tags``: tag names as constants, and the tags of a job run (overrides one tag per key);
- ``job``: what a run records of its Hydra job (overrides, group choices, name, params);
- ``tracker``: the training run's tracker (``MLflowTracker``, or ``NullTracker``);
- ``runs``: other runs: a store's runs and a sweep's parent (``RunStore``), a run an
  evaluation logs into (``ExistingRun``), checkpoints fetched (``download_checkpoint``);
- ``sweep_parent``: the sweep directory's record of its parent run.

No other module imports ``mlflow``; importing this package does not either (MLflow is slow to
import, and ``logger=none`` never needs it).
"""

from normcoef.tracking.job import (
    PRESET_GROUPS,
    JobContext,
    flatten,
    job_context,
    run_name,
    short_value,
    sweep_run_name,
)
from normcoef.tracking.runs import ExistingRun, RunStore, download_checkpoint
from normcoef.tracking.store import (
    DEFAULT_TRACKING_URI,
    prepare_tracking_store,
    review_url,
    sqlite_file_lock,
    sqlite_path,
    store_exists,
)
from normcoef.tracking.sweep_parent import PARENT_FILE, read_sweep_parent, write_sweep_parent
from normcoef.tracking.tags import (
    BEST_RUN_TAG,
    BEST_TAG,
    DESCRIPTION_TAG,
    EXPERIMENT_TAG,
    FAILURE_TAG,
    GIT_COMMIT_TAG,
    NOTE_TAG,
    OVERRIDE_DIRNAME_TAG,
    OVERRIDE_TAG,
    PARENT_RUN_TAG,
    PRESET_TAG,
    RESUMED_BY_TAG,
    RESUMED_FROM_TAG,
    SUMMARY_TAG,
    SWEEP_TAG,
    parse_override_dirname,
    run_overrides,
    run_tags,
)
from normcoef.tracking.tracker import (
    MLFLOW_TRACKER,
    MLflowTracker,
    NullTracker,
    tracks_to_mlflow,
)

__all__ = [
    "MLFLOW_TRACKER",
    "BEST_RUN_TAG",
    "BEST_TAG",
    "DEFAULT_TRACKING_URI",
    "DESCRIPTION_TAG",
    "EXPERIMENT_TAG",
    "FAILURE_TAG",
    "GIT_COMMIT_TAG",
    "NOTE_TAG",
    "OVERRIDE_DIRNAME_TAG",
    "OVERRIDE_TAG",
    "PARENT_FILE",
    "PARENT_RUN_TAG",
    "PRESET_GROUPS",
    "PRESET_TAG",
    "RESUMED_BY_TAG",
    "RESUMED_FROM_TAG",
    "SUMMARY_TAG",
    "SWEEP_TAG",
    "ExistingRun",
    "JobContext",
    "MLflowTracker",
    "NullTracker",
    "RunStore",
    "download_checkpoint",
    "flatten",
    "job_context",
    "tracks_to_mlflow",
    "parse_override_dirname",
    "prepare_tracking_store",
    "review_url",
    "read_sweep_parent",
    "run_name",
    "run_overrides",
    "run_tags",
    "short_value",
    "sweep_run_name",
    "sqlite_file_lock",
    "sqlite_path",
    "store_exists",
    "write_sweep_parent",
]
