"""A training job killed mid-run (SIGKILL, or SIGTERM as on a spot interruption) loses at most the
epoch in progress, and its rerun ends with the same metrics as a run that was never interrupted."""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from training.checkpoint import StopFlag
from training.data import EpochBatches
from training.train import parse_args, run_job
from trainer_samples import FAST_FLAGS

FLAGS = ("--epochs", "2", "--optimizer", "adamw", "--seed", "3")


def metric_lines(stdout: str) -> list[str]:
    return re.findall(r"^(?:epoch=\d+|test_loss=).*$", stdout, re.M)


def wait_for(path: Path, process, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_sigkilled_job_resumes_from_its_newest_checkpoint_and_ends_like_an_uninterrupted_run(
        small_splits: Path, tmp_path: Path, start_trainer, run_trainer):
    reference = run_trainer(small_splits, tmp_path / "reference", *FLAGS)
    assert reference.returncode == 0, reference.stderr

    job = tmp_path / "job"
    killed = start_trainer(small_splits, job, *FLAGS)
    wait_for(job / "checkpoints" / "checkpoint-0001.pth", killed)
    os.killpg(killed.pid, signal.SIGKILL)  # no handler runs: whatever was in flight is lost
    killed.communicate(timeout=60)

    rerun = run_trainer(small_splits, job, *FLAGS)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming from {job / 'checkpoints' / 'checkpoint-0001.pth'}: 1 of 2 epoch(s) done" in rerun.stdout
    assert re.findall(r"^epoch=(\d+) ", rerun.stdout, re.M) == ["2"]  # only the unfinished epoch again
    assert metric_lines(rerun.stdout) == metric_lines(reference.stdout)[1:]


class StopAfterSteps(StopFlag):
    """SIGTERM as the training loop sees it (a flag polled after each step), arriving after `steps`
    steps: a deterministic stand-in for a signal's timing."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self._polls_left = steps

    @property
    def requested(self) -> bool:
        self._polls_left -= 1
        return self._polls_left < 0

    @requested.setter
    def requested(self, value: bool) -> None:
        pass


def _job_args(splits: Path, job: Path, num_workers: str) -> list[str]:
    # batch 8 over 32 images: 4 steps per epoch, so a stop can land in the middle of one
    return ["--train", str(splits / "train"), "--valid", str(splits / "valid"), "--test", str(splits / "test"),
            "--model-dir", str(job / "model"), *FAST_FLAGS, *FLAGS, "--batch-size", "8",
            "--num-workers", num_workers]


# With workers, which persist across epochs, the loader's own random draws differ between a
# process that ran epoch 1 and one that starts at epoch 2: the order must not depend on them.
@pytest.mark.parametrize("num_workers", ["0", "1"])
def test_a_job_stopped_mid_epoch_resumes_at_the_next_step_and_ends_with_the_uninterrupted_weights(
        small_splits: Path, tmp_path: Path, capsys, num_workers: str):
    assert run_job(parse_args(_job_args(small_splits, tmp_path / "reference", num_workers)), StopFlag()) == 0
    reference = capsys.readouterr().out

    job = tmp_path / "job"
    assert run_job(parse_args(_job_args(small_splits, job, num_workers)), StopAfterSteps(4 + 2)) == 0
    assert "stopped by SIGTERM in epoch 2 after step 2" in capsys.readouterr().out
    assert run_job(parse_args(_job_args(small_splits, job, num_workers)), StopFlag()) == 0
    rerun = capsys.readouterr().out

    assert "1 of 2 epoch(s) and 2 step(s) of the next done" in rerun
    assert metric_lines(rerun) == metric_lines(reference)[1:]
    expected = torch.load(tmp_path / "reference" / "model" / "model.pth", weights_only=True)
    resumed = torch.load(job / "model" / "model.pth", weights_only=True)
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)


def test_an_epochs_order_and_augmentation_seeds_depend_only_on_seed_and_epoch_and_resume_mid_way():
    def drawn(seed: int, epoch: int, start_step: int = 0) -> list[list[tuple[int, int]]]:
        batches = EpochBatches(10, 2, seed)
        batches.set_epoch(epoch, start_step=start_step)
        torch.rand(3)  # what the global RNG did before must not matter
        return list(batches)

    whole = drawn(3, 2)
    assert sorted(index for batch in whole for index, _ in batch) == list(range(10))
    assert whole == drawn(3, 2) and drawn(3, 2, start_step=2) == whole[2:]
    assert whole not in (drawn(3, 1), drawn(4, 2))


@pytest.mark.parametrize("world_size", [2, 3])
def test_the_ranks_shares_of_each_global_batch_are_together_one_processes_batch(world_size: int):
    def shares_of(rank: int, start_step: int = 0) -> list[list[tuple[int, int]]]:
        batches = EpochBatches(23, 8, seed=5, rank=rank, world_size=world_size)
        batches.set_epoch(4, start_step=start_step)
        return list(batches)

    one = EpochBatches(23, 8, seed=5)
    one.set_epoch(4)
    single = list(one)
    ranks = [shares_of(rank) for rank in range(world_size)]
    assert len(single) == 2  # 23 images at a global batch of 8: the ragged third batch is dropped
    for step, batch in enumerate(single):
        assert [item for rank in ranks for item in rank[step]] == batch
        assert max(len(r[step]) for r in ranks) - min(len(r[step]) for r in ranks) <= 1
    assert [shares_of(rank, start_step=1) for rank in range(world_size)] == [r[1:] for r in ranks]
