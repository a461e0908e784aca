"""Reads and checks the train/valid/test channels (ImageFolder layout: one sub-folder per class).

Every problem a person can fix in the data is found here, before any training starts, and
reported as a TrainerError that names the channel and the folder: an empty channel, a class
folder without images, a valid/test set whose classes differ from train's. Unreadable image
files are skipped, counted and warned about, so that one bad file does not end a long job.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from torchvision import transforms
from torchvision.datasets.folder import default_loader

from imgclf_serving.preprocess import normalize
from training.distributed import SINGLE_PROCESS, Distributed, shares
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
    by (index, seed) from EpochBatches: the transform then draws its random numbers from `seed`."""

    def __init__(self, split: Split, transform) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split.samples)

    def __getitem__(self, item: int | tuple[int, int]):
        index, seed = item if isinstance(item, tuple) else (item, None)
        path, target = self.split.samples[index]
        try:
            image = default_loader(str(path))
        except (OSError, Image.DecompressionBombError) as err:  # only a FastFile channel gets here unchecked
            raise TrainerError(f"{self.split.name} channel: cannot decode {path}: {err}") from None
        if seed is None:
            return self.transform(image), target
        with torch.random.fork_rng(devices=[]):  # torchvision's transforms use the global RNG
            torch.manual_seed(seed)
            return self.transform(image), target


def rank_share(items: list, rank: int, world_size: int) -> list:
    """This rank's contiguous slice of one global batch (training/distributed.py's `shares`)."""
    sizes = shares(len(items), world_size)
    start = sum(sizes[:rank])
    return items[start:start + sizes[rank]]


class EpochBatches(Sampler[list[tuple[int, int]]]):
    """This rank's share of every global training batch, with each image's augmentation seed; the
    order is a pure function of (seed, epoch).

    A DataLoader's own shuffle and its workers' seeds come from the global RNG, drawn again for
    each new iterator, and persistent workers carry their RNG from epoch to epoch: a resumed
    process would see other batches than an uninterrupted one. Here a generator seeded from
    (seed, epoch) draws the permutation and one seed per image, so neither a restart nor the
    number of workers changes what an epoch trains on, and a resumed epoch can start at any step.
    `batch_size` is the global batch: under torchrun each rank takes its slice of the same global
    batches (rank_share), so N processes see together exactly what one process sees, and every
    image keeps its seed. A ragged last batch is dropped (BatchNorm cannot train on one image),
    unless the split is smaller than one batch."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.steps = size // batch_size if size >= batch_size else 1
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Yield epoch `epoch`'s batches from global step `start_step` (the first not yet trained)."""
        self.epoch, self.start_step = epoch, start_step

    def __len__(self) -> int:
        return max(self.steps - self.start_step, 0)

    def __iter__(self):
        digest = hashlib.blake2b(f"{self.seed}/{self.epoch}".encode(), digest_size=8).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest, "little"))
        order = torch.randperm(self.size, generator=generator).tolist()
        seeds = torch.randint(2**62, (self.size,), generator=generator).tolist()
        items = list(zip(order, seeds, strict=True))
        for step in range(self.start_step, self.steps):
            yield rank_share(items[step * self.batch_size:(step + 1) * self.batch_size], self.rank, self.world_size)


class SplitBatches(Sampler[list[int]]):
    """This rank's share of every global evaluation batch, in file order and with the ragged last
    batch kept, so that the ranks together evaluate each image once, in the batches one process
    would. A share may be empty (a last batch smaller than the number of ranks)."""

    def __init__(self, size: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.batch_size, self.rank, self.world_size = size, batch_size, rank, world_size

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)

    def __iter__(self):
        for start in range(0, self.size, self.batch_size):
            batch = list(range(start, min(start + self.batch_size, self.size)))
            yield rank_share(batch, self.rank, self.world_size)


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


def streamed_channels(env: dict[str, str] | None = None) -> set[str]:
    """The job's channels in FastFile mode (SM_INPUT_DATA_CONFIG, the toolkit's copy of
    inputdataconfig.json): streamed from S3 on first read, not copied before training."""
    env = os.environ if env is None else env
    try:
        config = json.loads(env.get("SM_INPUT_DATA_CONFIG") or "{}")
    except json.JSONDecodeError:
        return set()
    return {name for name, channel in config.items() if channel.get("TrainingInputMode") == "FastFile"}


def scan_split(name: str, root: str | Path | None, decode: bool = True) -> Split:
    """Classes and readable images of one channel; raises TrainerError for what cannot train.
    `decode` False (a FastFile channel) takes image files by name: decoding every file first would
    read the whole dataset from S3 before the first step, which is what FastFile avoids; a file
    that cannot be decoded then stops the job when a step reads it (ImageSplit)."""
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
            reasons = dict(zip(files, pool.map(unreadable_reason, files) if decode else [None] * len(files),
                               strict=True))
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
                device: torch.device, seed: int = 0, dist: Distributed = SINGLE_PROCESS) -> DataLoader:
    """`dist`'s rank's share of `batch_size` (global) batches: EpochBatches for training (call
    `loader.batch_sampler.set_epoch` before each epoch), SplitBatches for evaluation. An empty
    share arrives as a batch of no images, so that every rank takes every step."""
    dataset = ImageSplit(split, transform)
    if num_workers > 0:
        atexit.unregister(_kill_workers_at_exit)  # registered once, and after multiprocessing's
        atexit.register(_kill_workers_at_exit)
    batches = (EpochBatches(len(dataset), batch_size, seed, dist.rank, dist.world_size) if train
               else SplitBatches(len(dataset), batch_size, dist.rank, dist.world_size))
    return DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=_collate,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
        worker_init_fn=_ignore_sigterm if num_workers > 0 else None,
    )


def _collate(batch: list):
    """default_collate, and (no images, no targets) for an empty share."""
    if batch:
        return default_collate(batch)
    return torch.empty(0, 3, 1, 1), torch.empty(0, dtype=torch.long)


def load_splits(train: str | Path | None, valid: str | Path | None, test: str | Path | None,
                ) -> tuple[Split, Split, Split | None]:
    """The three channels, checked; test is optional (tuning trials do not need it)."""
    streamed = streamed_channels()
    train_split = scan_split("train", train, decode="train" not in streamed)
    if len(train_split.classes) < 2:
        raise TrainerError(f"train channel {train_split.root} has one class; a classifier needs at least 2")
    valid_split = scan_split("valid", valid, decode="valid" not in streamed)
    check_same_classes(train_split, valid_split)
    test_split = None
    if test is not None:
        test_split = scan_split("test", test, decode="test" not in streamed)
        check_same_classes(train_split, test_split)
    return train_split, valid_split, test_split

