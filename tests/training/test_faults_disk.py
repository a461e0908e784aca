"""Disk full or an output dir gone bad during training: a clear error, the last good checkpoint
intact, and a rerun that resumes from it once the disk is fixed."""
from __future__ import annotations

import resource
import shutil
import signal
from pathlib import Path

import pytest

from training.checkpoint import StopFlag, load_latest
from training.errors import TrainerError
from training.train import parse_args, run_job
from trainer_samples import FAST_FLAGS
from test_faults_interruption import StopAfterSteps


def _args(splits: Path, job: Path, epochs: int):
    # batch 8 over 32 images: 4 steps per epoch
    return parse_args(["--train", str(splits / "train"), "--valid", str(splits / "valid"), "--test",
                       str(splits / "test"), "--model-dir", str(job / "model"), *FAST_FLAGS,
                       "--epochs", str(epochs), "--optimizer", "adamw", "--batch-size", "8"])


@pytest.fixture
def file_size_limit():
    """`file_size_limit(n)`: files of this process cannot grow past n bytes (EFBIG: what a full
    disk looks like to one writer) until the test ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    yield lambda limit: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)


def test_a_disk_that_fills_after_a_good_checkpoint_keeps_it_and_the_rerun_resumes_from_it(
        small_splits: Path, tmp_path: Path, file_size_limit, capsys):
    job, checkpoints = tmp_path / "job", tmp_path / "job" / "checkpoints"
    assert run_job(_args(small_splits, job, 2), StopAfterSteps(4 + 1)) == 0  # stopped in epoch 2
    good = checkpoints / "checkpoint-0001.pth"

    file_size_limit(good.stat().st_size - 1)  # epoch 2's checkpoint no longer fits
    with pytest.raises(TrainerError) as failure:
        run_job(_args(small_splits, job, 2), StopFlag())
    assert str(failure.value) == f"cannot write {checkpoints / 'checkpoint-0002.pth'}: File too large"
    assert [p.name for p in checkpoints.iterdir()] == ["checkpoint-0001.pth"]  # no partial file
    assert load_latest(checkpoints)[0]["epochs_done"] == 1

    file_size_limit(resource.RLIM_INFINITY)  # the disk has room again
    capsys.readouterr()
    assert run_job(_args(small_splits, job, 2), StopFlag()) == 0
    assert f"resuming from {good}: 1 of 2 epoch(s)" in capsys.readouterr().out
    assert (job / "model" / "model.pth").is_file()


class BreakModelDirAfterFirstStep(StopFlag):
    """Never asks to stop; on the first poll (after one training step) the model dir is replaced
    by a file, as when a volume is unmounted or remounted read-only under a running job."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__()
        self._model_dir = model_dir

    @property
    def requested(self) -> bool:
        if self._model_dir.is_dir():
            shutil.rmtree(self._model_dir)
            self._model_dir.write_text("not a folder")
        return False

    @requested.setter
    def requested(self, value: bool) -> None:
        pass


def test_a_model_dir_broken_during_training_is_a_clear_error_and_the_rerun_only_writes_the_model(
        small_splits: Path, tmp_path: Path, capsys):
    job = tmp_path / "job"
    with pytest.raises(TrainerError, match=f"^cannot write the model dir {job / 'model'}: "):
        run_job(_args(small_splits, job, 1), BreakModelDirAfterFirstStep(job / "model"))
    assert load_latest(job / "checkpoints")[0]["epochs_done"] == 1  # the trained epoch is kept

    (job / "model").unlink()
    capsys.readouterr()
    assert run_job(_args(small_splits, job, 1), StopFlag()) == 0
    out = capsys.readouterr().out
    assert "1 of 1 epoch(s) done" in out and "epoch=1 " not in out  # nothing trained again
    assert (job / "model" / "model.pth").is_file()
