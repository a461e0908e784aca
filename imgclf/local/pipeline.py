"""The state machine's steps, executed locally: Tune -> Retrain -> Gate -> package the model.

Requests come from infra/sagemaker_requests.py exactly as the state machine embeds them; the final retrain
gets the best trial's TunedHyperParameters merged over the static ones by the same builder.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from imgclf.errors import UserError
from imgclf.local.deploy import start_container
from imgclf.local.endpoint import model_dir_from
from imgclf.local.gate import gate_failure, rules_with_issues
from imgclf.local.jobs import JobSpec, LocalTrainingJob, epoch_line
from imgclf.local.container import Container
from imgclf.local.report import write_report
from imgclf.local.tuner import LocalTuner
from infra import hyperparameters as codec

ROLE_ARN = "arn:aws:iam::000000000000:role/imgclf-local"
REGION = "us-east-1"


@dataclass
class PipelineResult:
    """What `imgclf local run` serves next: the unpacked model dir, the started model container
    serving it, and a test image for the printed example request."""

    model_dir: Path
    container: Container
    sample_image: Path | None


def locations(out: Path, splits: Path):
    from infra.sagemaker_requests import JobLocations
    from infra.source_bundle import build_source_bundle

    bundle = build_source_bundle(out / "source")
    return JobLocations(role_arn=ROLE_ARN, source_bundle_uri=str(bundle.resolve()), data_uri=str(splits.resolve()),
                        output_uri=str((out / "jobs").resolve()), region=REGION)


def job_names(cfg, out: Path, resume: bool) -> dict[str, str]:
    """Names fixed at the first run (run.json), so --resume finds its jobs again."""
    path = out / "run.json"
    if resume and path.exists():
        return json.loads(path.read_text())
    # SageMaker job names allow letters, digits and single dashes: a folder like `my run.2` is fine.
    stamp = re.sub(r"[^a-zA-Z0-9]+", "-", out.resolve().name)[-15:].strip("-") or "run"
    tuning = f"{cfg.name}-{stamp}"[:32].rstrip("-")
    names = {"tuning": tuning, "training": f"{tuning}-final", "model": f"{tuning}-model"}
    path.write_text(json.dumps(names, indent=2) + "\n")
    return names


def run_pipeline(cfg, out: Path, splits: Path, resume: bool = False, cpus: int = 1, progress=print) -> PipelineResult:
    from infra.sagemaker_requests import model_request, training_job_request, tuning_job_request

    out = Path(out)
    loc = locations(out, splits)
    names = job_names(cfg, out, resume)

    # Tune
    tuning_request = tuning_job_request(cfg, loc, names["tuning"])
    (out / "requests").mkdir(exist_ok=True)
    _save(out / "requests" / "tuning-job.json", tuning_request)
    progress(f"tuning job {names['tuning']}: {cfg.tuning.max_jobs} trial(s), {cfg.tuning.max_parallel_jobs} at a time, "
             f"strategy {cfg.tuning.strategy}, early stopping {cfg.tuning.early_stopping}")
    tuning = LocalTuner(tuning_request, out, progress=progress, cpus=cpus).run(resume=resume)
    best = tuning.best
    progress(f"best trial {best.name}: {tuning.objective}={best.result.final_metric(tuning.objective):.4f} "
             + " ".join(f"{k}={v}" for k, v in best.tuned.items()))

    # Retrain (debugger on; managed Debugger needs AWS's rule containers, so locally it runs portable)
    request = training_job_request(cfg, loc, names["training"], best.tuned)
    if codec.decode(request["HyperParameters"]["debugger"]) == "managed":
        progress("debugger mode 'managed' runs as 'portable' locally (the rule containers are AWS's)")
        request["HyperParameters"].update(codec.encode({"debugger": "portable"}))
    retrain = codec.decoded(request["HyperParameters"])  # what the trainer is started with
    _save(out / "requests" / "training-job.json", request)
    job = LocalTrainingJob(JobSpec.from_training_request(request), out / "jobs" / names["training"], threads=cpus)
    final = job.load_result() if resume else None
    if final is None or final.status != "Completed":
        progress(f"[{names['training']}] retraining with the best hyperparameters")
        final = job.run(_epoch_printer(names["training"], tuning.objective, retrain.get("epochs", "?"), progress))
    if final.status != "Completed":
        tail = "\n".join(f"    | {line}" for line in final.log_tail)
        raise UserError(f"training job {final.name} {final.status}: {final.failure_reason.strip()}\n{tail}\n"
                        f"log: {job.log_path}")
    progress(f"[{final.name}] Completed in {final.duration:.0f} s: test_acc={final.final_metric('test_acc')}")

    # Gate: a refused model is reported (without the served confusion matrix) and never deployed
    final_metrics = {name: values[-1] for name, values in final.metrics.items()}
    refused = gate_failure(cfg, retrain["debugger"], final_metrics)
    report_args = (out / "report", tuning, final, job.output_data_dir, retrain, refused)
    if refused:
        write_report(*report_args)
        raise UserError(f"gate failed: {refused}; nothing deployed. Report: {out / 'report' / 'summary.md'}")
    progress(f"gate passed: test_acc {final_metrics['test_acc']:.4f} >= {cfg.gate.min_test_accuracy}")
    flagged = rules_with_issues(final_metrics)
    if flagged:
        progress(f"warning: rule(s) {', '.join(flagged)} found issues (gate.block_on_rules is off); see the report")

    # Package as SageMaker does, then serve it in the endpoint's container; the report's confusion
    # matrix comes from that served model
    model_tar = job.pack_model()
    model = model_request(cfg, loc, names["model"], str(model_tar))
    _save(out / "requests" / "model.json", model)
    model_dir = model_dir_from(model_tar, out / "endpoint" / "model")
    container = start_container(cfg, model_dir, model["PrimaryContainer"]["Environment"], out / "endpoint", progress)
    try:
        write_report(*report_args, service=container, test_dir=splits / "test")
        evidence = {"final_metrics": final_metrics, "min_test_accuracy": cfg.gate.min_test_accuracy,
                    "tuned_hyperparameters": best.tuned, "hyperparameters": retrain, "training_job": final.name,
                    "tuning_job": names["tuning"], "run": str(out.resolve())}
        _register(cfg, out, model_tar, evidence, progress)
    except BaseException:
        container.stop()
        raise
    return PipelineResult(model_dir, container, _sample_image(splits / "test"))


def _register(cfg, out: Path, model_tar: Path, evidence: dict, progress) -> None:
    """The gated model as a version of the local registry, with the served model's per-class
    figures; an Approved version is recorded as the one served."""
    from imgclf.local import registry
    from training.evaluation import summary

    confusion = json.loads((out / "report" / "confusion-matrix.json").read_text())
    # The same figures, by the same code, as the retrain's evaluation.json (training/evaluation.py).
    evidence["evaluation"] = summary(confusion["classes"], confusion["matrix"])
    root = registry.default_root(out)
    number = registry.register(root, cfg.release.approval, model_tar, evidence)
    if cfg.release.approval == "auto":
        registry.mark_serving(root, number)
        progress(f"registered and approved version {number} in {root}")
    else:
        progress(f"registered version {number} in {root}, awaiting approval: imgclf models approve {number} --local {root}; "
                 f"then imgclf local serve --version {number} --registry {root}")


def _epoch_printer(name: str, objective: str, epochs: str, progress):
    reported = 0

    def on_metrics(metrics: dict[str, list[float]]) -> None:
        nonlocal reported
        count = len(metrics.get(objective, []))
        if count > reported:
            reported = count
            progress(epoch_line(name, metrics, count, epochs))

    return on_metrics


def _sample_image(test_dir: Path) -> Path | None:
    for path in sorted(test_dir.rglob("*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            return path.resolve()
    return None


def _save(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
