"""The one gateway to MLflow: every MLflow read and write of normcoef goes through here.

- ``store``: where runs are written (``store.resolve_tracking_uri``, the one rule for the
  URI; ``configured_tracking_uri`` of a config), stores created under a lock, the
  experiment's review view;
- ``tags``: run tag names (the ``Tag`` namespace), and the tags of a job run;
- ``job``: what a run records of its Hydra job (overrides, group choices, name, params);
- ``tracker``: the training run's tracker (``MLflowTracker``, or ``NullTracker``);
- ``runs``: other runs: a store's runs and a sweep's parent (``RunStore``), a run an
  evaluation logs into (``ExistingRun``), checkpoints fetched (``download_checkpoint``);
- ``sweep_parent``: the sweep directory's record of its parent run.

This package's namespace is what the rest of normcoef uses; the submodules' other names are
for the package itself and its tests. No other module imports ``mlflow``; importing this
package does not either (MLflow is slow to import, and ``logger=none`` never needs it).
"""

from normcoef.tracking.job import (
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
    configured_tracking_uri,
    review_url,
    sqlite_file_lock,
    tracking_store_problem,
)
from normcoef.tracking.sweep_parent import PARENT_FILE, read_sweep_parent, write_sweep_parent
from normcoef.tracking.tags import Tag, run_overrides, run_tags
from normcoef.tracking.tracker import MLflowTracker, NullTracker, tracks_to_mlflow

__all__ = [
    "DEFAULT_TRACKING_URI",
    "PARENT_FILE",
    "ExistingRun",
    "JobContext",
    "MLflowTracker",
    "NullTracker",
    "RunStore",
    "Tag",
    "configured_tracking_uri",
    "download_checkpoint",
    "flatten",
    "job_context",
    "read_sweep_parent",
    "review_url",
    "run_name",
    "run_overrides",
    "run_tags",
    "short_value",
    "sqlite_file_lock",
    "sweep_run_name",
    "tracking_store_problem",
    "tracks_to_mlflow",
    "write_sweep_parent",
]
