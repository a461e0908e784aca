"""The config matrix's shared run: every case synthesized, run through the state machine, trained
and served once per session (tests/matrix/matrix_run.py)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

# The stack samples and the Step Functions harness of the infra tests (tests/infra/*.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

from cases import BASE, CASES, FRONT_DOOR_CASES  # noqa: E402
from matrix_run import CaseRun, Platform, prepare_case  # noqa: E402
from training_platform import namespaces_unavailable  # noqa: E402

from imgclf.data_prepare import prepare  # noqa: E402
from imgclf.demo_data import make_demo_dataset  # noqa: E402

#: 4 classes x 6 images of 32 px: 4 train, 1 valid, 1 test each.
PER_CLASS = 6
IMAGE_SIZE = 32


def _tiny_splits(root: Path) -> Path:
    make_demo_dataset(root / "images", per_class=PER_CLASS, image_size=IMAGE_SIZE, seed=0)
    prepare(root / "images", root / "splits", valid_fraction=0.2, test_fraction=0.2, seed=0)
    return root / "splits"


def _backbone_weights(path: Path) -> Path:
    """The base backbone's state_dict, as a `pretrained` channel holds one (random: no download here)."""
    import torch
    from torchvision import models

    torch.manual_seed(0)
    torch.save(models.get_model(BASE["training"]["arch"], weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory):
    """SageMaker's side of the jobs (tests/matrix/training_platform.py): S3 on loopback, namespaces."""
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(f"the matrix runs each job in its own mount and network namespace: {reason}")
    root = tmp_path_factory.mktemp("matrix")
    platform = Platform(root, _tiny_splits(root / "data"), _backbone_weights(root / "backbone.pth"))
    yield platform
    platform.close()


@pytest.fixture(scope="session")
def matrix(platform: Platform) -> dict[str, CaseRun]:
    """{case name: CaseRun}; the wall time of each phase is printed (pytest -s shows it)."""
    started = time.monotonic()
    runs = [prepare_case(case, BASE, platform.root) for case in CASES.values()]
    machines = time.monotonic()
    platform.run_cases(runs, FRONT_DOOR_CASES)
    print(f"\nconfig matrix: {len(runs)} cases; synth + state machine {machines - started:.0f} s, "
          f"jobs + serving {time.monotonic() - machines:.0f} s")
    return {run.case.name: run for run in runs}
