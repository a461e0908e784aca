"""`imgclf monitor report`: PSI per signal and a verdict, from the local front door's capture
folder and from S3 (botocore Stubber), against a baseline the trainer's modules compute."""
from __future__ import annotations

import io
import json
import random
from datetime import datetime, timedelta, timezone

import pytest
import torch
from botocore.response import StreamingBody
from botocore.stub import Stubber

from imgclf.cli import main
from imgclf import monitor
from training.monitoring_baseline import BASELINE_FILE, write_baseline
from training.predictions import predictions

CLASSES = ["cat", "dog", "fox"]


class _Fixed(torch.nn.Module):
    """A 'network' whose logits are its input: the baseline's test split is then chosen exactly."""

    def forward(self, x):
        return x


def _split(mix: dict[str, int], sharpness: float, seed: int = 0):
    """Batches of logits whose top-1 is each class `mix[class]` times, at a given sharpness."""
    rng = random.Random(seed)
    rows = []
    for index, label in enumerate(CLASSES):
        for _ in range(mix[label]):
            row = [rng.gauss(0, 0.3) for _ in CLASSES]
            row[index] += sharpness
            rows.append(row)
    rng.shuffle(rows)
    logits = torch.tensor(rows)
    return [(logits[i:i + 16], torch.zeros(len(logits[i:i + 16]))) for i in range(0, len(logits), 16)]


def _records(mix: dict[str, int], sharpness: float, seed: int) -> list[dict]:
    """Capture records as the front door writes them, for predictions drawn like _split's."""
    records = []
    for logits, _ in _split(mix, sharpness, seed):
        for row in torch.softmax(logits, dim=1):
            score, index = row.max(0)
            records.append({"request_id": f"r{len(records)}", "model": {"version": "v1"},
                            "predictions": [{"label": CLASSES[int(index)], "score": float(score)}],
                            "confidence": float(score)})
    return records


EVEN = {"cat": 100, "dog": 100, "fox": 100}


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    write_baseline(folder, CLASSES, predictions(_Fixed(), _split(EVEN, 3.0), torch.device("cpu")))
    return folder


def _capture(folder, records):
    for record in records:
        path = folder / "monitoring" / "capture" / "2026" / "12" / "01" / "10" / f"{record['request_id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))


def test_the_baseline_holds_the_class_mix_and_confidence_histogram_of_the_test_split(model_dir):
    saved = json.loads((model_dir / BASELINE_FILE).read_text())
    assert saved["count"] == 300 and sum(saved["confidence_counts"]) == 300
    assert saved["class_counts"] == {"cat": 100, "dog": 100, "fox": 100}


def test_live_traffic_like_the_test_split_is_stable(model_dir, tmp_path, capsys):
    _capture(tmp_path / "serve", _records(EVEN, 3.0, seed=1))
    code = main(["monitor", "report", "--baseline", str(model_dir), "--local", str(tmp_path / "serve"),
                 "--out", str(tmp_path / "out")])
    assert code == 0 and capsys.readouterr().out.startswith("stable:")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "**Verdict: stable**" in text
    assert (tmp_path / "out" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_another_class_mix_is_drift(model_dir, tmp_path, capsys):
    _capture(tmp_path / "serve", _records({"cat": 250, "dog": 40, "fox": 10}, 3.0, seed=2))
    main(["monitor", "report", "--baseline", str(model_dir), "--local", str(tmp_path / "serve"), "--out", str(tmp_path / "out")])
    assert capsys.readouterr().out.startswith("drift:")
    assert "| class mix |" in (tmp_path / "out" / "report.md").read_text()


def test_corrupted_inputs_the_model_is_unsure_of_shift_the_confidence(model_dir):
    found = {s.name: s for s in monitor.signals(json.loads((model_dir / BASELINE_FILE).read_text()), _records(EVEN, 0.5, seed=3))}
    assert found["top-1 confidence"].verdict == "drift"


def test_the_verdict_thresholds():
    assert [monitor.verdict(v) for v in (0.0, 0.099, 0.1, 0.25, 0.26)] == ["stable", "stable", "watch", "drift", "drift"]


def test_the_cloud_report_reads_the_capture_objects_from_s3(model_dir, tmp_path, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = boto3.client("s3", region_name="us-east-1")
    now = datetime.now(timezone.utc)
    records = _records({"cat": 250, "dog": 40, "fox": 10}, 3.0, seed=4)[:30]
    old = {"request_id": "old", "predictions": [{"label": "cat", "score": 0.99}], "confidence": 0.99}
    listing = [{"Key": f"monitoring/capture/x/{r['request_id']}.json", "LastModified": now, "Size": 1} for r in records]
    listing.append({"Key": "monitoring/capture/x/old.json", "LastModified": now - timedelta(days=30), "Size": 1})
    with Stubber(s3) as stub:
        stub.add_response("list_objects_v2", {"Contents": listing, "IsTruncated": False},
                          {"Bucket": "bkt", "Prefix": "monitoring/capture/"})
        for record in records:
            body = json.dumps(record).encode()
            stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(body), len(body))},
                              {"Bucket": "bkt", "Key": f"monitoring/capture/x/{record['request_id']}.json"})
        found = monitor.s3_records(s3, "bkt", now - timedelta(days=7))
        stub.assert_no_pending_responses()
    assert len(found) == 30 and old not in found


def test_no_baseline_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "serve").mkdir()
    assert main(["monitor", "report", "--baseline", str(tmp_path), "--local", str(tmp_path / "serve")]) == 2
    assert "no baseline" in capsys.readouterr().err
