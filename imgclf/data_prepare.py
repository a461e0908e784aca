"""`imgclf data prepare`: turn a folder of class sub-folders into the train/ valid/ test/ channels.

The input is either one folder per class (split here, stratified and seeded) or an already split
`train/ valid/ test/` layout (kept as it is, after checking that every split has the same classes).
Every file is decoded with the trainer's own check (training/image_files.py) before it is kept,
so a broken file is reported here rather than in a paid training job; files are hard-linked into
the output when possible, else copied.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from imgclf.errors import UserError
from imgclf.s3_upload import parse_s3_uri, upload_folder
from training.image_files import is_image_name, unreadable_reason, visible_files

SPLITS = ("train", "valid", "test")
#: Fewer images than this in a class: warn, the class will barely be learned or measured.
TINY_CLASS = 20
#: Largest class over smallest class above this: warn about imbalance.
IMBALANCE_RATIO = 3.0
MANIFEST = "dataset.json"
SKIP_REASONS = {"not_image": "files without an image extension (.jpg, .png, ...)", "unreadable": "images PIL cannot decode"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, help="folder of class sub-folders, or of train/ valid/ test/ folders")
    parser.add_argument("--out", required=True, type=Path, help="new folder to write train/ valid/ test/ to")
    parser.add_argument("--valid-fraction", type=float, default=0.1, help="share of each class for validation (default %(default)s)")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of each class for test (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same split (default %(default)s)")
    parser.add_argument("--upload", metavar="s3://BUCKET/PREFIX", help="also upload the splits and manifest to S3")


def run(args: argparse.Namespace) -> int:
    if args.upload:
        parse_s3_uri(args.upload)  # a bad target fails now, not after the splits are written
    try:
        prepared = prepare(
            args.src, args.out, valid_fraction=args.valid_fraction, test_fraction=args.test_fraction, seed=args.seed
        )
    except OSError as err:  # a folder that cannot be read or written, a full disk: the system's reason
        where = f" ({err.filename})" if err.filename else ""
        raise UserError(f"cannot prepare {args.out} from {args.src}: {err.strerror or err}{where}") from None
    print(prepared.summary_table())
    for warning in prepared.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {args.out}")
    if args.upload:
        upload_folder(args.out, args.upload)
        print(f"channels: {args.upload.rstrip('/')}/{{{','.join(SPLITS)}}}/")
    return 0


@dataclass
class Prepared:
    """What prepare wrote: files per split and class, plus the files it had to leave out."""

    classes: list[str]
    files: dict[str, dict[str, list[Path]]]
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        return {split: {c: len(self.files[split][c]) for c in self.classes} for split in SPLITS}

    def totals(self) -> dict[str, int]:
        return {c: sum(len(self.files[s][c]) for s in SPLITS) for c in self.classes}

    def summary_table(self) -> str:
        counts, totals = self.counts(), self.totals()
        width = max(len("class"), *(len(c) for c in self.classes))
        lines = [f"{'class':<{width}}  {'train':>6}  {'valid':>6}  {'test':>6}  {'total':>6}"]
        for c in self.classes:
            lines.append(f"{c:<{width}}  " + "  ".join(f"{counts[s][c]:>6}" for s in SPLITS) + f"  {totals[c]:>6}")
        split_sums = [sum(counts[s].values()) for s in SPLITS]
        lines.append(f"{'all':<{width}}  " + "  ".join(f"{n:>6}" for n in split_sums) + f"  {sum(split_sums):>6}")
        return "\n".join(lines)

    def warnings(self) -> list[str]:
        found = []
        totals = self.totals()
        tiny = [f"{c} ({n})" for c, n in totals.items() if n < TINY_CLASS]
        if tiny:
            found.append(f"{len(tiny)} class(es) have fewer than {TINY_CLASS} images: {', '.join(tiny)}")
        smallest, largest = min(totals, key=totals.get), max(totals, key=totals.get)
        if totals[largest] > IMBALANCE_RATIO * totals[smallest]:
            found.append(
                f"classes are unbalanced: {largest} has {totals[largest]} images, {smallest} has {totals[smallest]}; "
                "accuracy will favour the large classes"
            )
        for reason, paths in self.skipped.items():
            shown = ", ".join(paths[:5]) + (f", ... ({len(paths) - 5} more)" if len(paths) > 5 else "")
            found.append(f"skipped {len(paths)} {SKIP_REASONS[reason]}: {shown}")
        return found

    def manifest(self, seed: int, valid_fraction: float | None, test_fraction: float | None) -> dict:
        return {
            "classes": self.classes,
            "counts": self.counts(),
            "seed": seed,
            "valid_fraction": valid_fraction,
            "test_fraction": test_fraction,
            "skipped": self.skipped,
        }


def prepare(
    src: str | Path, out: str | Path, valid_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> Prepared:
    """Validate `src`, write `out/{train,valid,test}/<class>/...` and `out/dataset.json`."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise UserError(f"dataset folder {src} does not exist or is not a folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output folder {out} is not empty; choose a new one or remove it")
    if out.resolve().is_relative_to(src.resolve()):
        raise UserError(f"output folder {out} is inside the dataset folder {src}; write it elsewhere")

    skipped: dict[str, list[str]] = {}
    if (src / "train").is_dir():
        prepared = Prepared(*_scan_split_layout(src, skipped), skipped)
        roots = {split: src / split for split in SPLITS}
        fractions = (None, None)  # kept as given
    else:
        _check_fractions(valid_fraction, test_fraction)
        classes, by_class = _scan_classes(src, src, skipped)
        prepared = Prepared(classes, _split(by_class, valid_fraction, test_fraction, seed), skipped)
        roots = {split: src for split in SPLITS}
        fractions = (valid_fraction, test_fraction)

    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        for label in prepared.classes:
            for path in prepared.files[split][label]:
                _link_or_copy(path, out / split / label / path.relative_to(roots[split] / label))
    (out / MANIFEST).write_text(json.dumps(prepared.manifest(seed, *fractions), indent=2) + "\n")
    return prepared


