"""The local tuner runs what the tuning request says, through the real training toolkit."""
from __future__ import annotations

import json
import math

import pytest

from imgclf.errors import UserError
from imgclf.local.tuner import LocalTuner
from infra.config import load_config
from infra.hyperparameters import RETRAIN_ONLY
from infra.sagemaker_requests import JobLocations, tuning_job_request
from stub_trainer import CRASH_BATCH, expected_valid_loss, read_hyperparameters, write_bundle, write_splits


def _request(tmp_path, **tuning):
    cfg = load_config({"training": {"epochs": 2}, "tuning": {"strategy": "Random", "max_jobs": 3, "max_parallel_jobs": 2,
                                                             "batch_sizes": [8, 16], **tuning}})
    loc = JobLocations("arn:aws:iam::000000000000:role/x", str(write_bundle(tmp_path / "src")),
                       str(write_splits(tmp_path / "data")), str(tmp_path / "out"), "us-east-1")
    return tuning_job_request(cfg, loc, "tune-test")


def _run(tmp_path, request, resume=False):
    lines: list[str] = []
    result = LocalTuner(request, tmp_path / "run", progress=lines.append, cpus=2).run(resume=resume)
    return result, lines


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One tuning run shared by the tests that only read it: 4 trials, some of them crashing."""
    tmp_path = tmp_path_factory.mktemp("tuning")
    request = _request(tmp_path, batch_sizes=[int(CRASH_BATCH), 16], max_jobs=4)
    result, lines = _run(tmp_path, request)
    return tmp_path, request, result, lines


def test_each_trial_gets_an_opt_ml_job_folder_with_the_requests_hyperparameters(shared):
    tmp_path, request, result, _ = shared
    trial = result.trials[0]
    folder = tmp_path / "run" / "trials" / trial.name
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    expected = {**static, **trial.tuned, "_tuning_objective_metric": "valid_loss"}
    assert read_hyperparameters(folder) == expected
    assert not RETRAIN_ONLY & read_hyperparameters(folder).keys()  # the same table the cloud's trials leave out
    resources = json.loads((folder / "input/config/resourceconfig.json").read_text())
    assert resources["current_host"] == "algo-1" and resources["hosts"] == ["algo-1"]
    assert set(json.loads((folder / "input/config/inputdataconfig.json").read_text())) == {"train", "valid", "test"}
    assert (folder / "input/data/train").resolve() == (tmp_path / "data/train").resolve()
    assert "stub trainer starting" in (folder / "training.log").read_text()


def test_the_best_trial_has_the_lowest_final_objective_in_the_trial_logs(shared):
    tmp_path, _, result, _ = shared
    finals = {t.name: expected_valid_loss(float(t.tuned["lr"]), 2) for t in result.trials if t.result.status == "Completed"}
    assert result.best.name == min(finals, key=finals.get)
    assert result.best.result.final_metric("valid_loss") == pytest.approx(finals[result.best.name], abs=1e-5)
    described = json.loads((tmp_path / "run" / "tuning.json").read_text())
    assert described["BestTrainingJob"]["TrainingJobName"] == result.best.name


def test_learning_rates_follow_the_range_in_the_config(tmp_path):
    result, _ = _run(tmp_path, _request(tmp_path, lr_min=0.2, lr_max=0.3, max_jobs=2, max_parallel_jobs=2))
    assert all(0.2 <= float(t.tuned["lr"]) <= 0.3 for t in result.trials)
    assert {t.tuned["batch-size"] for t in result.trials} <= {"8", "16"}


def test_a_changed_metric_regex_changes_the_objective_the_tuner_reads(tmp_path):
    request = _request(tmp_path, max_jobs=2, max_parallel_jobs=2)
    for definition in request["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]:
        if definition["Name"] == "valid_loss":
            definition["Regex"] = definition["Regex"].replace("valid_loss", "train_loss")
    result, _ = _run(tmp_path, request)
    for t in result.trials:
        assert t.result.final_metric("valid_loss") == pytest.approx(expected_valid_loss(float(t.tuned["lr"]), 2) + 0.5, abs=1e-5)


def test_a_crashing_trial_is_failed_with_its_log_tail_and_the_others_go_on(shared):
    _, _, result, lines = shared
    failed = [t for t in result.trials if t.result.status == "Failed"]
    completed = [t for t in result.trials if t.result.status == "Completed"]
    assert failed and completed and len(result.trials) == 4
    assert all(t.tuned["batch-size"] == CRASH_BATCH for t in failed)
    assert failed[0].result.error_line() == "simulated crash: CUDA out of memory (stub)"
    assert any("simulated crash" in line for line in failed[0].result.log_tail)
    assert any(f"[{failed[0].name}] Failed" in line and "simulated crash" in line for line in lines)


def test_all_trials_failing_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"(?s)no trial completed.*simulated crash"):
        _run(tmp_path, _request(tmp_path, batch_sizes=[int(CRASH_BATCH)], max_jobs=1, max_parallel_jobs=1))


def test_resume_reuses_finished_trials_and_runs_only_the_rest(tmp_path):
    first, _ = _run(tmp_path, _request(tmp_path, max_jobs=1, max_parallel_jobs=1))
    second, lines = _run(tmp_path, _request(tmp_path, max_jobs=2, max_parallel_jobs=1), resume=True)
    assert [t.name for t in second.trials[:1]] == [t.name for t in first.trials]
    assert sum("reused" in line for line in lines) == 1
    assert sum("started" in line for line in lines) == 1


def test_a_second_run_into_the_same_folder_needs_resume(shared):
    tmp_path, request, _, _ = shared
    with pytest.raises(UserError, match="--resume"):
        _run(tmp_path, request)


def test_progress_has_one_line_per_trial_and_epoch(shared):
    _, _, result, lines = shared
    for t in result.trials:
        if t.result.status != "Completed":
            continue
        assert sum(line.startswith(f"[{t.name}] epoch ") for line in lines) == 2
    assert math.isfinite(result.best.result.final_metric("valid_loss"))
