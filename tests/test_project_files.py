"""What the tools write in the project directory stays out of git: the MLflow store's lock."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="no git")
@pytest.mark.parametrize("name", ["mlflow.db.lock", "orderings.db.lock", "mlflow.db"])
def test_files_the_tools_write_in_the_project_are_git_ignored(name: str):
    done = subprocess.run(
        ["git", "check-ignore", "-q", name], cwd=REPO, capture_output=True, check=False
    )
    assert done.returncode == 0, f"{name} is not git-ignored"
