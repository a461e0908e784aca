"""Data and paths a person can get wrong: each gives one clear line on stderr and a non-zero exit."""
from __future__ import annotations

import json
import resource
import shutil
import signal
import struct
import zlib
from pathlib import Path

import pytest

from training.data import scan_split
from training.train import cli


def _cli(splits: Path, job: Path, *extra: str) -> int:
    return cli(["--train", str(splits / "train"), "--valid", str(splits / "valid"), "--test",
                str(splits / "test"), "--model-dir", str(job / "model"), "--pretrained", "none",
                "--unfreeze", "all", "--image-size", "32", "--num-workers", "0", "--debugger", "off", *extra])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def _break_an_image(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is no image")


def _cut_in_half(path: Path) -> None:
    """A file whose copy stopped half-way: the header and the first half of the data are intact."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_decompression_bomb(path: Path) -> None:
    """A valid PNG header announcing 20000 x 20000 pixels (PIL refuses above about 179 million)."""
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b""))


def test_an_empty_train_channel_is_reported(splits_copy, tmp_path, capsys):
    shutil.rmtree(splits_copy / "train")
    (splits_copy / "train").mkdir()
    assert _cli(splits_copy, tmp_path) == 2
    assert _one_error_line(capsys) == (
        f"error: train channel {splits_copy / 'train'} is empty: expected one sub-folder of images per class")


def test_a_missing_valid_channel_is_reported(splits_copy, tmp_path, capsys):
    shutil.rmtree(splits_copy / "valid")
    assert _cli(splits_copy, tmp_path) == 2
    assert _one_error_line(capsys) == f"error: valid channel {splits_copy / 'valid'} does not exist or is not a folder"


def test_a_class_folder_without_images_is_reported_by_name(splits_copy, tmp_path, capsys):
    for image in (splits_copy / "train" / "cat").iterdir():
        image.unlink()
    (splits_copy / "train" / "cat" / "notes.txt").write_text("not an image")
    assert _cli(splits_copy, tmp_path) == 2
    assert _one_error_line(capsys).startswith(f"error: train channel: class folder {splits_copy / 'train' / 'cat'} has no images")


def test_a_class_folder_whose_images_are_all_unreadable_is_reported(splits_copy, tmp_path, capsys):
    for image in (splits_copy / "valid" / "cat").iterdir():
        _break_an_image(image)
    assert _cli(splits_copy, tmp_path) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"error: valid channel: class folder {splits_copy / 'valid' / 'cat'} has no readable images"


@pytest.mark.parametrize("split", ["valid", "test"])
def test_a_split_whose_classes_differ_from_train_names_the_missing_and_extra_classes(splits_copy, tmp_path, capsys, split):
    (splits_copy / split / "rocket").rename(splits_copy / split / "rockets")
    assert _cli(splits_copy, tmp_path) == 2
    assert _one_error_line(capsys) == (
        f"error: {split} classes differ from train classes: missing ['rocket'], extra ['rockets'] "
        f"(in {splits_copy / split})")


def test_unreadable_image_files_are_skipped_counted_and_warned_about(splits_copy, capsys):
    broken = sorted((splits_copy / "train" / "coffee").iterdir())[:2]
    for image in broken:
        _break_an_image(image)
    split = scan_split("train", splits_copy / "train")
    assert list(split.unreadable) == broken and not {p for p, _ in split.samples} & set(broken)
    assert capsys.readouterr().err.startswith("warning: train channel: skipped 2 unreadable image file(s): ")


def test_a_truncated_jpeg_is_skipped_with_a_warning_and_training_completes(splits_copy, tmp_path, capsys):
    truncated = sorted((splits_copy / "train" / "coffee").glob("*.jpg"))[0]
    _cut_in_half(truncated)
    assert _cli(splits_copy, tmp_path, "--epochs", "1") == 0
    warning = f"warning: train channel: skipped 1 unreadable image file(s): {truncated} ("
    err = capsys.readouterr().err
    assert warning in err and "truncated" in err.split(warning)[1].lower(), err
    assert (tmp_path / "model" / "model.pth").is_file()


def test_a_decompression_bomb_is_skipped_with_the_reason(splits_copy, capsys):
    bomb = splits_copy / "valid" / "cat" / "huge.png"
    _write_decompression_bomb(bomb)
    split = scan_split("valid", splits_copy / "valid")
    assert list(split.unreadable) == [bomb] and "exceeds limit" in split.unreadable[bomb]
    assert f"skipped 1 unreadable image file(s): {bomb} (Image size (400000000 pixels) exceeds limit" \
        in capsys.readouterr().err


def test_a_model_dir_that_cannot_be_created_fails_before_training(splits_copy, tmp_path, capsys):
    (tmp_path / "job").write_text("a file where the job folder should be")
    assert _cli(splits_copy, tmp_path / "job") == 2
    assert _one_error_line(capsys) == f"error: --model-dir {tmp_path / 'job' / 'model'} is not writable: Not a directory"


def test_a_missing_pretrained_weights_file_is_reported(splits_copy, tmp_path, capsys):
    assert _cli(splits_copy, tmp_path, "--pretrained", str(tmp_path / "nope.pth")) == 2
    assert _one_error_line(capsys) == f"error: pretrained weights file {tmp_path / 'nope.pth'} does not exist"


def test_the_script_reports_bad_input_without_a_traceback(splits_copy, tmp_path, run_trainer):
    shutil.rmtree(splits_copy / "test" / "cat")
    result = run_trainer(splits_copy, tmp_path / "job", "--epochs", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: test classes differ from train classes")
    assert "Traceback" not in result.stderr


def _limit_file_size_to_20_mb():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (20 * 2**20, 20 * 2**20))


def test_a_checkpoint_that_cannot_be_written_is_a_clear_error_and_leaves_no_partial_file(
        small_splits, tmp_path, run_trainer):
    job = tmp_path / "job"
    result = run_trainer(small_splits, job, "--epochs", "1", preexec_fn=_limit_file_size_to_20_mb)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == \
        f"error: cannot write {job / 'checkpoints' / 'checkpoint-0001.pth'}: File too large"
    assert list((job / "checkpoints").iterdir()) == []


def test_rule_parameters_for_an_unknown_rule_are_refused_before_training(splits_copy, tmp_path, capsys):
    code = cli(["--train", str(splits_copy / "train"), "--valid", str(splits_copy / "valid"),
                "--model-dir", str(tmp_path / "model"), "--pretrained", "none", "--unfreeze", "all",
                "--image-size", "32", "--num-workers", "0", "--rule-params", '{"Overfitting": {}}'])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --rule-params: unknown rule 'Overfitting'") and "Traceback" not in err
    assert not list((tmp_path / "checkpoints").glob("*.pth"))


def test_a_fastfile_channel_is_not_read_ahead_and_an_undecodable_file_stops_the_job_by_name(
        splits_copy, tmp_path, capsys, monkeypatch):
    """Decoding every file before training would download a streamed (FastFile) channel whole."""
    broken = sorted((splits_copy / "train" / "coffee").iterdir())[0]
    _break_an_image(broken)
    monkeypatch.setenv("SM_INPUT_DATA_CONFIG", json.dumps({
        "train": {"TrainingInputMode": "FastFile"}, "valid": {"TrainingInputMode": "File"}}))
    assert broken in {path for path, _ in scan_split("train", splits_copy / "train", decode=False).samples}
    assert _cli(splits_copy, tmp_path, "--epochs", "1") == 2
    assert _one_error_line(capsys).startswith(f"error: train channel: cannot decode {broken}: ")
