"""Which files are training images, defined once for the trainer and `imgclf data prepare`.

Needs only PIL, not torch: `imgclf data prepare` runs on machines without PyTorch.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

#: torchvision's ImageFolder extensions; other files in a class folder are not images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def visible_files(folder: Path) -> list[Path]:
    """Files under `folder`, sorted, leaving out hidden files and anything in hidden folders."""
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def unreadable_reason(path: Path) -> str | None:
    """None when PIL decodes the file, else why it cannot.

    A real decode, not Image.verify(): verify reads none of a JPEG's image data, so a truncated
    JPEG would pass and end the job later with `image file is truncated`. draft() decodes a JPEG
    at 1/8 scale, which is fast and still reads every byte."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (64, 64))
            image.load()
    # PIL raises many types: OSError, SyntaxError, struct.error, and DecompressionBombError for a
    # header that announces too many pixels, which is no OSError.
    except Exception as err:
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    return None
