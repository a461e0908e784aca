"""The offline demo dataset: real photos, seeded views, learnable."""
from __future__ import annotations

import argparse
import hashlib

import numpy as np
import pytest
from PIL import Image

from imgclf import demo_data
from imgclf.demo_data import SOURCES, make_demo_dataset
from imgclf.errors import UserError


def _digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.jpg"))}


def test_it_writes_one_folder_per_class_with_the_requested_number_of_images(tmp_path):
    out = make_demo_dataset(tmp_path / "demo", per_class=5, image_size=32)

    assert sorted(p.name for p in out.iterdir()) == sorted(SOURCES)
    assert all(len(list((out / label).glob("*.jpg"))) == 5 for label in SOURCES)


def test_every_image_decodes_as_rgb_at_the_requested_size(tmp_path):
    out = make_demo_dataset(tmp_path / "demo", per_class=3, image_size=40)

    for path in out.rglob("*.jpg"):
        with Image.open(path) as image:
            image.load()
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (40, 40))


def test_the_same_seed_gives_byte_identical_files(tmp_path):
    first = make_demo_dataset(tmp_path / "a", per_class=4, image_size=32, seed=7)
    second = make_demo_dataset(tmp_path / "b", per_class=4, image_size=32, seed=7)

    assert _digests(first) == _digests(second)


def test_another_seed_gives_other_images(tmp_path):
    first = _digests(make_demo_dataset(tmp_path / "a", per_class=4, image_size=32, seed=0))
    second = _digests(make_demo_dataset(tmp_path / "b", per_class=4, image_size=32, seed=1))

    assert not set(first.values()) & set(second.values())


def test_images_within_a_class_are_different_views(tmp_path):
    out = make_demo_dataset(tmp_path / "demo", per_class=20, image_size=32, classes=("cat",))

    assert len(set(_digests(out).values())) == 20


def test_classes_are_separable_by_a_nearest_centroid_on_held_out_images(tmp_path):
    """A floor for learnability: if colour thumbnails already separate the classes, a CNN can."""
    out = make_demo_dataset(tmp_path / "demo", per_class=40, image_size=32)
    features, labels = [], []
    for index, label in enumerate(sorted(SOURCES)):
        for path in sorted((out / label).glob("*.jpg")):
            with Image.open(path) as image:
                features.append(np.asarray(image.resize((8, 8)), dtype=np.float32).ravel() / 255)
            labels.append(index)
    features, labels = np.array(features), np.array(labels)
    train, test = np.arange(len(labels)) % 4 != 0, np.arange(len(labels)) % 4 == 0
    centroids = np.stack([features[train & (labels == k)].mean(axis=0) for k in range(len(SOURCES))])
    predicted = np.argmin(((features[test][:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)

    assert (predicted == labels[test]).mean() > 0.6  # chance is 0.25


def test_the_command_writes_the_dataset_and_says_where(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    demo_data.add_arguments(parser)

    code = demo_data.run(parser.parse_args(["--out", str(tmp_path / "demo"), "--per-class", "2", "--size", "32"]))

    assert code == 0
    assert len(list((tmp_path / "demo").rglob("*.jpg"))) == 2 * len(SOURCES)
    assert str(tmp_path / "demo") in capsys.readouterr().out


def test_it_refuses_to_write_into_a_folder_that_has_files(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")

    with pytest.raises(UserError, match="not empty"):
        make_demo_dataset(tmp_path, per_class=1, image_size=32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_class": 0}, "--per-class"),
        ({"image_size": 8}, "--size"),
        ({"classes": ("cat", "unicorn")}, "unicorn"),
    ],
)
def test_bad_arguments_are_refused_with_the_option_named(tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        make_demo_dataset(tmp_path / "demo", **{"per_class": 1, "image_size": 32, **kwargs})
