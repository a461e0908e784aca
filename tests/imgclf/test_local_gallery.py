"""The report's explained test split (imgclf/local/gallery.py) through the session's Ray Serve
container: the confusion matrix, the most-confused pairs and the per-class Grad-CAM gallery all
come from the served model's own answers."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from skimage import data as skdata

from imgclf.local import gallery

#: tests/serving/model_dirs.py's classes (the session's model); the photos are the test "truth".
PHOTOS = {"cat": ("chelsea", "cat"), "coffee": ("coffee",), "rocket": ("rocket", "astronaut")}


@pytest.fixture(scope="module")
def test_split(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("test-split")
    for label, names in PHOTOS.items():
        (root / label).mkdir()
        for name in names:
            image = Image.fromarray(getattr(skdata, name)()).convert("RGB")
            image.thumbnail((96, 96))
            image.save(root / label / f"{name}.jpg", quality=90)
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def explained(model_container, test_split):
    return gallery.explain_test_split(model_container, test_split)


def test_every_test_image_comes_back_with_its_answer_and_heatmap(explained, test_split):
    classes, answers = explained
    assert classes == sorted(PHOTOS)
    assert sorted(a.path.name for a in answers) == sorted(f"{n}.jpg" for names in PHOTOS.values() for n in names)
    for a in answers:
        assert a.predicted in classes and 0 < a.score <= 1
        with Image.open(a.path) as image:
            left, top, width, height = a.box
            assert left >= 0 and top >= 0 and left + width <= image.width and top + height <= image.height
        assert Image.open(io.BytesIO(a.heatmap_png)).mode == "RGBA"


def test_the_confusion_matrix_counts_names_by_their_class_index_and_skips_a_label_outside_the_classes(test_split):
    pairs = [("cat", "cat"), ("cat", "rocket"), ("coffee", "cat"), ("rocket", "rocket"), ("rocket", "dog")]
    answers = [gallery.Explained(test_split / true / "x.jpg", true, predicted, 0.9, b"", (0, 0, 1, 1))
               for true, predicted in pairs]
    assert gallery.confusion(sorted(PHOTOS), answers) == [[1, 0, 1], [1, 0, 0], [0, 0, 1]]


def test_the_most_confused_pairs_are_the_largest_off_diagonal_cells():
    classes = ["a", "b", "c"]
    matrix = [[5, 2, 0], [3, 1, 1], [0, 0, 4]]
    assert gallery.most_confused(classes, matrix) == [("b", "a", 3), ("a", "b", 2), ("b", "c", 1)]


def test_the_gallery_shows_each_class_right_and_wrong_and_the_summary_names_the_confused_pairs(explained, tmp_path):
    classes, answers = explained
    markdown = gallery.write_gallery(tmp_path, classes, answers)
    for name in classes:
        sheet = Image.open(tmp_path / "gallery" / f"{name}.png")
        assert sheet.size == (gallery.PER_ROW * gallery.TILE, 2 * (gallery.TILE + gallery.CAPTION))
        assert f"![{name}](gallery/{name}.png)" in markdown
    matrix = gallery.confusion(classes, answers)
    assert sum(map(sum, matrix)) == len(answers)
    for true, predicted, count in gallery.most_confused(classes, matrix):
        assert f"| {true} | {predicted} | {count} |" in markdown
    wrong = [a for a in answers if not a.right]
    assert ("_No test image was misclassified._" in markdown) == (not wrong)
