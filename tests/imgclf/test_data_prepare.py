"""`imgclf data prepare`: splits, checks and reports a folder of class sub-folders."""
from __future__ import annotations

import argparse
import json

import pytest
from PIL import Image

from imgclf import data_prepare
from imgclf.cli import main
from imgclf.data_prepare import prepare
from imgclf.errors import UserError


def _images(folder, count, colour=(200, 30, 30), prefix="img"):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (16, 16), colour).save(folder / f"{prefix}{index:03d}.png")


def _dataset(root, counts):
    for label, count in counts.items():
        _images(root / label, count)
    return root


def _listing(root):
    return {split: {p.relative_to(root / split).as_posix() for p in (root / split).rglob("*.png")} for split in ("train", "valid", "test")}


def _run(argv):
    parser = argparse.ArgumentParser()
    data_prepare.add_arguments(parser)
    return data_prepare.run(parser.parse_args([str(a) for a in argv]))


def test_each_class_is_split_by_the_given_fractions(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 20, "bee": 40})

    prepared = prepare(src, tmp_path / "out", valid_fraction=0.25, test_fraction=0.25)

    assert prepared.counts() == {"train": {"ant": 10, "bee": 20}, "valid": {"ant": 5, "bee": 10}, "test": {"ant": 5, "bee": 10}}


def test_the_splits_hold_every_input_image_exactly_once(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 23, "bee": 31})

    prepare(src, tmp_path / "out")

    listing = _listing(tmp_path / "out")
    every = [name for names in listing.values() for name in names]
    assert sorted(every) == sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))


def test_the_same_seed_gives_the_same_split(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 30, "bee": 30})

    prepare(src, tmp_path / "one", seed=3)
    prepare(src, tmp_path / "two", seed=3)

    assert _listing(tmp_path / "one") == _listing(tmp_path / "two")


def test_another_seed_gives_another_split(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 30, "bee": 30})

    prepare(src, tmp_path / "one", seed=0)
    prepare(src, tmp_path / "two", seed=1)

    assert _listing(tmp_path / "one")["test"] != _listing(tmp_path / "two")["test"]


def test_the_output_images_decode(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 10, "bee": 10})

    prepare(src, tmp_path / "out")

    for path in (tmp_path / "out").rglob("*.png"):
        with Image.open(path) as image:
            image.load()
            assert image.size == (16, 16)


def test_files_in_nested_folders_keep_their_place_inside_the_class(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 10, "bee": 10})
    _images(src / "ant" / "ant", 10, prefix="deep")

    prepare(src, tmp_path / "out")

    found = {n for names in _listing(tmp_path / "out").values() for n in names if "deep" in n}
    assert len(found) == 10 and all(n.startswith("ant/ant/deep") for n in found)


def test_a_manifest_records_classes_counts_and_seed(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 10, "bee": 20})

    prepare(src, tmp_path / "out", seed=5)

    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert manifest["classes"] == ["ant", "bee"]
    assert manifest["counts"]["train"] == {"ant": 8, "bee": 16}
    assert manifest["seed"] == 5


def test_an_already_split_layout_is_kept_as_it_is(tmp_path):
    src = tmp_path / "src"
    for split, count in (("train", 6), ("valid", 2), ("test", 3)):
        _dataset(src / split, {"ant": count, "bee": count})

    prepared = prepare(src, tmp_path / "out")

    assert prepared.counts() == {s: {"ant": n, "bee": n} for s, n in (("train", 6), ("valid", 2), ("test", 3))}
    assert _listing(tmp_path / "out") == _listing(src)


def test_an_already_split_layout_with_different_classes_is_refused(tmp_path):
    src = tmp_path / "src"
    _dataset(src / "train", {"ant": 3, "bee": 3})
    _dataset(src / "valid", {"ant": 3, "wasp": 3})
    _dataset(src / "test", {"ant": 3, "bee": 3})

    with pytest.raises(UserError, match="only in train/: bee; only in valid/: wasp"):
        prepare(src, tmp_path / "out")


def test_an_already_split_layout_without_valid_is_refused(tmp_path):
    src = tmp_path / "src"
    _dataset(src / "train", {"ant": 3, "bee": 3})
    _dataset(src / "test", {"ant": 3, "bee": 3})

    with pytest.raises(UserError, match="no valid/"):
        prepare(src, tmp_path / "out")


