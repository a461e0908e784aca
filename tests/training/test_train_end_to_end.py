"""One real training run of train.py on the demo photos (CPU, 32 px, 2 epochs), then what it wrote."""
from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest
import torch

from imgclf.local.container import free_port
from imgclf_serving.architecture import build_classifier
from training.evaluation import EVALUATION_FILE, evaluation_uri
from training.metrics import EPOCH_METRICS, FINAL_METRICS, metric_definitions, parse_metrics

EPOCHS = 2
REPO = Path(__file__).resolve().parents[2]


JOB_NAME = "imgclf-e2e-final"
#: Where the run uploads its test evaluation: S3 as a moto server on loopback, reached through boto3.
EVALUATION_PREFIX = "s3://imgclf-e2e/runs"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket="imgclf-e2e")
    yield url, client
    server.stop()


@pytest.fixture(scope="module")
def trained(demo_splits: Path, tmp_path_factory: pytest.TempPathFactory, run_trainer, s3):
    job = tmp_path_factory.mktemp("e2e") / "job"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {**S3_ENV, "AWS_ENDPOINT_URL_S3": s3[0], "TRAINING_JOB_NAME": JOB_NAME}.items():
            env.setenv(name, value)
        result = run_trainer(demo_splits, job, "--epochs", str(EPOCHS), "--evaluation-prefix", EVALUATION_PREFIX)
    assert result.returncode == 0, result.stderr
    return job, result.stdout


def test_the_model_dir_holds_weights_labels_metadata_and_serving_code(trained, demo_splits: Path):
    job, _ = trained
    model_dir = job / "model"
    classes = sorted(p.name for p in (demo_splits / "train").iterdir())
    assert json.loads((model_dir / "classes.json").read_text()) == classes
    meta = json.loads((model_dir / "model-meta.json").read_text())
    assert {k: meta[k] for k in ("arch", "num_classes", "image_size")} == \
        {"arch": "resnet50", "num_classes": len(classes), "image_size": 32}
    assert meta["model_version"]
    code = model_dir / "code"
    assert (code / "inference.py").read_bytes() == (REPO / "imgclf_serving" / "inference.py").read_bytes()
    assert (code / "requirements.txt").is_file()
    assert (code / "imgclf_serving" / "preprocess.py").is_file() and (code / "imgclf_serving" / "architecture.py").is_file()
    assert not (code / "imgclf_serving" / "frontdoor").exists()


def test_the_model_dir_holds_the_drift_reports_baseline_from_the_test_split(trained, demo_splits: Path):
    job, _ = trained
    baseline = json.loads((job / "model" / "monitoring-baseline.json").read_text())
    tested = sum(1 for p in (demo_splits / "test").rglob("*") if p.is_file())
    assert baseline["count"] == tested == sum(baseline["class_counts"].values()) == sum(baseline["confidence_counts"])
    assert list(baseline["class_counts"]) == sorted(p.name for p in (demo_splits / "train").iterdir())


def test_the_test_evaluation_is_in_the_model_dir_and_uploaded_where_the_evidence_names_it(trained, demo_splits: Path, s3):
    job, stdout = trained
    found = json.loads((job / "model" / EVALUATION_FILE).read_text())
    classes = sorted(p.name for p in (demo_splits / "train").iterdir())
    support = {c: sum(1 for p in (demo_splits / "test" / c).iterdir() if p.is_file()) for c in classes}
    assert found["classes"] == classes
    assert {c: found["per_class"][c]["support"] for c in classes} == support
    assert sum(map(sum, found["confusion_matrix"])) == sum(support.values())
    # The same accuracy the trainer reported for the test split (the gate's test_acc).
    (test_acc,) = parse_metrics(stdout, metric_definitions())["test_acc"]
    assert found["accuracy"] == pytest.approx(test_acc, abs=1e-4)
    uri = evaluation_uri(EVALUATION_PREFIX, JOB_NAME)
    assert uri == f"{EVALUATION_PREFIX}/{JOB_NAME}/evidence/evaluation.json"
    uploaded = s3[1].get_object(Bucket="imgclf-e2e", Key=uri.split("/", 3)[3])
    assert json.loads(uploaded["Body"].read()) == found and uploaded["ContentType"] == "application/json"
    assert f"test evaluation written to {uri}" in stdout


def test_model_pth_is_a_state_dict_that_loads_into_the_serving_architecture(trained):
    job, _ = trained
    state = torch.load(job / "model" / "model.pth", map_location="cpu", weights_only=True)
    meta = json.loads((job / "model" / "model-meta.json").read_text())
    model = build_classifier(meta["arch"], meta["num_classes"])
    model.load_state_dict(state)  # strict: every tensor present, none extra


def test_test_accuracy_is_well_above_chance_on_the_demo_split(trained, demo_splits: Path):
    _, stdout = trained
    chance = 1 / len(list((demo_splits / "train").iterdir()))
    test_acc = parse_metrics(stdout, metric_definitions())["test_acc"]
    assert len(test_acc) == 1 and test_acc[0] >= 1.5 * chance


def test_the_metric_regexes_read_every_epoch_and_final_metric_from_the_log(trained):
    _, stdout = trained
    found = parse_metrics(stdout, metric_definitions())
    assert {name: len(found[name]) for name in EPOCH_METRICS} == {name: EPOCHS for name in EPOCH_METRICS}
    assert {name: len(found[name]) for name in FINAL_METRICS} == {name: 1 for name in FINAL_METRICS}
    assert re.findall(r"^epoch=(\d+) ", stdout, re.M) == [str(e) for e in range(1, EPOCHS + 1)]


def test_human_progress_lines_carry_no_metric_a_regex_could_misread(trained):
    _, stdout = trained
    other_lines = [line for line in stdout.splitlines()
                   if not line.startswith(("epoch=", "test_loss=", "rule_"))]
    assert other_lines and parse_metrics("\n".join(other_lines), metric_definitions()) == {}


def test_a_checkpoint_is_kept_for_each_of_the_last_two_epochs(trained):
    job, _ = trained
    assert sorted(p.name for p in (job / "checkpoints").iterdir()) == \
        ["checkpoint-0001.pth", "checkpoint-0002.pth"]
