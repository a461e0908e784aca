"""The training source bundle: a deterministic tar.gz the SageMaker training toolkit can extract."""
from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest
from sagemaker_training.files import download_and_extract

from infra.source_bundle import REPO_ROOT, build_source_bundle


def _names(bundle: Path) -> list[str]:
    with tarfile.open(bundle, "r:gz") as tar:
        return tar.getnames()


def _fake_repo(root: Path) -> Path:
    for name, text in {
        "training/train.py": "print('train')\n",
        "training/metrics.py": "X = 1\n",
        "training/requirements.txt": "numpy<2.3\n",
        "training/requirements-no-deps.txt": "smdebug==1.0.34\n",
        "training/__pycache__/train.cpython-311.pyc": "junk",
        "training/notes.md": "not code",
        "imgclf_serving/preprocess.py": "Y = 2\n",
        "imgclf_serving/requirements.txt": "# empty\n",
        "imgclf_serving/frontdoor/app.py": "def handler(e, c): ...\n",
        "imgclf/cli.py": "Z = 3\n",
    }.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_bundle_is_a_gzipped_tar_the_training_toolkit_extracts(tmp_path):
    bundle = build_source_bundle(tmp_path / "out")
    download_and_extract(str(bundle), str(tmp_path / "code"))
    assert (tmp_path / "code" / "training" / "train.py").is_file()
    assert (tmp_path / "code" / "imgclf_serving" / "preprocess.py").is_file()


def test_the_root_requirements_equal_the_training_requirements(tmp_path):
    with tarfile.open(build_source_bundle(tmp_path), "r:gz") as tar:
        requirements = tar.extractfile("requirements.txt").read()
    assert requirements == (REPO_ROOT / "training" / "requirements.txt").read_bytes()


def test_the_no_deps_requirements_lie_where_the_trainer_installs_smdebug_from(tmp_path):
    from training.smdebug_runtime import NO_DEPS_REQUIREMENTS

    download_and_extract(str(build_source_bundle(tmp_path / "out")), str(tmp_path / "code"))
    bundled = tmp_path / "code" / NO_DEPS_REQUIREMENTS.relative_to(REPO_ROOT)
    assert bundled.read_bytes() == NO_DEPS_REQUIREMENTS.read_bytes()


def test_only_top_level_modules_and_requirements_of_training_and_serving_are_bundled(tmp_path):
    bundle = build_source_bundle(tmp_path / "out", root=_fake_repo(tmp_path / "repo"))
    assert _names(bundle) == [
        "imgclf_serving",
        "training",
        "imgclf_serving/preprocess.py",
        "imgclf_serving/requirements.txt",
        "requirements.txt",
        "training/metrics.py",
        "training/requirements-no-deps.txt",
        "training/requirements.txt",
        "training/train.py",
    ]


def test_entries_carry_no_time_owner_or_local_mode(tmp_path):
    with tarfile.open(build_source_bundle(tmp_path), "r:gz") as tar:
        members = tar.getmembers()
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.mode for m in members if m.isfile()} == {0o644}


def test_two_builds_are_byte_identical_even_after_files_are_touched(tmp_path):
    repo = _fake_repo(tmp_path / "repo")
    first = build_source_bundle(tmp_path / "a", root=repo).read_bytes()
    os.utime(repo / "training" / "train.py", (1_700_000_000, 1_700_000_000))
    second = build_source_bundle(tmp_path / "b", root=repo).read_bytes()
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_a_code_change_changes_the_bundle(tmp_path):
    repo = _fake_repo(tmp_path / "repo")
    first = build_source_bundle(tmp_path / "a", root=repo).read_bytes()
    (repo / "training" / "train.py").write_text("print('changed')\n")
    assert build_source_bundle(tmp_path / "b", root=repo).read_bytes() != first


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-no-deps.txt"])
def test_a_missing_training_requirements_file_is_a_clear_error(tmp_path, name):
    repo = _fake_repo(tmp_path / "repo")
    (repo / "training" / name).unlink()
    with pytest.raises(FileNotFoundError, match=f"training/{name}"):
        build_source_bundle(tmp_path / "out", root=repo)