def test_broken_and_non_image_files_are_skipped_and_reported(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 20, "bee": 20})
    (src / "ant" / "notes.txt").write_text("not an image")
    (src / "bee" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    truncated = (src / "bee" / "img000.png").read_bytes()
    (src / "bee" / "half.png").write_bytes(truncated[: len(truncated) // 2])

    prepared = prepare(src, tmp_path / "out")

    assert prepared.skipped == {"not_image": ["ant/notes.txt"], "unreadable": ["bee/broken.jpg", "bee/half.png"]}
    assert prepared.totals() == {"ant": 20, "bee": 20}
    assert any("skipped 2 images PIL cannot decode" in w for w in prepared.warnings())


def test_hidden_files_are_ignored_silently(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 20, "bee": 20})
    (src / "ant" / ".DS_Store").write_bytes(b"\0\0")

    prepared = prepare(src, tmp_path / "out")

    assert prepared.skipped == {} and prepared.warnings() == []


def test_a_tiny_class_is_warned_about(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 5, "bee": 12})

    warnings = prepare(src, tmp_path / "out").warnings()

    assert any("fewer than 20 images: ant (5), bee (12)" in w for w in warnings)


def test_unbalanced_classes_are_warned_about(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 20, "bee": 80})

    warnings = prepare(src, tmp_path / "out").warnings()

    assert any("unbalanced: bee has 80 images, ant has 20" in w for w in warnings)


def test_the_command_prints_a_table_of_counts_per_class_and_split(tmp_path, capsys):
    src = _dataset(tmp_path / "src", {"ant": 20, "bee": 30})

    assert _run([src, "--out", tmp_path / "out"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["class", "train", "valid", "test", "total"]
    assert lines[1].split() == ["ant", "16", "2", "2", "20"]
    assert lines[2].split() == ["bee", "24", "3", "3", "30"]
    assert lines[3].split() == ["all", "40", "5", "5", "50"]


def test_the_command_prints_warnings_to_stderr(tmp_path, capsys):
    src = _dataset(tmp_path / "src", {"ant": 5, "bee": 5})

    _run([src, "--out", tmp_path / "out"])

    assert "warning: 2 class(es) have fewer than 20 images" in capsys.readouterr().err


def test_a_malformed_upload_target_is_refused_before_anything_is_written(tmp_path, capsys):
    src = _dataset(tmp_path / "src", {"ant": 10, "bee": 10})

    assert main(["data", "prepare", str(src), "--out", str(tmp_path / "out"), "--upload", "my-bucket/pets"]) == 2

    assert capsys.readouterr().err == "imgclf: error: upload target must look like s3://bucket/prefix, got 'my-bucket/pets'\n"
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_cannot_be_created_is_one_clear_error_line(tmp_path, capsys):
    src = _dataset(tmp_path / "src", {"ant": 10, "bee": 10})
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "a-file" / "out"

    assert main(["data", "prepare", str(src), "--out", str(out)]) == 2

    assert capsys.readouterr().err == f"imgclf: error: cannot prepare {out} from {src}: Not a directory ({out})\n"


def test_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        prepare(tmp_path / "nowhere", tmp_path / "out")


def test_a_folder_without_class_folders_is_refused(tmp_path):
    _images(tmp_path / "src", 5)

    with pytest.raises(UserError, match="no class sub-folders"):
        prepare(tmp_path / "src", tmp_path / "out")


def test_a_single_class_is_refused(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 10})

    with pytest.raises(UserError, match="only one class"):
        prepare(src, tmp_path / "out")


def test_a_class_with_no_readable_images_is_refused(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 10})
    (src / "bee").mkdir()
    (src / "bee" / "readme.txt").write_text("empty")

    with pytest.raises(UserError, match="class bee .* has no readable images"):
        prepare(src, tmp_path / "out")


def test_a_class_too_small_to_split_is_refused(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 10, "bee": 2})

    with pytest.raises(UserError, match="class bee has 2 image"):
        prepare(src, tmp_path / "out")


@pytest.mark.parametrize(
    ("valid", "test", "message"),
    [(0.0, 0.1, "--valid-fraction"), (0.1, 1.0, "--test-fraction"), (0.5, 0.5, "leave images for training")],
)
def test_bad_fractions_are_refused(tmp_path, valid, test, message):
    src = _dataset(tmp_path / "src", {"ant": 10, "bee": 10})

    with pytest.raises(UserError, match=message):
        prepare(src, tmp_path / "out", valid_fraction=valid, test_fraction=test)


def test_an_output_folder_that_has_files_is_refused(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 10, "bee": 10})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("keep")

    with pytest.raises(UserError, match="not empty"):
        prepare(src, tmp_path / "out")


def test_an_output_folder_inside_the_dataset_is_refused(tmp_path):
    src = _dataset(tmp_path / "src", {"ant": 10, "bee": 10})

    with pytest.raises(UserError, match="inside the dataset folder"):
        prepare(src, src / "splits")


def test_the_demo_splits_fixture_has_the_same_classes_in_every_split(demo_splits):
    manifest = json.loads((demo_splits / "dataset.json").read_text())

    assert len(manifest["classes"]) >= 3
    for split in ("train", "valid", "test"):
        assert sorted(p.name for p in (demo_splits / split).iterdir()) == manifest["classes"]
        assert all(n > 0 for n in manifest["counts"][split].values())
