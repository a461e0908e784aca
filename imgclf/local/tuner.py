"""The hyperparameter-tuning job, run locally from a CreateHyperParameterTuningJob request.

Samples the request's ranges with Optuna (search_space.py), runs up to MaxParallelTrainingJobs
trials at once as local training jobs (jobs.py), reports each epoch's objective to the early-stopping
rule, and ends with a DescribeHyperParameterTuningJob-shaped summary (`tuning.json`) whose
BestTrainingJob.TunedHyperParameters the final retrain merges over the static ones, as the state
machine does. A new trial is sampled only when a slot frees, so the Bayesian sampler learns from
the trials that finished. Each trial folder keeps `trial.json` (its sampled values) and, once it
ends, `describe.json`: `--resume` re-adds finished trials to the study and reruns interrupted ones in
their own folder, where the trainer resumes from its checkpoint.
"""
from __future__ import annotations

import json
import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState

from imgclf.errors import UserError
from imgclf.local import search_space
from imgclf.local.jobs import INTERRUPTED, JobGroup, JobResult, JobSpec, LocalTrainingJob, epoch_line
from infra import hyperparameters as codec

#: Secondary status of a trial stopped by the early-stopping rule.
EARLY_STOPPED = "EarlyStopped"

Progress = Callable[[str], None]


@dataclass
class TrialRecord:
    number: int
    name: str
    params: dict  # Optuna's sampled values
    tuned: dict[str, str]  # what the trainer gets
    result: JobResult | None = None


@dataclass
class TuningResult:
    objective: str
    direction: str
    trials: list[TrialRecord]
    best: TrialRecord

    def describe(self, request: dict) -> dict:
        counters = {s: 0 for s in ("Completed", "InProgress", "RetryableError", "NonRetryableError", "Stopped")}
        for t in self.trials:
            status = t.result.status if t.result else "InProgress"
            counters["NonRetryableError" if status == "Failed" else status] += 1
        value = self.best.result.final_metric(self.objective)
        return {
            "HyperParameterTuningJobName": request["HyperParameterTuningJobName"],
            "HyperParameterTuningJobStatus": "Completed",
            "HyperParameterTuningJobConfig": request["HyperParameterTuningJobConfig"],
            "TrainingJobStatusCounters": counters,
            "BestTrainingJob": {
                "TrainingJobName": self.best.name,
                "TunedHyperParameters": self.best.tuned,
                "TrainingJobStatus": self.best.result.status,
                "FinalHyperParameterTuningJobObjectiveMetric": {
                    "Type": self.direction,
                    "MetricName": self.objective,
                    "Value": value,
                },
            },
        }


