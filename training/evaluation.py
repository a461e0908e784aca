"""The model's evaluation on the test split: confusion matrix, per-class precision, recall and
support, and accuracy. One implementation for the cloud and the local registry's evidence.

The trainer writes `evaluation.json` into the model dir and, when the retrain names an evaluation
prefix (infra/sagemaker_requests.py: `evaluation-prefix`, the job output prefix), also to
`<prefix>/<training job name>/evidence/evaluation.json`, which the model package's evidence names
(infra/state_machine/register.py). The local registry computes the same summary from the served
model's confusion matrix (imgclf/local/pipeline.py), which `confusion` counts too
(imgclf/local/gallery.py). The trainer's answers come from training/predictions.py: one pass
over the test split, which also gives the drift report's baseline.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from training.errors import TrainerError

if TYPE_CHECKING:  # the local registry and the state machine read this module without torch
    from training.predictions import Predictions

#: The file in the model dir.
EVALUATION_FILE = "evaluation.json"
#: Where the evaluation lies under `<evaluation prefix>/<training job name>/`, beside the evidence.
EVALUATION_KEY = f"evidence/{EVALUATION_FILE}"


def confusion(num_classes: int, targets: list[int], predicted: list[int]) -> list[list[int]]:
    """matrix[true][predicted], counts of class indices."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for true, guess in zip(targets, predicted, strict=True):
        matrix[true][guess] += 1
    return matrix


def per_class(classes: list[str], matrix: list[list[int]]) -> dict[str, dict[str, float | int | None]]:
    """Precision, recall and support (test images of the class) of each class from a confusion
    matrix (rows: true, columns: predicted); None where a class was never predicted (precision)
    or never seen (recall)."""
    found = {}
    for i, name in enumerate(classes):
        predicted = sum(row[i] for row in matrix)
        actual = sum(matrix[i])
        found[name] = {"precision": matrix[i][i] / predicted if predicted else None,
                       "recall": matrix[i][i] / actual if actual else None,
                       "support": actual}
    return found


def summary(classes: list[str], matrix: list[list[int]]) -> dict:
    """What evaluation.json holds; accuracy is None for an empty split."""
    seen = sum(map(sum, matrix))
    return {
        "classes": list(classes),
        "confusion_matrix": matrix,
        "per_class": per_class(classes, matrix),
        "accuracy": sum(matrix[i][i] for i in range(len(classes))) / seen if seen else None,
    }


def evaluation(classes: list[str], answers: Predictions) -> dict:
    """`summary` of the network's top-1 answers on the test split (training/predictions.py)."""
    return summary(classes, confusion(len(classes), answers.targets, answers.predicted))


def evaluation_uri(prefix: str, job_name: str) -> str:
    return f"{prefix.rstrip('/')}/{job_name}/{EVALUATION_KEY}"


def upload_uri(prefix: str | None) -> str | None:
    """Where this job writes its evaluation beyond the model dir, given --evaluation-prefix: under
    its own name, which SageMaker (and the local engine) set in TRAINING_JOB_NAME. Checked before
    training, so that a missing name fails the job at once rather than after its epochs."""
    if not prefix:
        return None
    job_name = os.environ.get("TRAINING_JOB_NAME")
    if not job_name:
        raise TrainerError("--evaluation-prefix needs the job's name in TRAINING_JOB_NAME (SageMaker sets it)")
    return evaluation_uri(prefix, job_name)


def write_evaluation(model_dir: Path, found: dict, uri: str | None) -> None:
    """evaluation.json in the model dir and, with `uri` (upload_uri's), there too: an S3 URI
    (boto3, the job's role) or a local path (the local engine). A failed upload is a TrainerError:
    the registered version's evidence names that file, and a release without it must not go on."""
    text = json.dumps(found, indent=1) + "\n"
    (Path(model_dir) / EVALUATION_FILE).write_text(text)
    if uri is None:
        return
    if uri.startswith("s3://"):
        _upload(uri, text)
    else:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        Path(uri).write_text(text)


def _upload(uri: str, text: str) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    client = boto3.client("s3", config=Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 4, "mode": "standard"}))
    try:
        client.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="application/json")
    except (BotoCoreError, ClientError) as err:
        raise TrainerError(f"could not upload the test evaluation to {uri} (the model package's evidence needs it): {err}") from None
