"""Hostile and awkward request bodies, each with the status and message the API documents.

Built in memory from scikit-image's bundled photos; nothing is downloaded. The same corpus drives
the handler tests (through the toolkit) and the front-door tests (through a local endpoint).
"""
from __future__ import annotations

import io
import json
import random
import struct
import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image
from skimage import data as skdata


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes
    content_type: str
    status: int
    message: str  # a fragment the error message must contain ("" for a 200)
    code: str = ""  # the API's error code at the front door ("" for a 200)


@cache
def photo(name: str = "chelsea", size: int = 64) -> Image.Image:
    """A real photo from scikit-image, as a small RGB image."""
    image = Image.fromarray(getattr(skdata, name)())
    image.thumbnail((size, size))
    return image.convert("RGB")


def encode(image: Image.Image, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def jpeg(name: str = "chelsea", size: int = 64) -> bytes:
    return encode(photo(name, size), "JPEG", quality=90)


def png(name: str = "chelsea", size: int = 64) -> bytes:
    return encode(photo(name, size), "PNG")


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, scanlines: bytes) -> bytes:
    """A PNG assembled chunk by chunk, for what Pillow will not write (16-bit RGB, lying headers)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(scanlines, 9))
        + chunk(b"IEND", b"")
    )


def png_rgb16(size: int = 32) -> bytes:
    pixels = np.asarray(photo("coffee", size).resize((size, size)), dtype=np.uint16) * 257
    rows = [b"\x00" + row.astype(">u2").tobytes() for row in pixels]
    return raw_png(size, size, 16, 2, b"".join(rows))


def png_grey16(size: int = 32) -> bytes:
    grey = np.asarray(photo("coffee", size).convert("L").resize((size, size)), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


def pixel_bomb_png(side: int = 50_000) -> bytes:
    """A grey PNG that claims side x side pixels; the file stays a few KB (zero rows compress)."""
    return raw_png(side, side, 8, 0, b"\x00" * (side + 1) * 64)


def rgba_png() -> bytes:
    image = photo("rocket").convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize(image.size))
    return encode(image, "PNG")


def palette_gif() -> bytes:
    return encode(photo("chelsea").quantize(colors=32), "GIF")


def animated_gif(frames: int = 3) -> bytes:
    images = [photo(name).resize((64, 48)).quantize(colors=32) for name in ("chelsea", "coffee", "rocket")]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:frames], duration=100, loop=0)


def animated_webp() -> bytes:
    frames = [photo(name).resize((64, 48)) for name in ("chelsea", "coffee", "rocket")]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0)


def cmyk_jpeg() -> bytes:
    return encode(photo("coffee").convert("CMYK"), "JPEG")


def exif_rotated_jpeg() -> bytes:
    """A 64x32 landscape stored with EXIF orientation 6 (displayed rotated 90°, so portrait)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(photo("rocket").resize((64, 32)), "JPEG", exif=exif.tobytes())


def random_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def hostile_cases() -> list[Case]:
    valid_jpeg = jpeg()
    return [
        Case("truncated_jpeg", valid_jpeg[: len(valid_jpeg) // 2], "image/jpeg", 400, "corrupt or truncated", "invalid_image"),
        Case("cmyk_jpeg", cmyk_jpeg(), "image/jpeg", 200, ""),
        Case("grey_16bit_png", png_grey16(), "image/png", 200, ""),
        Case("rgb_16bit_png", png_rgb16(), "image/png", 200, ""),
        Case("rgba_png", rgba_png(), "image/png", 200, ""),
        Case("palette_gif", palette_gif(), "application/x-image", 200, ""),
        Case("animated_gif", animated_gif(), "application/octet-stream", 200, ""),
        Case("webp", encode(photo(), "WEBP"), "image/webp", 200, ""),
        Case("animated_webp", animated_webp(), "image/webp", 200, ""),
        Case("png_labelled_jpeg", png(), "image/jpeg", 200, ""),
        Case("pixel_bomb_png", pixel_bomb_png(8_000), "image/png", 413, "the limit is 40,000,000 pixels",
             "payload_too_large"),
        Case("giant_pixel_bomb_png", pixel_bomb_png(50_000), "image/png", 413, "too large", "payload_too_large"),
        Case("zero_bytes", b"", "image/jpeg", 400, "empty", "empty_body"),
        Case("random_bytes_as_jpeg", random_bytes(4096), "image/jpeg", 400, "not a recognised image", "invalid_image"),
        Case("jpeg_as_text_plain", valid_jpeg, "text/plain", 415, "not accepted", "unsupported_media_type"),
        Case("gif_as_image_gif", palette_gif(), "image/gif", 415, "not accepted", "unsupported_media_type"),
        Case("bmp_image", encode(photo(), "BMP"), "application/octet-stream", 415, "BMP",
             "unsupported_media_type"),
        Case("body_7mb", valid_jpeg + random_bytes(7 * 1024 * 1024), "image/jpeg", 413, "limit", "payload_too_large"),
        Case("json_body", json.dumps({"image": "cat.jpg"}).encode(), "application/json", 415, "not accepted",
             "unsupported_media_type"),
    ]
