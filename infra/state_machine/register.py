"""Register: after the gate, the run's evidence is written to S3 and the model is registered as a
version of the stack's model package group (infra/registry.py). With `release.approval` auto the
version is Approved and the run goes on to deploy it; with manual it is PendingManualApproval and
the run ends there, saying so: approving the version starts the deployment (docs/release.md)."""
from __future__ import annotations

from infra import registry
from infra.config import Config
from infra.layout import EVIDENCE_FILE, OUTPUT_PREFIX
from infra.state_machine.deployment import Deployment, job_locations
from infra.state_machine.placeholders import bind_placeholders, placeholder
from infra.state_machine.vocabulary import RETRY_S3, RETRY_SDK, SDK, call
from training.evaluation import EVALUATION_FILE, evaluation_uri

#: Where the execution ends when the version waits for a person.
AWAITING = "AwaitingApproval"


def evidence_uri(dep: Deployment) -> str:
    """The run's evidence file (a placeholder-holding URI)."""
    return f"s3://{dep.bucket_name}/{OUTPUT_PREFIX}/{placeholder('trainingjob')}/{EVIDENCE_FILE}"


def evaluation_evidence(cfg: Config, dep: Deployment) -> dict:
    """Where the retrain's test evaluation (per-class precision, recall and support, the confusion
    matrix; training/evaluation.py) lies: uploaded by the job beside the evidence file, or, for a
    network-isolated job, which cannot reach S3, only inside model.tar.gz."""
    if cfg.training.network_isolation:
        return {"evaluation_in_model_data": EVALUATION_FILE}
    return bind_placeholders({"evaluation_uri": evaluation_uri(job_locations(dep).output_uri, placeholder("trainingjob"))})


def package_request(cfg: Config, dep: Deployment) -> dict:
    """CreateModelPackage as the run sends it; its provenance is also kept as metadata, which a
    deployment of the version (infra/state_machine/input.py) reads back. Metadata values allow
    letters, digits, spaces and `_.:/=+-@` only (botocore), so the hyperparameters, JSON, stay in
    the evidence file."""
    metadata = {
        "execution": placeholder("execution"),
        "training_job": placeholder("trainingjob"),
        "tuning_job": placeholder("tuningjob"),
    }
    request = registry.model_package_request(cfg, job_locations(dep), placeholder("modeldata"), evidence_uri(dep), metadata)
    # One version per run, however often a throttled call is retried.
    return {**request, "ClientToken": placeholder("trainingjob")}


def register_states(cfg: Config, dep: Deployment, deploy: str) -> dict:
    """GatherEvidence -> WriteEvidence -> RegisterModel -> `deploy` (auto) or AwaitingApproval (manual)."""
    after = deploy if cfg.release.approval == "auto" else f"{AWAITING}Output"
    key = f"{OUTPUT_PREFIX}/{placeholder('trainingjob')}/{EVIDENCE_FILE}"
    return {
        "GatherEvidence": {
            "Type": "Pass",
            "Comment": "What the version's ModelMetrics file holds: the gate's metrics and verdicts, the tuned and final hyperparameters, provenance, and where the per-class test evaluation lies.",
            "Parameters": {
                "final_metrics.$": "$.training.metrics",
                "min_test_accuracy.$": "$.settings.min_test_accuracy",
                "tuned_hyperparameters.$": "$.tuning.tuned",
                "hyperparameters.$": "$.final.hyperparameters",
                "execution.$": "$$.Execution.Id",
                "training_job.$": "$.names.training_job",
                "tuning_job.$": "$.names.tuning_job",
                "model_data.$": "$.training.model_data",
                **evaluation_evidence(cfg, dep),
            },
            "ResultPath": "$.evidence",
            "Next": "WriteEvidence",
        },
        **call(
            "WriteEvidence", SDK.format("s3", "putObject"),
            bind_placeholders({"Bucket": dep.bucket_name, "Key": key, "ContentType": "application/json"})
            | {"Body.$": "States.JsonToString($.evidence)"},
            "RegisterModel", RETRY_S3, "RegisterFailed", ResultPath="$.responses.write_evidence",
            ResultSelector={"etag.$": "$.ETag"},
        ),
        **call(
            "RegisterModel", SDK.format("sagemaker", "createModelPackage"), bind_placeholders(package_request(cfg, dep)),
            after, RETRY_SDK, "RegisterFailed", ResultSelector={"arn.$": "$.ModelPackageArn"}, ResultPath="$.package",
        ),
        **({} if cfg.release.approval == "auto" else _awaiting_states()),
    }


def _awaiting_states() -> dict:
    return {
        f"{AWAITING}Output": {
            "Type": "Pass",
            "Parameters": {
                "status": "PendingManualApproval",
                "message": "the model passed the gate and awaits approval; approving it deploys it (imgclf models approve VERSION)",
                "model_package.$": "$.package.arn",
                "training_job.$": "$.names.training_job",
                "model_data.$": "$.training.model_data",
            },
            "Next": AWAITING,
        },
        AWAITING: {"Type": "Succeed"},
    }
