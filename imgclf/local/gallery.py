"""The report's explained test split: every test image through the served model with `explain=1`,
so that the confusion matrix, the most-confused pairs and a per-class gallery of Grad-CAM heatmaps
(right and wrong answers) come from the same answers, as the endpoint gives them.

Files: `gallery/<class>.png` (one strip of the class's right answers, most confident first, and one
of its wrong ones, each image cropped to what the model saw with its heatmap over it) and the
markdown that summary.md embeds. PIL only: no plotting library for a grid of tiles.
"""
from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from training import evaluation

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
REQUEST_HEADERS = {"Content-Type": "application/x-image", "Accept": "application/json",
                   "X-Amzn-SageMaker-Custom-Attributes": "explain=1"}
TILE = 128
CAPTION = 14
PER_ROW = 6
MOST_CONFUSED = 5


@dataclass(frozen=True)
class Explained:
    """One test image's answer: its true class, the top class, its score, and the heatmap."""

    path: Path
    true: str
    predicted: str
    score: float
    heatmap_png: bytes
    box: tuple[int, int, int, int]

    @property
    def right(self) -> bool:
        return self.true == self.predicted


def explain_test_split(service, test_dir: Path) -> tuple[list[str], list[Explained]]:
    """(classes, an Explained per test image the model answered) of the served model on the test
    ImageFolder; images it refuses are left out, as the confusion matrix always did."""
    classes = sorted(p.name for p in test_dir.iterdir() if p.is_dir())
    found = []
    for true in classes:
        for image in sorted((test_dir / true).iterdir()):
            if image.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            answer = service.invoke(image.read_bytes(), REQUEST_HEADERS)
            if answer.status != 200:
                continue
            body = json.loads(answer.body)
            top, explanation = body["predictions"][0], body["explanation"]
            found.append(Explained(image, true, top["label"], top["score"],
                                   base64.b64decode(explanation["heatmap_png"]), tuple(explanation["box"])))
    return classes, found


def confusion(classes: list[str], answers: list[Explained]) -> list[list[int]]:
    """matrix[true][predicted], counted as the retrain's evaluation.json is (training/evaluation.py)
    once the labels are indices of `classes`; a label outside `classes` is not counted."""
    index = {c: i for i, c in enumerate(classes)}
    counted = [a for a in answers if a.predicted in index]
    return evaluation.confusion(len(classes), [index[a.true] for a in counted], [index[a.predicted] for a in counted])


def most_confused(classes: list[str], matrix: list[list[int]], limit: int = MOST_CONFUSED) -> list[tuple[str, str, int]]:
    """(true, predicted, count) of the off-diagonal cells with any count, most first."""
    pairs = [(classes[i], classes[j], n) for i, row in enumerate(matrix) for j, n in enumerate(row) if i != j and n]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))[:limit]


def write_gallery(folder: Path, classes: list[str], answers: list[Explained]) -> str:
    """Write gallery/<class>.png for every class; return the markdown for summary.md."""
    (folder / "gallery").mkdir(parents=True, exist_ok=True)
    matrix = confusion(classes, answers)
    lines = ["## Most-confused pairs (test split, served model)", ""]
    pairs = most_confused(classes, matrix)
    lines += ["| true | predicted as | images |", "|---|---|---|", *(f"| {t} | {p} | {n} |" for t, p, n in pairs)] if pairs \
        else ["_No test image was misclassified._"]
    lines += ["", "## Gallery: what the model looked at (Grad-CAM of its top class)", ""]
    for name in classes:
        mine = [a for a in answers if a.true == name]
        right = sorted((a for a in mine if a.right), key=lambda a: -a.score)[:PER_ROW]
        wrong = sorted((a for a in mine if not a.right), key=lambda a: -a.score)[:PER_ROW]
        _strips([right, wrong]).save(folder / "gallery" / f"{name}.png")
        lines += [f"### {name}: {len(right)} of {sum(a.right for a in mine)} right, {len(wrong)} of "
                  f"{sum(not a.right for a in mine)} wrong shown", "", f"![{name}](gallery/{name}.png)", ""]
    return "\n".join(lines)


def _strips(rows: list[list[Explained]]) -> Image.Image:
    """One row of tiles per list (an empty row stays blank), captioned with the answer."""
    sheet = Image.new("RGB", (PER_ROW * TILE, len(rows) * (TILE + CAPTION)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        for c, answer in enumerate(row):
            x, y = c * TILE, r * (TILE + CAPTION)
            sheet.paste(_tile(answer), (x, y + CAPTION))
            caption = f"{answer.score:.2f}" if answer.right else f"-> {answer.predicted} {answer.score:.2f}"
            draw.text((x + 2, y + 1), caption, fill="black" if answer.right else "firebrick")
    return sheet


def _tile(answer: Explained) -> Image.Image:
    """The part of the image the model saw, with the heatmap over it."""
    left, top, width, height = answer.box
    with Image.open(answer.path) as image:
        seen = image.convert("RGBA").crop((left, top, left + width, top + height)).resize((TILE, TILE))
    heatmap = Image.open(io.BytesIO(answer.heatmap_png)).convert("RGBA").resize((TILE, TILE))
    return Image.alpha_composite(seen, heatmap).convert("RGB")
