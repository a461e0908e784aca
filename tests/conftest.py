"""Fixtures shared by every test package."""
from __future__ import annotations

import os
import sys
from pathlib import Path

# smdebug's generated protobuf modules predate protobuf 4, which loads them only in its pure-Python
# implementation; the trainer selects it before smdebug loads (training/smdebug_runtime.py), and tests
# that import smdebug themselves need it before anything imports protobuf: here, first.
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import pytest  # noqa: E402

from imgclf.data_prepare import prepare  # noqa: E402
from imgclf.demo_data import make_demo_dataset  # noqa: E402

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


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 32 px ResNet-50 model dir over tests/serving/model_dirs.py's CLASSES, written by
    the trainer's own writer: what model.tar.gz holds."""
    sys.path.insert(0, str(Path(__file__).parent / "serving"))
    from model_dirs import build_model_dir

    return build_model_dir(tmp_path_factory.mktemp("model") / "model", image_size=32)


@pytest.fixture(scope="session")
def model_container(model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """`model_dir` served by Ray Serve as AWS's Ray Serve container runs it
    (imgclf/local/ray_container.py). Started once per session and shared: Ray takes a minute or
    more to start on 2 cores."""
    from imgclf.local.ray_container import RayServeContainer

    with RayServeContainer(model_dir, {}, tmp_path_factory.mktemp("container") / "container.log") as container:
        yield container
