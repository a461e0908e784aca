"""An isolated job has no network at all: the matrix's isolated case ran with its code from the
`code` channel (test_config_matrix, training.network_isolation[isolated]); the same request in the
old form, with the toolkit to download `sagemaker_submit_directory` from S3, fails there."""
from __future__ import annotations

import copy
import json

import pytest
from matrix_run import JobRun
from training_platform import PlatformJob

from imgclf.local.jobs import JobSpec
from infra.hyperparameters import decode, encode

#: Jobs of a matrix run take longer than the default per-test limit on 2 busy cores.
pytestmark = pytest.mark.timeout(3600)


def test_an_isolated_job_that_must_download_its_code_fails_at_the_download(matrix, platform):
    isolated: JobRun = matrix["isolated"].retrain
    assert isolated.result.status == "Completed", isolated.result.failure_reason  # the fixed form ran
    request = copy.deepcopy(matrix["isolated"].request("CreateTrainingJob"))
    request["TrainingJobName"] += "-s3code"
    code = next(c for c in request["InputDataConfig"] if c["ChannelName"] == "code")
    request["InputDataConfig"].remove(code)
    bundle_uri = code["DataSource"]["S3DataSource"]["S3Uri"]
    request["HyperParameters"].update(encode({"sagemaker_submit_directory": bundle_uri}))
    spec = JobSpec.from_training_request(request, resolve=platform.resolve)
    job = PlatformJob(spec, platform.root / "jobs" / spec.name, request, platform.s3)
    result = job.run()
    assert result.status == "Failed"
    log = job.log_path.read_text(errors="replace")
    assert "s3_download" in log and "Could not connect to the endpoint URL" in log, log[-3000:]
    assert decode(json.loads((job.dir / "input/config/hyperparameters.json").read_text())["sagemaker_submit_directory"]) == bundle_uri
