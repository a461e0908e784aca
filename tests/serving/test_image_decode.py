"""serving.image_decode: what reaches the model is an upright 8-bit RGB first frame, or a typed error."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import hostile_corpus as corpus
from imgclf_serving.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType
from imgclf_serving.image_decode import decode_image, media_type, sniff_format, to_rgb


def test_exif_orientation_is_applied_so_a_rotated_photo_arrives_upright():
    image = decode_image(corpus.exif_rotated_jpeg(), "image/jpeg")
    assert image.size == (32, 64)


def test_16_bit_grey_png_is_rescaled_not_clipped_to_white():
    image = decode_image(corpus.png_grey16(), "image/png")
    assert image.mode == "RGB"
    assert 40 < np.asarray(image).mean() < 220


def test_16_bit_rgb_png_decodes_to_8_bit_rgb_with_its_colours():
    decoded = np.asarray(decode_image(corpus.png_rgb16(), "image/png"), dtype=float)
    original = np.asarray(corpus.photo("coffee", 32).resize((32, 32)), dtype=float)
    assert np.abs(decoded - original).mean() < 2


def test_transparent_pixels_are_composited_on_white():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg_converts_to_rgb_close_to_the_original():
    decoded = np.asarray(decode_image(corpus.cmyk_jpeg(), "image/jpeg"), dtype=float)
    original = np.asarray(corpus.photo("coffee"), dtype=float)
    assert decoded.shape == original.shape
    assert np.abs(decoded - original).mean() < 25


def test_animated_gif_is_classified_on_its_first_frame():
    first_frame = np.asarray(corpus.photo("chelsea").resize((64, 48)), dtype=float)
    decoded = np.asarray(decode_image(corpus.animated_gif(), "application/octet-stream"), dtype=float)
    assert np.abs(decoded - first_frame).mean() < 15


def test_real_format_is_sniffed_from_bytes_whatever_the_content_type_claims():
    assert sniff_format(corpus.png()) == "PNG"
    assert decode_image(corpus.png(), "image/jpeg").mode == "RGB"


def test_content_type_parameters_and_case_are_ignored():
    assert media_type("Image/JPEG; charset=binary") == "image/jpeg"


def test_pixel_cap_refuses_before_decoding():
    with pytest.raises(ImageTooLarge, match="the limit is 1,000 pixels"):
        decode_image(corpus.png(), "image/png", max_pixels=1000)


def test_recognised_but_unsupported_format_is_415_naming_it():
    with pytest.raises(UnsupportedMediaType, match="TIFF"):
        decode_image(corpus.encode(corpus.photo(), "TIFF"), "application/octet-stream")


def test_header_that_lies_about_its_size_is_a_400_not_a_crash():
    broken = corpus.raw_png(64, 64, 8, 0, b"\x00" * 10)
    with pytest.raises(InvalidImage, match="corrupt or truncated"):
        decode_image(broken, "image/png")
