"""Reads and checks the train/valid/test channels (ImageFolder layout: one sub-folder per class).

Every problem a person can fix in the data is found here, before any training starts, and
reported as a TrainerError that names the channel and the folder: an empty channel, a class
folder without images, a valid/test set whose classes differ from train's. Unreadable image
files are skipped, counted and warned about, so that one bad file does not end a long job.
"""
from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader

from serving.preprocess import normalize
from training.errors import TrainerError


@dataclass(frozen=True)
class Split:
    """One channel after the checks: its classes (sorted, index order) and readable samples."""

    name: str
    root: Path
    classes: list[str]
    samples: list[tuple[Path, int]]
    unreadable: list[Path]


class ImageSplit(Dataset):
    """A checked split as a dataset of (tensor, class index) pairs."""

    def __init__(self, split: Split, transform) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split.samples)

    def __getitem__(self, index: int):
        path, target = self.split.samples[index]
        return self.transform(default_loader(str(path))), target


def train_transform(image_size: int) -> transforms.Compose:
    """Augmentation for training; the normalisation is serving's, so train and serve agree."""
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize(),
        ]
    )


def _is_readable(path: Path) -> bool:
    """Cheap check (header and structure, no full decode) that PIL can open the file."""
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return False


def scan_split(name: str, root: str | Path | None) -> Split:
    """Classes and readable images of one channel; raises TrainerError for what cannot train."""
    if root is None:
        raise TrainerError(f"no {name} channel: set SM_CHANNEL_{name.upper()} or pass --{name}")
    root = Path(root)
    if not root.is_dir():
        raise TrainerError(f"{name} channel {root} does not exist or is not a folder")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise TrainerError(f"{name} channel {root} is empty: expected one sub-folder of images per class")
    samples: list[tuple[Path, int]] = []
    unreadable: list[Path] = []
    for index, class_dir in enumerate(class_dirs):
        files = sorted(
            p for p in class_dir.rglob("*")
            if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS and not p.name.startswith(".")
        )
        readable = [p for p in files if _is_readable(p)]
        unreadable += sorted(set(files) - set(readable))
        if not readable:
            what = "no readable images" if files else f"no images ({', '.join(IMG_EXTENSIONS)})"
            raise TrainerError(f"{name} channel: class folder {class_dir} has {what}")
        samples += [(p, index) for p in readable]
    if unreadable:
        shown = ", ".join(str(p) for p in unreadable[:3]) + (" ..." if len(unreadable) > 3 else "")
        print(f"warning: {name} channel: skipped {len(unreadable)} unreadable image file(s): {shown}",
              file=sys.stderr, flush=True)
    return Split(name, root, [p.name for p in class_dirs], samples, unreadable)


def check_same_classes(reference: Split, other: Split) -> None:
    """A model has one head: every split must use train's classes, in the same index order."""
    if other.classes != reference.classes:
        missing = sorted(set(reference.classes) - set(other.classes))
        extra = sorted(set(other.classes) - set(reference.classes))
        raise TrainerError(
            f"{other.name} classes differ from {reference.name} classes: "
            f"missing {missing or 'none'}, extra {extra or 'none'} (in {other.root})"
        )


def _ignore_sigterm(worker_id: int) -> None:
    """DataLoader workers outlive a SIGTERM sent to the whole process group (the local engine
    stops a job that way), so the main process can finish its step and checkpoint; it shuts
    them down itself."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(split: Split, transform, batch_size: int, num_workers: int, train: bool,
                device: torch.device) -> DataLoader:
    """Train loaders shuffle and drop a ragged last batch (BatchNorm cannot train on one image)."""
    dataset = ImageSplit(split, transform)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(dataset) >= batch_size,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
        worker_init_fn=_ignore_sigterm if num_workers > 0 else None,
    )


def load_splits(train: str | Path | None, valid: str | Path | None, test: str | Path | None,
                ) -> tuple[Split, Split, Split | None]:
    """The three channels, checked; test is optional (tuning trials do not need it)."""
    train_split = scan_split("train", train)
    if len(train_split.classes) < 2:
        raise TrainerError(f"train channel {train_split.root} has one class; a classifier needs at least 2")
    valid_split = scan_split("valid", valid)
    check_same_classes(train_split, valid_split)
    test_split = None
    if test is not None:
        test_split = scan_split("test", test)
        check_same_classes(train_split, test_split)
    return train_split, valid_split, test_split

