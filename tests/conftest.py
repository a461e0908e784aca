"""Fixtures shared by every test package."""
from __future__ import annotations

from pathlib import Path

import pytest

from imgclf.data_prepare import prepare
from imgclf.demo_data import make_demo_dataset

#: Small enough to train a ResNet-50 on 2 CPU cores in seconds, large enough to learn.
DEMO_PER_CLASS = 80
DEMO_IMAGE_SIZE = 32


@pytest.fixture(scope="session")
def demo_splits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`train/ valid/ test/` ImageFolder folders of the demo photos: 4 classes x 80 images of 32 px,
    split 64/8/8 per class, plus `dataset.json`. Shared by the session: copy it before changing it."""
    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root / "images", per_class=DEMO_PER_CLASS, image_size=DEMO_IMAGE_SIZE, seed=0)
    prepare(root / "images", root / "splits", valid_fraction=0.1, test_fraction=0.1, seed=0)
    return root / "splits"
