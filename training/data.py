"""Reads and checks the train/valid/test channels (ImageFolder layout: one sub-folder per class).

Every problem a person can fix in the data is found here, before any training starts, and
reported as a TrainerError that names the channel and the folder: an empty channel, a class
folder without images, a valid/test set whose classes differ from train's. Unreadable image
files are skipped, counted and warned about, so that one bad file does not end a long job.
"""
from __future__ import annotations

import atexit
import hashlib
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms
from torchvision.datasets.folder import default_loader

from imgclf_serving.preprocess import normalize
from training.errors import TrainerError
from training.image_files import IMAGE_EXTENSIONS, is_image_name, unreadable_reason, visible_files


@dataclass(frozen=True)
class Split:
    """One channel after the checks: its classes (sorted, index order) and readable samples."""

    name: str
    root: Path
    classes: list[str]
    samples: list[tuple[Path, int]]
    unreadable: dict[Path, str]  # path -> why PIL cannot decode it


class ImageSplit(Dataset):
    """A checked split as a dataset of (tensor, class index) pairs. Indexed by a sample index, or
    by (index, seed) from EpochSampler: the transform then draws its random numbers from `seed`."""

    def __init__(self, split: Split, transform) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split.samples)

    def __getitem__(self, item: int | tuple[int, int]):
        index, seed = item if isinstance(item, tuple) else (item, None)
        path, target = self.split.samples[index]
        image = default_loader(str(path))
        if seed is None:
            return self.transform(image), target
        with torch.random.fork_rng(devices=[]):  # torchvision's transforms use the global RNG
            torch.manual_seed(seed)
            return self.transform(image), target


class EpochSampler(Sampler[tuple[int, int]]):
    """The train order and every image's augmentation seed, a pure function of (seed, epoch).

    A DataLoader's own shuffle and its workers' seeds come from the global RNG, drawn again for
    each new iterator, and persistent workers carry their RNG from epoch to epoch: a resumed
    process would see other batches than an uninterrupted one. Here a generator seeded from
    (seed, epoch) draws the permutation and one seed per image, so neither a restart nor the
    number of workers changes what an epoch trains on, and a resumed epoch can start mid-way."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Yield epoch `epoch`'s order from position `start` (the first sample not yet trained on)."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return max(self.size - self.start, 0)

    def __iter__(self):
        digest = hashlib.blake2b(f"{self.seed}/{self.epoch}".encode(), digest_size=8).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest, "little"))
        order = torch.randperm(self.size, generator=generator).tolist()
        seeds = torch.randint(2**62, (self.size,), generator=generator).tolist()
        return iter(list(zip(order, seeds))[self.start:])


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
    unreadable: dict[Path, str] = {}
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # PIL decodes outside the GIL
        for index, class_dir in enumerate(class_dirs):
            files = [p for p in visible_files(class_dir) if is_image_name(p)]
            reasons = dict(zip(files, pool.map(unreadable_reason, files)))
            unreadable |= {p: why for p, why in reasons.items() if why is not None}
            readable = [p for p, why in reasons.items() if why is None]
            if not readable:
                what = "no readable images" if files else f"no images ({', '.join(IMAGE_EXTENSIONS)})"
                raise TrainerError(f"{name} channel: class folder {class_dir} has {what}")
            samples += [(p, index) for p in readable]
    if unreadable:
        shown = ", ".join(f"{p} ({why})" for p, why in list(unreadable.items())[:3])
        shown += " ..." if len(unreadable) > 3 else ""
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


def _kill_workers_at_exit() -> None:
    """multiprocessing's own exit handler stops daemon children with SIGTERM and then joins them,
    so a worker that ignores SIGTERM and is still alive at exit (its loader kept alive by a
    reference cycle or a module global) would hang the job forever after its last line. Workers
    hold nothing to save: kill them first (atexit runs this before multiprocessing's handler),
    after taking back SIGCHLD from torch, whose handler reports a killed worker as an error."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for worker in multiprocessing.active_children():
        worker.kill()


def make_loader(split: Split, transform, batch_size: int, num_workers: int, train: bool,
                device: torch.device, seed: int = 0) -> DataLoader:
    """Train loaders shuffle with an EpochSampler (call its set_epoch before each epoch) and drop
    a ragged last batch (BatchNorm cannot train on one image)."""
    dataset = ImageSplit(split, transform)
    if num_workers > 0:
        atexit.unregister(_kill_workers_at_exit)  # registered once, and after multiprocessing's
        atexit.register(_kill_workers_at_exit)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSampler(len(dataset), seed) if train else None,
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

