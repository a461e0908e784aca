"""Fixtures for the trainer's tests: small copies of the demo splits and a way to run
`training/train.py` the way SageMaker does, as a separate process."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from trainer_samples import copy_splits, trainer_command, trainer_env


@pytest.fixture(scope="session")
def small_splits(demo_splits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo classes with 8 train / 4 valid / 4 test images each: for runs that need to be
    fast rather than to learn. Shared: copy it before changing it."""
    return copy_splits(demo_splits, tmp_path_factory.mktemp("small") / "splits", per_class=8)


@pytest.fixture
def splits_copy(small_splits: Path, tmp_path: Path) -> Path:
    """A private copy of the small splits that a test may break."""
    return copy_splits(small_splits, tmp_path / "splits")


def _run_trainer(splits: Path, job: Path, *flags: str, timeout: float = 300,
                 **popen) -> subprocess.CompletedProcess:
    job.mkdir(parents=True, exist_ok=True)
    return subprocess.run(trainer_command(splits, job, *flags), capture_output=True, text=True,
                          timeout=timeout, cwd=job, env=trainer_env(), **popen)


@pytest.fixture(scope="session")
def run_trainer():
    """`run_trainer(splits, job_dir, *flags)`: train.py as a script, run from outside the repo
    as the toolkit runs it from its code dir; returns the CompletedProcess."""
    return _run_trainer


@pytest.fixture(scope="session")
def start_trainer():
    """`start_trainer(splits, job_dir, *flags)`: train.py started in its own process group (as a
    job's processes are), stdout piped line by line; returns the Popen."""
    def start(splits: Path, job: Path, *flags: str) -> subprocess.Popen:
        job.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(trainer_command(splits, job, *flags), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1, cwd=job, env=trainer_env(),
                                start_new_session=True)
    return start
