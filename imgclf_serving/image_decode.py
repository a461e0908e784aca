"""Request bytes -> a checked RGB PIL image, or a typed error saying what is wrong with them.

Order matters for hostile input: the body size, then the declared content type, then the real
format from the magic bytes (the content type can lie), then the dimensions from the header, and
only then the pixels are decoded. Pillow only ever sees the one format the bytes announced.
"""
from __future__ import annotations

import io
import os
import warnings

from PIL import Image, ImageOps

from imgclf_serving.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType

ACCEPTED_CONTENT_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "application/x-image",
    "application/octet-stream",
)
DECODED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
# InvokeEndpoint takes at most 6 MB, so a larger body reaching us is a misconfigured caller.
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
# 40 MP covers every phone and most DSLR photos; decoded RGB it is 120 MB of memory.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000

# Magic bytes -> Pillow format name. Formats outside DECODED_FORMATS are recognised only to say
# "unsupported" (415) rather than "not an image" (400).
_SIGNATURES = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (8, b"WEBP", "WEBP"),  # after b"RIFF" + 4 length bytes, checked below
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
    (0, b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (0, b"%PDF", "PDF"),
    (0, b"\x00\x00\x01\x00", "ICO"),
)


def media_type(content_type: str | None) -> str:
    """`Image/JPEG; q=1` -> `image/jpeg`; a missing header -> ''."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def sniff_format(body: bytes) -> str | None:
    """The image format the leading bytes announce, or None when they announce none we know."""
    for offset, magic, name in _SIGNATURES:
        if body[offset : offset + len(magic)] == magic:
            if name == "WEBP" and body[:4] != b"RIFF":
                continue
            return name
    return None


def env_int(name: str, default: int) -> int:
    """A positive integer setting from the environment; a bad value fails loudly at model load."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"environment variable {name}={raw!r} must be at least 1")
    return value


def decode_image(
    body: bytes,
    content_type: str | None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> Image.Image:
    """Validate and decode one image: EXIF orientation applied, first frame only, RGB.

    Raises InvalidImage (400), ImageTooLarge (413) or UnsupportedMediaType (415).
    """
    if len(body) > max_body_bytes:
        raise ImageTooLarge(f"body is {len(body):,} bytes; the limit is {max_body_bytes:,} bytes")
    declared = media_type(content_type)
    if declared not in ACCEPTED_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"content type {declared or '(none)'!r} is not accepted; "
            f"send one of {', '.join(ACCEPTED_CONTENT_TYPES)}"
        )
    if not body:
        raise InvalidImage("the body is empty; send the image bytes")
    image_format = sniff_format(body)
    if image_format is None:
        raise InvalidImage("the body is not a recognised image (no JPEG, PNG, WebP or GIF signature)")
    if image_format not in DECODED_FORMATS:
        raise UnsupportedMediaType(f"{image_format} images are not supported; send JPEG, PNG, WebP or GIF")
    image = _open_header(body, image_format)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,} pixels"
        )
    try:
        image.load()  # decodes the first frame only; later frames of an animation are never read
        image = ImageOps.exif_transpose(image)
    except Exception as error:  # noqa: BLE001 - any decoder failure on untrusted bytes is a 400
        raise InvalidImage(f"the {image_format} image is corrupt or truncated ({error})") from None
    return to_rgb(image)


def _open_header(body: bytes, image_format: str) -> Image.Image:
    """Parse the header only (no pixels), with Pillow restricted to the sniffed format."""
    try:
        with warnings.catch_warnings():
            # Our own pixel cap, lower than Pillow's, is checked right after this.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(body), formats=[image_format])
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(f"image dimensions are too large ({error})") from None
    except Exception as error:  # noqa: BLE001 - any parser failure on untrusted bytes is a 400
        raise InvalidImage(f"the {image_format} header is corrupt ({error})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Transparency is composited on white, which is what a viewer
    shows; 16-bit and 32-bit grey are rescaled, not clipped (a plain convert would turn most of a
    16-bit image white)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        image = image.convert("I").point(lambda value: value * (1 / 257)).convert("L")
    elif image.mode in ("I", "F"):
        low, high = image.getextrema()
        scale = 255 / (high - low) if high > low else 0
        image = image.point(lambda value: (value - low) * scale).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