class LocalTuner:
    def __init__(self, request: dict, run_dir: Path, progress: Progress = print, seed: int | None = 0,
                 cpus: int | None = None) -> None:
        self.request = request
        self.name = request["HyperParameterTuningJobName"]
        config = request["HyperParameterTuningJobConfig"]
        self.objective = config["HyperParameterTuningJobObjective"]["MetricName"]
        self.direction = config["HyperParameterTuningJobObjective"]["Type"]
        limits = config["ResourceLimits"]
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.params = search_space.parameters(request)
        self.max_jobs = int(limits["MaxNumberOfTrainingJobs"])
        if config["Strategy"] == "Grid":
            self.max_jobs = min(self.max_jobs, search_space.grid_size(self.params))
        self.parallel = min(int(limits["MaxParallelTrainingJobs"]), self.max_jobs)
        self.threads = max(1, (cpus or os.cpu_count() or 1) // self.parallel)
        self.trials_dir = Path(run_dir) / "trials"
        self.progress = progress
        self.study = optuna.create_study(
            direction="minimize" if self.direction == "Minimize" else "maximize",
            sampler=search_space.sampler(request, self.params, seed),
            pruner=search_space.pruner(request),
        )
        self._lock = threading.Lock()
        self._group = JobGroup()
        self._epochs = codec.decode(request["TrainingJobDefinition"]["StaticHyperParameters"].get("epochs", '"?"'))

    @property
    def distributions(self) -> dict:
        return {p.name: p.distribution for p in self.params}

    def run(self, resume: bool = False) -> TuningResult:
        records, to_rerun = self._load_previous() if resume else ([], [])
        if not resume and self.trials_dir.exists() and any(self.trials_dir.iterdir()):
            raise UserError(f"{self.trials_dir} already holds trials; use --resume to reuse them or a new --out")
        self.trials_dir.mkdir(parents=True, exist_ok=True)
        next_number = len(records) + len(to_rerun) + 1
        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="trial")
        running: dict[Future, TrialRecord] = {}
        try:
            while len(records) < self.max_jobs:
                while len(running) < self.parallel and len(records) + len(running) < self.max_jobs:
                    if to_rerun:
                        number, params = to_rerun.pop(0)
                    else:
                        number, params = next_number, None
                        next_number += 1
                    record, trial = self._ask(number, params)
                    running[pool.submit(self._run_trial, record, trial)] = record
                done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    records.append(running.pop(future))
                    future.result()
        except BaseException:
            self._group.stop_all(INTERRUPTED)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return self._finish(sorted(records, key=lambda r: r.number))

    # ----- trials -----
    def _ask(self, number: int, params: dict | None) -> tuple[TrialRecord, optuna.Trial]:
        with self._lock:
            if params is not None:
                self.study.enqueue_trial(params)
            trial = self.study.ask(self.distributions)
        tuned = {p.name: p.to_hyperparameter(trial.params[p.name]) for p in self.params}
        record = TrialRecord(number, f"{self.name}-{number:03d}", dict(trial.params), tuned)
        folder = self.trials_dir / record.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "trial.json").write_text(json.dumps({"number": number, "params": record.params, "tuned": tuned}) + "\n")
        return record, trial

    def _run_trial(self, record: TrialRecord, trial: optuna.Trial) -> None:
        spec = JobSpec.from_tuning_request(self.request, record.name, record.tuned)
        job = LocalTrainingJob(spec, self.trials_dir / record.name, threads=self.threads, group=self._group)
        shown = " ".join(f"{k}={v}" for k, v in record.tuned.items())
        self.progress(f"[{record.name}] started: {shown}")
        reported = 0

        def on_metrics(metrics: dict[str, list[float]]) -> None:
            nonlocal reported
            values = metrics.get(self.objective, [])
            if len(values) == reported:
                return
            reported = len(values)
            self.progress(epoch_line(record.name, metrics, reported, self._epochs))
            with self._lock:
                trial.report(values[-1], reported)
                prune = trial.should_prune()
            if prune:
                job.stop(EARLY_STOPPED)

        record.result = job.run(on_metrics)
        self._tell(record, trial)
        self.progress(self._summary_line(record))

    def _tell(self, record: TrialRecord, trial: optuna.Trial | int) -> None:
        result = record.result
        value = result.final_metric(self.objective)
        with self._lock:
            if result.status == "Completed" and value is not None:
                self.study.tell(trial, value)
            elif result.secondary_status == EARLY_STOPPED:
                self.study.tell(trial, state=TrialState.PRUNED)
            else:
                self.study.tell(trial, state=TrialState.FAIL)

    def _summary_line(self, record: TrialRecord) -> str:
        r = record.result
        head = f"[{record.name}] {r.status} in {r.duration:.0f} s"
        if r.status == "Failed":
            tail = "\n".join(f"    | {line}" for line in r.log_tail)
            return f"{head}: {r.error_line()}\n{tail}"
        value = r.final_metric(self.objective)
        if r.status == "Completed" and value is None:
            return f"{head}, but it reported no {self.objective}"
        shown = f"{self.objective}={value:.4f}" if value is not None else f"no {self.objective}"
        return f"{head} ({r.secondary_status}): {shown}" if r.status == "Stopped" else f"{head}: {shown}"

    # ----- resume and result -----
    def _load_previous(self) -> tuple[list[TrialRecord], list[tuple[int, dict]]]:
        """Finished trials go back into the study; interrupted ones are run again."""
        finished: list[TrialRecord] = []
        to_rerun: list[tuple[int, dict]] = []
        for folder in sorted(self.trials_dir.glob(f"{self.name}-*")):
            meta_path = folder / "trial.json"
            if not meta_path.exists():
                continue
            meta = json.loads(meta_path.read_text())
            record = TrialRecord(meta["number"], folder.name, meta["params"], meta["tuned"])
            record.result = LocalTrainingJob(JobSpec.from_tuning_request(self.request, folder.name, record.tuned), folder).load_result()
            if record.result is None or record.result.secondary_status == INTERRUPTED:
                to_rerun.append((record.number, record.params))
                continue
            intermediate = dict(enumerate(record.result.metrics.get(self.objective, []), start=1))
            value = record.result.final_metric(self.objective)
            state = TrialState.COMPLETE if record.result.status == "Completed" and value is not None else (
                TrialState.PRUNED if record.result.secondary_status == EARLY_STOPPED else TrialState.FAIL
            )
            self.study.add_trial(
                optuna.trial.create_trial(
                    state=state,
                    value=value if state == TrialState.COMPLETE else None,
                    params=record.params,
                    distributions=self.distributions,
                    intermediate_values=intermediate,
                )
            )
            finished.append(record)
            self.progress(f"[{record.name}] reused: {record.result.status}")
        return finished[: self.max_jobs], to_rerun

    def _finish(self, records: list[TrialRecord]) -> TuningResult:
        scored = [
            r for r in records if r.result.status == "Completed" and r.result.final_metric(self.objective) is not None
        ]
        if not scored:
            reasons = "\n".join(
                f"  {r.name}: {r.result.status}: {r.result.error_line()}"
                for r in records
            )
            raise UserError(
                f"tuning job {self.name} failed: no trial completed with a {self.objective} value\n{reasons}\n"
                f"trial logs: {self.trials_dir}/*/training.log"
            )
        pick = min if self.direction == "Minimize" else max
        best = pick(scored, key=lambda r: r.result.final_metric(self.objective))
        result = TuningResult(self.objective, self.direction, records, best)
        (self.trials_dir.parent / "tuning.json").write_text(json.dumps(result.describe(self.request), indent=2) + "\n")
        return result
