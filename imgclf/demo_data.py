"""`imgclf data demo`: an offline, real, learnable image set, so the demo and the tests never download.

Each class is one colour photograph that scikit-image ships in its wheel (`skimage.data`), cut into
hundreds of different views the way training augmentation does: a random crop (10-60 % of the
photo's area, aspect 3:4-4:3), a small rotation, a horizontal flip, colour jitter, sometimes a blur
and sensor noise. A network has to learn each scene's colours and textures from varied views to
separate the classes. Views of one photo overlap, so test accuracy here shows that training works,
not how a model generalises to new photos.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from imgclf.errors import UserError

#: class label -> `skimage.data` loader; all load from the installed wheel, no pooch download.
SOURCES = {
    "astronaut": "astronaut",
    "cat": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
}
DEFAULT_PER_CLASS = 300
DEFAULT_IMAGE_SIZE = 64
MAX_ANGLE = 15.0
CROP_AREA = (0.10, 0.60)
ASPECT = (3 / 4, 4 / 3)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="folder to create; gets one sub-folder per class")
    parser.add_argument("--per-class", type=int, default=DEFAULT_PER_CLASS, help="images per class (default %(default)s)")
    parser.add_argument("--size", type=int, default=DEFAULT_IMAGE_SIZE, help="image side in pixels (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out = make_demo_dataset(args.out, per_class=args.per_class, image_size=args.size, seed=args.seed)
    seconds = time.perf_counter() - started
    print(f"wrote {len(SOURCES)} classes x {args.per_class} images of {args.size} px to {out} in {seconds:.1f} s")
    print(f"next: imgclf data prepare {out} --out <splits folder>")
    return 0


def make_demo_dataset(
    out_dir: str | Path,
    per_class: int = DEFAULT_PER_CLASS,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    classes: tuple[str, ...] | None = None,
) -> Path:
    """Write `out_dir/<class>/<class>_NNNN.jpg`; the same arguments give byte-identical files."""
    import numpy as np

    classes = tuple(SOURCES) if classes is None else classes
    unknown = sorted(set(classes) - set(SOURCES))
    if unknown:
        raise UserError(f"unknown demo class(es) {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    if per_class < 1:
        raise UserError(f"--per-class must be at least 1, got {per_class}")
    if not 16 <= image_size <= 512:
        raise UserError(f"--size must be between 16 and 512 pixels, got {image_size}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"output folder {out} is not empty; choose a new one or remove it")

    for label in classes:
        photo = _load_photo(SOURCES[label])
        # One generator per class: a class's images do not depend on which other classes are made.
        rng = np.random.default_rng([seed, list(SOURCES).index(label)])
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            view = _random_view(photo, image_size, rng)
            view.save(folder / f"{label}_{index:04d}.jpg", format="JPEG", quality=90)
    return out


def _load_photo(name: str):
    from PIL import Image
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def _random_view(photo, size: int, rng):
    """One augmented `size` x `size` view of `photo`, drawn from `rng` only (so seeded runs repeat)."""
    import numpy as np
    from PIL import Image, ImageEnhance, ImageFilter

    width, height = photo.size
    angle = rng.uniform(-MAX_ANGLE, MAX_ANGLE)
    cos, sin = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    area = rng.uniform(*CROP_AREA) * width * height
    aspect = math.exp(rng.uniform(math.log(ASPECT[0]), math.log(ASPECT[1])))
    w, h = math.sqrt(area * aspect), math.sqrt(area / aspect)
    # The rotated w x h rectangle must fit inside the photo: shrink until its bounding box does.
    box_w, box_h = w * cos + h * sin, w * sin + h * cos
    shrink = min(1.0, width / box_w, height / box_h)
    w, h, box_w, box_h = w * shrink, h * shrink, box_w * shrink, box_h * shrink
    left = rng.uniform(0, width - box_w)
    top = rng.uniform(0, height - box_h)
    # Rotating the bounding box about its centre turns the tilted rectangle upright at the centre,
    # so the final crop has no empty corners.
    box = photo.crop((round(left), round(top), round(left + box_w), round(top + box_h)))
    box = box.rotate(angle, resample=Image.BILINEAR)
    cx, cy = box.width / 2, box.height / 2
    view = box.crop((round(cx - w / 2), round(cy - h / 2), round(cx + w / 2), round(cy + h / 2)))
    view = view.resize((size, size), resample=Image.BICUBIC, reducing_gap=2.0)

    if rng.random() < 0.5:
        view = view.transpose(Image.FLIP_LEFT_RIGHT)
    view = ImageEnhance.Brightness(view).enhance(rng.uniform(0.7, 1.3))
    view = ImageEnhance.Contrast(view).enhance(rng.uniform(0.7, 1.3))
    view = ImageEnhance.Color(view).enhance(rng.uniform(0.7, 1.3))
    view = _shift_hue(view, rng.uniform(-0.04, 0.04))
    if rng.random() < 0.3:
        view = view.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    if rng.random() < 0.3:
        pixels = np.asarray(view, dtype=np.float32) + rng.normal(0.0, rng.uniform(2.0, 8.0), (size, size, 3))
        view = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return view


def _shift_hue(image, shift: float):
    """Rotate the hue by `shift` of a full turn."""
    from PIL import Image

    offset = round(shift * 256)
    hue, saturation, value = image.convert("HSV").split()
    hue = hue.point(lambda h: (h + offset) % 256)
    return Image.merge("HSV", (hue, saturation, value)).convert("RGB")
