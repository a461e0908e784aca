"""A network-isolated config runs locally too: its job reads the source bundle from the `code`
channel, as SageMaker gives it to an isolated job, through the real training toolkit."""
from __future__ import annotations

import json

from imgclf.local.jobs import JobSpec, LocalTrainingJob
from infra.config import load_config
from infra.hyperparameters import decode
from infra.sagemaker_requests import JobLocations, training_job_request
from stub_trainer import write_bundle, write_splits

ISOLATED = {
    "training_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainer:1",
    "training": {"network_isolation": True, "pretrained": "none", "unfreeze": "all", "epochs": 1},
}


def test_an_isolated_job_runs_from_the_bundle_in_its_code_channel(tmp_path):
    bundle = write_bundle(tmp_path / "src")
    loc = JobLocations("arn:aws:iam::000000000000:role/x", str(bundle), str(write_splits(tmp_path / "data")),
                       str(tmp_path / "out"), "us-east-1")
    request = training_job_request(load_config(ISOLATED), loc, "isolated-1", {"lr": "0.001", "batch-size": "8"})
    job = LocalTrainingJob(JobSpec.from_training_request(request), tmp_path / "job")
    result = job.run()
    assert result.status == "Completed", job.log_path.read_text()
    in_channel = tmp_path / "job" / "input" / "data" / "code" / bundle.name
    assert in_channel.resolve() == bundle.resolve()
    written = json.loads((tmp_path / "job" / "input" / "config" / "hyperparameters.json").read_text())
    # The request names the container's path; in the job folder, which stands for /opt/ml, the same file.
    assert decode(request["HyperParameters"]["sagemaker_submit_directory"]) == f"/opt/ml/input/data/code/{bundle.name}"
    assert decode(written["sagemaker_submit_directory"]) == str((tmp_path / "job").resolve() / "input/data/code" / bundle.name)
    assert (tmp_path / "job" / "code" / "training" / "train.py").is_file()  # the toolkit extracted it