def _check_fractions(valid_fraction: float, test_fraction: float) -> None:
    for name, value in (("--valid-fraction", valid_fraction), ("--test-fraction", test_fraction)):
        if not 0 < value < 1:
            raise UserError(f"{name} must be between 0 and 1 (exclusive), got {value}")
    if valid_fraction + test_fraction >= 1:
        raise UserError(
            f"--valid-fraction + --test-fraction must leave images for training, got {valid_fraction + test_fraction:g}"
        )


def _scan_classes(folder: Path, src: Path, skipped: dict[str, list[str]]) -> tuple[list[str], dict[str, list[Path]]]:
    """Class name -> readable image files, for one folder of class sub-folders."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserError(f"{folder} has no class sub-folders; expected one folder of images per class")
    if len(classes) < 2:
        raise UserError(f"{folder} has only one class ({classes[0]}); a classifier needs at least 2")
    by_class = {}
    for label in classes:
        images = _readable_images(folder / label, src, skipped)
        if not images:
            raise UserError(f"class {label} in {folder} has no readable images")
        by_class[label] = images
    return classes, by_class


def _scan_split_layout(src: Path, skipped: dict[str, list[str]]):
    missing = [s for s in SPLITS if not (src / s).is_dir()]
    if missing:
        raise UserError(
            f"{src} has train/ but no {', '.join(m + '/' for m in missing)}; give either all of "
            "train/ valid/ test/ or one folder per class"
        )
    files, classes = {}, None
    for split in SPLITS:
        split_classes, files[split] = _scan_classes(src / split, src, skipped)
        if classes is None:
            classes = split_classes
        elif split_classes != classes:
            only_train = sorted(set(classes) - set(split_classes))
            only_here = sorted(set(split_classes) - set(classes))
            raise UserError(
                f"{split}/ and train/ have different classes: only in train/: {', '.join(only_train) or '-'}; "
                f"only in {split}/: {', '.join(only_here) or '-'}"
            )
    return classes, files


def _readable_images(folder: Path, src: Path, skipped: dict[str, list[str]]) -> list[Path]:
    """Sorted image files under `folder` that PIL decodes; the rest are recorded in `skipped`."""
    images = []
    for path in visible_files(folder):
        relative = path.relative_to(src).as_posix()
        if not is_image_name(path):
            skipped.setdefault("not_image", []).append(relative)
        elif unreadable_reason(path) is not None:
            skipped.setdefault("unreadable", []).append(relative)
        else:
            images.append(path)
    return images


def _split(by_class: dict[str, list[Path]], valid_fraction: float, test_fraction: float, seed: int):
    """Stratified: each class is shuffled with the seed and cut in the same proportions."""
    rng = random.Random(seed)
    files: dict[str, dict[str, list[Path]]] = {s: {} for s in SPLITS}
    for label, images in by_class.items():
        n_valid = max(1, round(len(images) * valid_fraction))
        n_test = max(1, round(len(images) * test_fraction))
        if len(images) < n_valid + n_test + 1:
            raise UserError(
                f"class {label} has {len(images)} image(s), too few to split into train, valid and test; "
                f"it needs at least {n_valid + n_test + 1}"
            )
        shuffled = images[:]
        rng.shuffle(shuffled)
        files["valid"][label] = sorted(shuffled[:n_valid])
        files["test"][label] = sorted(shuffled[n_valid : n_valid + n_test])
        files["train"][label] = sorted(shuffled[n_valid + n_test :])
    return files


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)
