"""training/evaluation.py: the per-class figures the cloud and the local registry's evidence share,
and where the evaluation goes (an S3 upload through boto3, mocked by moto; a local folder)."""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from training.errors import TrainerError
from training.evaluation import EVALUATION_FILE, confusion, per_class, summary, upload_uri, write_evaluation
from training.train import parse_args

CLASSES = ["cat", "dog", "fox"]
MATRIX = [[8, 2, 0], [1, 9, 0], [0, 0, 0]]


def test_the_confusion_matrix_counts_true_rows_and_predicted_columns():
    assert confusion(3, [0, 0, 1, 2, 2], [0, 1, 1, 2, 0]) == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_per_class_precision_recall_and_support_come_from_the_confusion_matrix():
    found = per_class(CLASSES, MATRIX)
    assert found["cat"] == {"precision": 8 / 9, "recall": 8 / 10, "support": 10}
    assert found["dog"] == {"precision": 9 / 11, "recall": 9 / 10, "support": 10}
    # Never predicted and never seen: no precision or recall to give, rather than a division by zero.
    assert found["fox"] == {"precision": None, "recall": None, "support": 0}


def test_the_summary_holds_the_matrix_and_the_accuracy():
    found = summary(CLASSES, MATRIX)
    assert (found["classes"], found["confusion_matrix"], found["accuracy"]) == (CLASSES, MATRIX, 17 / 20)
    assert summary(CLASSES, [[0] * 3] * 3)["accuracy"] is None


@pytest.fixture
def job_name(monkeypatch):
    monkeypatch.setenv("TRAINING_JOB_NAME", "imgclf-1-final")
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return "imgclf-1-final"


def test_a_local_prefix_gets_the_file_where_the_cloud_job_uploads_it(tmp_path, job_name):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    uri = upload_uri(str(tmp_path / "runs"))
    assert uri == str(tmp_path / "runs" / job_name / "evidence" / EVALUATION_FILE)
    write_evaluation(model_dir, summary(CLASSES, MATRIX), uri)
    assert json.loads((tmp_path / "runs" / job_name / "evidence" / EVALUATION_FILE).read_text()) == \
        json.loads((model_dir / EVALUATION_FILE).read_text()) == summary(CLASSES, MATRIX)


@mock_aws
def test_an_s3_prefix_is_uploaded_and_a_failed_upload_fails_the_job_with_one_clear_line(tmp_path, job_name):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="pipeline")
    uri = upload_uri("s3://pipeline/runs")
    assert uri == f"s3://pipeline/runs/{job_name}/evidence/evaluation.json"
    write_evaluation(tmp_path, summary(CLASSES, MATRIX), uri)
    body = client.get_object(Bucket="pipeline", Key=f"runs/{job_name}/evidence/evaluation.json")["Body"].read()
    assert json.loads(body) == summary(CLASSES, MATRIX)
    with pytest.raises(TrainerError, match=r"could not upload the test evaluation to s3://missing/runs/.*NoSuchBucket"):
        write_evaluation(tmp_path, summary(CLASSES, MATRIX), upload_uri("s3://missing/runs"))


def test_a_prefix_without_the_jobs_name_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAINING_JOB_NAME", raising=False)
    assert upload_uri(None) is None
    with pytest.raises(TrainerError, match="TRAINING_JOB_NAME"):
        parse_args(["--model-dir", str(tmp_path / "model"), "--evaluation-prefix", str(tmp_path / "runs")])
