"""Ctrl-C and SIGTERM during a local run: every job is stopped (none is orphaned), finished trials
stay on disk, and --resume runs only what did not finish. Jobs are the stub trainer launched through
the real training toolkit, each epoch made slow enough to be interrupted."""
from __future__ import annotations

import _thread
import json
import threading
import time
from pathlib import Path

import pytest

from imgclf.local.jobs import INTERRUPTED, JobSpec, LocalTrainingJob
from imgclf.local.tuner import LocalTuner
from infra.config import load_config
from infra.sagemaker_requests import JobLocations, training_job_request, tuning_job_request
from processes import processes_under
from stub_trainer import write_bundle, write_splits


def _locations(tmp_path: Path) -> JobLocations:
    return JobLocations("arn:aws:iam::000000000000:role/x", str(write_bundle(tmp_path / "src")),
                        str(write_splits(tmp_path / "data")), str(tmp_path / "out"), "us-east-1")


def _config(**tuning):
    return load_config({"training": {"epochs": 3}, "tuning": {"strategy": "Random", "batch_sizes": [8, 16], **tuning}})


def _interrupt_when(ready) -> None:
    """Ctrl-C (KeyboardInterrupt in the main thread) half a second after `ready()` turns true."""
    def watch() -> None:
        deadline = time.monotonic() + 60
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        _thread.interrupt_main()

    threading.Thread(target=watch, daemon=True).start()


def test_ctrl_c_stops_every_running_trial_and_resume_reruns_only_those(tmp_path, monkeypatch):
    request = tuning_job_request(_config(max_jobs=3, max_parallel_jobs=2, early_stopping="Off"), _locations(tmp_path),
                                 "tune-int")
    lines: list[str] = []
    monkeypatch.setenv("STUB_EPOCH_SECONDS", "3")
    _interrupt_when(lambda: sum("started" in line for line in list(lines)) == 2)
    with pytest.raises(KeyboardInterrupt):
        LocalTuner(request, tmp_path / "run", progress=lines.append, cpus=2).run()
    assert processes_under(tmp_path / "run") == []
    described = [json.loads(p.read_text()) for p in sorted((tmp_path / "run" / "trials").glob("*/describe.json"))]
    assert len(described) == 2
    assert {(d["TrainingJobStatus"], d["SecondaryStatus"]) for d in described} == {("Stopped", INTERRUPTED)}

    monkeypatch.setenv("STUB_EPOCH_SECONDS", "0")
    resumed: list[str] = []
    result = LocalTuner(request, tmp_path / "run", progress=resumed.append, cpus=2).run(resume=True)
    assert [t.result.status for t in result.trials] == ["Completed"] * 3
    assert sum("started" in line for line in resumed) == 3  # the 2 interrupted trials again, and the third
    assert not any("reused" in line for line in resumed)


def test_ctrl_c_during_a_job_in_the_calling_thread_stops_its_trainer(tmp_path, monkeypatch):
    request = training_job_request(_config(), _locations(tmp_path), "final-int", {"lr": "0.001", "batch-size": "8"})
    job = LocalTrainingJob(JobSpec.from_training_request(request), tmp_path / "job")
    monkeypatch.setenv("STUB_EPOCH_SECONDS", "3")
    _interrupt_when(lambda: job.log_path.exists() and "stub trainer starting" in job.log_path.read_text())
    with pytest.raises(KeyboardInterrupt):
        job.run()
    assert processes_under(tmp_path / "job") == []
    assert job.load_result() is None  # not finished: --resume runs it again


def test_trials_never_run_more_at_once_than_max_parallel_training_jobs(tmp_path, monkeypatch):
    request = tuning_job_request(_config(max_jobs=3, max_parallel_jobs=2), _locations(tmp_path), "tune-par")
    monkeypatch.setenv("STUB_EPOCH_SECONDS", "0.5")
    result = LocalTuner(request, tmp_path / "run", progress=lambda _: None, cpus=2).run()
    spans = [(t.result.started, t.result.ended) for t in result.trials]
    overlaps = [sum(start <= at < end for start, end in spans) for at, _ in spans]
    assert max(overlaps) == 2  # two ran together, and the third waited for a free slot
    third = max(spans)
    assert sum(end <= third[0] for _, end in spans) >= 1


def test_early_stopping_stops_a_trial_that_is_worse_than_the_median_so_far(tmp_path, monkeypatch):
    # lr far from the stub's optimum (1e-3) gives a high valid_loss; Random search with seed 0 over
    # two decades each side yields trials both better and worse than the median of the first two.
    monkeypatch.setenv("STUB_EPOCH_SECONDS", "0.5")
    request = tuning_job_request(_config(max_jobs=6, max_parallel_jobs=1, lr_min=1e-5, lr_max=1e-1),
                                 _locations(tmp_path), "tune-early")
    lines: list[str] = []
    result = LocalTuner(request, tmp_path / "run", progress=lines.append, cpus=2).run()
    stopped = [t for t in result.trials if t.result.secondary_status == "EarlyStopped"]
    assert stopped, "\n".join(lines)
    for trial in stopped:
        assert trial.result.status == "Stopped"
        assert len(trial.result.metrics["valid_loss"]) < 3  # stopped before its last epoch
    assert result.best.result.status == "Completed"
