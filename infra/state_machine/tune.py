"""Tune: the hyperparameter tuning job (.sync), then its tuned values merged over the static ones."""
from __future__ import annotations

from infra import sagemaker_requests
from infra.config import Config
from infra.state_machine.deployment import Deployment, job_locations
from infra.state_machine.placeholders import bind_placeholders, dynamic, placeholder
from infra.state_machine.quotas import tuning_quota
from infra.state_machine.vocabulary import SYNC, fail_path, job_failure_states, quota_fail, sagemaker_task
from training import metrics

#: Where NameRun puts the run's epochs as a whole number (the input's or the config's).
EPOCHS_PATH = "$.epochs"


def tuning_request(cfg: Config, dep: Deployment) -> tuple[dict, dict]:
    """(task parameters, the static hyperparameters the run starts from). Hyperband's epoch budget
    is the run's epochs, like the trials' own `epochs` hyperparameter."""
    request = sagemaker_requests.tuning_job_request(cfg, job_locations(dep), placeholder("tuningjob"))
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    dynamic(request, ("TrainingJobDefinition", "StaticHyperParameters"), "$.hyperparameters.tuning")
    if "StrategyConfig" in request["HyperParameterTuningJobConfig"]:
        dynamic(request, ("HyperParameterTuningJobConfig", "StrategyConfig", "HyperbandStrategyConfig", "MaxResource"), EPOCHS_PATH)
    return bind_placeholders(request), static


def tune_states(cfg: Config, parameters: dict, after: str) -> dict:
    """The whole Describe response lands at $.tuning: BestTrainingJob is optional in it (botocore),
    and a selector on a missing member would end the run in an uncatchable States.Runtime."""
    return {
        **sagemaker_task(
            "Tune", SYNC.format("createHyperParameterTuningJob"), parameters, "BestTrainingJob?",
            failed="TuneFailed?", over_quota="TuneOverQuota", ResultPath="$.tuning",
        ),
        "TuneOverQuota": quota_fail("Tune", tuning_quota(cfg), "TrainingFailed"),
        **job_failure_states("Tune", "tuning job", "$.names.tuning_job", "HyperParameterTuningJobStatus"),
        "BestTrainingJob?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.tuning.BestTrainingJob", "IsPresent": True, "Next": "ReadTuningResult"}],
            "Default": "NoBestTrainingJob",
        },
        "NoBestTrainingJob": fail_path(
            f"States.Format('tuning job {{}} ended without a best training job: no trial reported {metrics.OBJECTIVE_METRIC}', "
            "$.names.tuning_job)",
            "TrainingFailed",
        ),
        "ReadTuningResult": {
            "Type": "Pass",
            "Parameters": {
                "best_training_job.$": "$.tuning.BestTrainingJob.TrainingJobName",
                "tuned.$": "$.tuning.BestTrainingJob.TunedHyperParameters",
            },
            "ResultPath": "$.tuning",
            "Next": "MergeHyperparameters",
        },
        "MergeHyperparameters": {
            "Type": "Pass",
            "Comment": "TunedHyperParameters holds only the tuned values: merge them over the static ones.",
            "Parameters": {"hyperparameters.$": "States.JsonMerge($.hyperparameters.training, $.tuning.tuned, false)"},
            "ResultPath": "$.final",
            "Next": after,
        },
    }
