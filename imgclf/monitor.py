"""`imgclf monitor report`: has the served model's input drifted from what it was tested on?

Compares the front door's capture records (imgclf_serving/frontdoor/capture.py) with the baseline
saved with the model (training/monitoring_baseline.py): the class mix of the top-1 predictions and
the histogram of the top-1 confidence. Each signal gets a population stability index,
PSI = sum((live - base) * ln(live / base)) over its bins, and the usual reading of it: below 0.1
stable, 0.1 to 0.25 watch, above 0.25 drift. The verdict is the worst signal's. Written as
report.md plus report.png.

Cloud: the records under the stack bucket's capture prefix, modified within `--since`. Local
(`--local DIR`): the records the local front door wrote under its serve folder.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from imgclf.errors import UserError
from imgclf_serving.frontdoor.capture import DEFAULT_PREFIX
from training.monitoring_baseline import BASELINE_FILE, confidence_counts

#: (upper bound, verdict): PSI below 0.1 is stable, up to 0.25 worth watching, above that drift.
THRESHOLDS = ((0.1, "stable"), (0.25, "watch"), (math.inf, "drift"))
#: A bin empty on one side would make PSI infinite: each share is floored at this.
EPSILON = 1e-4


@dataclass(frozen=True)
class Signal:
    name: str
    bins: list[str]
    baseline: list[float]
    live: list[float]
    psi: float

    @property
    def verdict(self) -> str:
        return verdict(self.psi)


def verdict(value: float) -> str:
    return next(name for bound, name in THRESHOLDS if value < bound)


def shares(counts: list[int | float]) -> list[float]:
    total = sum(counts)
    return [max(c / total, EPSILON) if total else EPSILON for c in counts]


def psi(baseline_counts: list[int | float], live_counts: list[int | float]) -> float:
    base, live = shares(baseline_counts), shares(live_counts)
    return sum((b - a) * math.log(b / a) for a, b in zip(base, live, strict=True))


def signals(baseline: dict, records: list[dict]) -> list[Signal]:
    """PSI of the class mix and of the confidence histogram, live records against the baseline.
    A label the baseline never predicted counts in one extra `(other)` bin."""
    classes = list(baseline["class_counts"])
    live_classes = dict.fromkeys(classes, 0)
    other = 0
    for record in records:
        label = (record.get("predictions") or [{}])[0].get("label")
        if label in live_classes:
            live_classes[label] += 1
        else:
            other += 1
    base_classes = [baseline["class_counts"][c] for c in classes] + [0]
    edges = baseline["confidence_edges"]
    live_confidence = confidence_counts([float(r["confidence"]) for r in records], edges)
    bins = [f"{edges[i]:.1f}-{edges[i + 1]:.1f}" for i in range(len(edges) - 1)]
    return [
        Signal("class mix", [*classes, "(other)"], shares(base_classes), shares([*live_classes.values(), other]),
               psi(base_classes, [*live_classes.values(), other])),
        Signal("top-1 confidence", bins, shares(baseline["confidence_counts"]), shares(live_confidence),
               psi(baseline["confidence_counts"], live_confidence)),
    ]


def read_baseline(path: Path) -> dict:
    path = path / BASELINE_FILE if path.is_dir() else path
    try:
        baseline = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no baseline at {path}: the trainer saves {BASELINE_FILE} in the model dir when there is a test split") from None
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is not a readable baseline: {err}") from None
    if not {"class_counts", "confidence_edges", "confidence_counts"} <= set(baseline):
        raise UserError(f"{path} is not a monitoring baseline ({BASELINE_FILE})")
    return baseline


def local_records(folder: Path, since: datetime) -> list[dict]:
    root = folder / DEFAULT_PREFIX
    if not root.is_dir():
        raise UserError(f"no capture under {root}: set monitoring.capture_percent above 0 and send requests")
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))
            if datetime.fromtimestamp(p.stat().st_mtime, timezone.utc) >= since]


def s3_records(s3, bucket: str, since: datetime) -> list[dict]:
    """The capture objects modified since `since` (ListObjectsV2 over the capture prefix)."""
    records = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{DEFAULT_PREFIX}/"):
        for item in page.get("Contents", []):
            if item["LastModified"] >= since:
                records.append(json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()))
    return records


def markdown(found: list[Signal], count: int, since: datetime) -> str:
    worst = max(found, key=lambda s: s.psi)
    lines = [
        "# Drift report", "",
        f"{count} captured predictions since {since:%Y-%m-%d %H:%M} UTC against the test-split baseline.", "",
        f"**Verdict: {worst.verdict}** (the worst signal's; PSI < 0.1 stable, 0.1-0.25 watch, > 0.25 drift)", "",
        "| signal | PSI | verdict |", "|---|---|---|",
        *(f"| {s.name} | {s.psi:.3f} | {s.verdict} |" for s in found), "",
        "![baseline and live distributions](report.png)", "",
    ]
    return "\n".join(lines)


def plot(found: list[Signal], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(found), 1, figsize=(9, 3.5 * len(found)))
    for axis, signal in zip(axes, found, strict=True):
        x = range(len(signal.bins))
        axis.bar([i - 0.2 for i in x], signal.baseline, width=0.4, label="baseline (test split)")
        axis.bar([i + 0.2 for i in x], signal.live, width=0.4, label="live (capture)")
        axis.set_xticks(list(x), signal.bins, rotation=45, ha="right", fontsize=7)
        axis.set_title(f"{signal.name}: PSI {signal.psi:.3f} ({signal.verdict})")
        axis.set_ylabel("share")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def report(baseline: dict, records: list[dict], since: datetime, out: Path) -> list[Signal]:
    if not records:
        raise UserError("no captured predictions in that time range: nothing to compare")
    found = signals(baseline, records)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown(found, len(records), since))
    plot(found, out / "report.png")
    return found


def parse_since(text: str) -> timedelta:
    match = re.fullmatch(r"([1-9][0-9]{0,4})([hd])", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: use hours or days, e.g. 12h or 7d")
    amount, unit = int(match[1]), match[2]
    return timedelta(hours=amount) if unit == "h" else timedelta(days=amount)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", type=Path, required=True,
                        help=f"the model dir (or its {BASELINE_FILE}) of the served model")
    parser.add_argument("--since", type=parse_since, default=timedelta(days=7), help="time range, e.g. 12h or 7d (default 7d)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bucket", help="the stack's bucket (output BucketName): read the capture from S3")
    where.add_argument("--local", type=Path, metavar="SERVE_DIR", help="the local front door's serve folder")
    parser.add_argument("--out", type=Path, default=Path("drift-report"), help="folder for report.md and report.png")


def run(args: argparse.Namespace) -> int:
    since = datetime.now(timezone.utc) - args.since
    baseline = read_baseline(args.baseline)
    if args.local:
        records = local_records(args.local, since)
    else:
        import boto3

        records = s3_records(boto3.client("s3"), args.bucket, since)
    found = report(baseline, records, since, args.out)
    worst = max(found, key=lambda s: s.psi)
    print(f"{worst.verdict}: " + ", ".join(f"{s.name} PSI {s.psi:.3f}" for s in found) + f"; report in {args.out}/report.md")
    return 0
