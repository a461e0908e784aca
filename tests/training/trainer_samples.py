"""What the trainer's tests share outside fixtures: the script, quick flags, copies of splits.

A module of its own, not conftest.py: `from conftest import` finds whichever conftest was imported
last once several test folders are collected together."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO / "training" / "train.py"

#: Small and quick on 2 CPU cores; `--unfreeze all` because random features cannot be fine-tuned.
FAST_FLAGS = ("--image-size", "32", "--pretrained", "none", "--unfreeze", "all", "--num-workers", "0",
              "--lr", "0.01", "--batch-size", "16", "--debugger", "off")


def copy_splits(source: Path, target: Path, per_class: int | None = None) -> Path:
    """Copy `train/ valid/ test/` from `source`, keeping the first `per_class` files of each class."""
    for split in ("train", "valid", "test"):
        for class_dir in sorted((source / split).iterdir()):
            out = target / split / class_dir.name
            out.mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:per_class]:
                shutil.copy2(image, out / image.name)
    return target


def trainer_command(splits: Path, job: Path, *flags: str) -> list[str]:
    return [sys.executable, str(TRAIN_SCRIPT), "--train", str(splits / "train"), "--valid",
            str(splits / "valid"), "--test", str(splits / "test"), "--model-dir", str(job / "model"),
            *FAST_FLAGS, *flags]


def trainer_env() -> dict[str, str]:
    """This environment without SageMaker's variables, so only the flags say where things are."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
