"""Spot interruption: SIGTERM makes the trainer checkpoint and exit 0; a rerun resumes and finishes."""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from training.checkpoint import load_latest, save_checkpoint
from training.train import _run_identity, cli, parse_args

EPOCHS = 3


def _epochs(stdout: str) -> list[int]:
    return [int(e) for e in re.findall(r"^epoch=(\d+) ", stdout, re.M)]


def test_sigterm_mid_training_checkpoints_exits_0_and_a_rerun_resumes_and_finishes(
        small_splits: Path, tmp_path: Path, start_trainer, run_trainer):
    job = tmp_path / "job"
    # One DataLoader worker: SIGTERM goes to the whole process group, workers included.
    flags = ("--epochs", str(EPOCHS), "--batch-size", "8", "--num-workers", "1")
    first = start_trainer(small_splits, job, *flags)
    seen = []
    for line in first.stdout:
        seen.append(line)
        if line.startswith("epoch=1 "):
            os.killpg(first.pid, signal.SIGTERM)
            break
    rest, err = first.communicate(timeout=300)
    first_out = "".join(seen) + rest
    assert first.returncode == 0, err
    done = _epochs(first_out)
    assert "stopped by SIGTERM" in first_out and done == list(range(1, len(done) + 1)) and len(done) < EPOCHS
    assert not (job / "model" / "model.pth").exists()

    second = run_trainer(small_splits, job, *flags)
    assert second.returncode == 0, second.stderr
    assert f"resuming from {job / 'checkpoints'}" in second.stdout
    assert _epochs(second.stdout) == list(range(len(done) + 1, EPOCHS + 1))
    assert (job / "model" / "model.pth").is_file()


def test_resume_falls_back_to_the_previous_checkpoint_when_the_newest_is_truncated(tmp_path: Path, capsys):
    save_checkpoint(tmp_path, 1, {"epochs_done": 1})
    newest = save_checkpoint(tmp_path, 2, {"epochs_done": 2})
    newest.write_bytes(newest.read_bytes()[:100])
    state, path = load_latest(tmp_path)
    assert (state["epochs_done"], path.name) == (1, "checkpoint-0001.pth")
    assert capsys.readouterr().err.startswith(f"warning: skipping unreadable checkpoint {newest}")


def test_temporary_files_of_an_interrupted_write_are_never_resumed_from(tmp_path: Path):
    save_checkpoint(tmp_path, 1, {"epochs_done": 1})
    (tmp_path / ".checkpoint-0002.pth.abc.tmp").write_bytes(b"half a checkpoint")
    assert load_latest(tmp_path)[1].name == "checkpoint-0001.pth"


def test_only_the_two_newest_checkpoints_are_kept(tmp_path: Path):
    for epoch in (1, 2, 3):
        save_checkpoint(tmp_path, epoch, {"epochs_done": epoch})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0002.pth", "checkpoint-0003.pth"]


def test_a_checkpoint_of_a_different_run_is_refused_with_a_clear_error(small_splits: Path, tmp_path: Path, capsys):
    checkpoints = tmp_path / "checkpoints"
    save_checkpoint(checkpoints, 1, {"identity": {"classes": ["dog", "cat"]}, "epochs_done": 1,
                                     "model": {}, "history": []})
    code = cli(["--train", str(small_splits / "train"), "--valid", str(small_splits / "valid"),
                "--test", str(small_splits / "test"), "--model-dir", str(tmp_path / "model"), "--pretrained", "none", "--unfreeze", "all",
                "--num-workers", "0", "--debugger", "off"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: checkpoint {checkpoints / 'checkpoint-0001.pth'} belongs to a different run")
    assert err.count("\n") == 1



def test_a_refused_checkpoint_names_exactly_what_differs_from_this_run(small_splits: Path, tmp_path: Path, capsys):
    argv = ["--train", str(small_splits / "train"), "--valid", str(small_splits / "valid"),
            "--test", str(small_splits / "test"), "--model-dir", str(tmp_path / "model"), "--pretrained", "none", "--unfreeze", "all",
            "--image-size", "32", "--num-workers", "0", "--debugger", "off"]
    this_run = _run_identity(parse_args(argv), sorted(p.name for p in (small_splits / "train").iterdir()))
    checkpoints = tmp_path / "checkpoints"
    path = save_checkpoint(checkpoints, 1, {"identity": {**this_run, "optimizer": "adamw", "image_size": 64},
                                            "epochs_done": 1})
    assert cli(argv) == 2
    assert capsys.readouterr().err == (
        f"error: checkpoint {path} belongs to a different run (image_size, optimizer differ); "
        f"empty {checkpoints} or pass another --checkpoint-dir\n")
