"""End to end: `imgclf local run` on the demo data, then real images through the local front door.

One run (2 trials of 1 epoch at 32 px, the retrain with the debugger) serves its model.tar.gz in the
Ray Serve container; the test POSTs test-split images over HTTP, checks the top-k JSON, stops the run
like Ctrl-C does, and checks that the report agrees with the trial logs read with the request's own
MetricDefinitions. The run starts in a folder of its own, not the project's, with every path
relative to it, as a user types them.
"""
from __future__ import annotations

import csv
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from training import evaluation
from training.metrics import parse_metrics

REPO = Path(__file__).resolve().parents[2]
#: Tuning, the retrain, then Ray Serve's start (a minute or more on 2 busy cores).
RUN_TIMEOUT_SECONDS = 900
pytestmark = pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 120)  # the shared run starts in the first test's setup
CONFIG = {
    "training": {"pretrained": "none", "unfreeze": "all", "epochs": 1, "image_size": 32},
    "tuning": {"max_jobs": 2, "max_parallel_jobs": 2, "batch_sizes": [16, 32], "lr_min": 0.003, "lr_max": 0.03},
    "debugger": {"save_interval": 4, "profile_steps": 3},
    # Rules are evaluated and reported; whether they block is tested in tests/imgclf/test_local_gate.py.
    "gate": {"min_test_accuracy": 0.0, "block_on_rules": False},
    # fp32 serving: the default int8 forward (an export per retrain) is tested through the trainer and
    # the handlers in tests/serving/test_optimized_forward.py, and through a pipeline in tests/matrix.
    "endpoint": {"optimize": "none"},
}
_FRONT_DOOR = re.compile(r"front door \(API Gateway \+ Lambda\): (http://127\.0\.0\.1:\d+)/predict")


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


@pytest.fixture(scope="module")
def served_run(demo_splits, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    (root / "config.json").write_text(json.dumps(CONFIG))
    out = root / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgclf", "local", "run", "--data", os.path.relpath(demo_splits, root),
         "--config", "config.json", "--out", "run", "--port", "0"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    printed: list[str] = []
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    url = None
    try:
        try:
            while url is None:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                if line is None:
                    pytest.fail("imgclf local run ended before serving:\n" + "".join(printed[-40:]))
                printed.append(line)
                found = _FRONT_DOOR.search(line)
                url = found.group(1) if found else None
            while not any("serving until Ctrl-C" in p for p in printed):
                printed.append(lines.get(timeout=30))
        except queue.Empty:
            pytest.fail("imgclf local run printed nothing more for too long; its last lines:\n" + "".join(printed[-40:]))
        yield {"url": url, "out": out, "printed": printed, "proc": proc, "lines": lines, "splits": demo_splits,
               "root": root}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _post(url: str, path: Path) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/predict", data=path.read_bytes(), headers={"Content-Type": "image/jpeg"},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status, json.loads(answer.read())


def test_test_images_posted_to_the_local_front_door_get_top_k_labels(served_run):
    classes = sorted(p.name for p in (served_run["splits"] / "test").iterdir() if p.is_dir())
    for label in classes:
        image = sorted((served_run["splits"] / "test" / label).iterdir())[0]
        status, answer = _post(served_run["url"], image)
        scores = [p["score"] for p in answer["predictions"]]
        assert status == 200 and len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert {p["label"] for p in answer["predictions"]} <= set(classes) and sum(scores) <= 1.0001
        assert answer["request_id"]


def test_a_run_started_outside_the_project_serves_from_its_own_relative_run_folder(served_run):
    assert (served_run["out"] / "serve" / "frontdoor.log").is_file()
    assert (served_run["out"] / "endpoint" / "container.log").is_file()
    assert not (REPO / "run").exists()


def test_the_run_prints_a_ready_to_paste_curl_line(served_run):
    curl = next(line for line in served_run["printed"] if line.strip().startswith("curl "))
    assert f"{served_run['url']}/predict" in curl and "--data-binary @" in curl


def test_the_run_prints_the_web_page_address_and_the_front_door_serves_the_page_there(served_run):
    line = next(line for line in served_run["printed"] if line.startswith("web page: "))
    assert line.split()[2] == f"{served_run['url']}/"
    with urllib.request.urlopen(f"{served_run['url']}/", timeout=30) as answer:
        assert answer.status == 200 and answer.headers.get_content_type() == "text/html"
        assert b'<meta name="imgclf-auth" content="none">' in answer.read()


def test_the_report_agrees_with_the_trial_logs_and_names_the_best_trial(served_run):
    out = served_run["out"]
    report = out / "report"
    for name in ("trials.csv", "trials.md", "best-hyperparameters.json", "loss-curves.png", "rules.json",
                 "confusion-matrix.png", "summary.md", "profiler/profiler-summary.md", "profiler/report-utilisation.png"):
        assert (report / name).is_file(), name
    request = json.loads((out / "requests" / "tuning-job.json").read_text())
    definitions = request["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]
    rows = list(csv.DictReader((report / "trials.csv").open()))
    assert len(rows) == 2
    for row in rows:
        logged = parse_metrics((out / "trials" / row["trial"] / "training.log").read_text(), definitions)
        assert float(row["valid_loss"]) == pytest.approx(logged["valid_loss"][-1], abs=1e-6)
    best = min(rows, key=lambda r: float(r["valid_loss"]))
    assert best["best"] == "yes"
    assert json.loads((report / "best-hyperparameters.json").read_text())["best_trial"] == best["trial"]
    retrain = json.loads((out / "requests" / "training-job.json").read_text())["HyperParameters"]
    assert retrain["lr"] == best["lr"] and retrain["batch-size"] == best["batch-size"]


def test_the_report_has_a_heatmap_gallery_per_class_and_the_most_confused_pairs(served_run):
    report = served_run["out"] / "report"
    classes = sorted(p.name for p in (served_run["splits"] / "test").iterdir() if p.is_dir())
    assert sorted(p.stem for p in (report / "gallery").glob("*.png")) == classes
    summary = (report / "summary.md").read_text()
    assert "## Most-confused pairs (test split, served model)" in summary
    assert all(f"![{name}](gallery/{name}.png)" in summary for name in classes)


def test_the_served_model_is_the_packed_model_tar_in_ray_serve(served_run):
    tar = next((served_run["out"] / "jobs").glob("*/output/model.tar.gz"))
    model = json.loads((served_run["out"] / "requests" / "model.json").read_text())
    assert model["PrimaryContainer"]["ModelDataUrl"] == str(tar)
    with tarfile.open(tar) as packed:
        assert {"config.yaml", "deployment.py", "model.pth", "code/inference.py"} <= set(packed.getnames())
    assert any(line.startswith("model container: Ray Serve on http://127.0.0.1:") for line in served_run["printed"])


def test_ctrl_c_stops_the_servers_cleanly(served_run):
    proc = served_run["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    rest = []
    while (line := served_run["lines"].get(timeout=10)) is not None:
        rest.append(line)
    assert any("stopped: model container, endpoint and front door shut down" in line for line in rest)


def test_the_gated_model_is_registered_as_the_served_approved_version_with_its_evidence(served_run):
    """The local registry (docs/release.md#locally): version 1, Approved (release.approval auto),
    recorded as served, holding the packed model and the served model's per-class figures."""
    from imgclf.local import registry

    root = served_run["root"] / "registry"
    (version,) = registry.versions(root)
    assert (version["version"], version["approval"], registry.serving(root)) == (1, "Approved", 1)
    evidence = version["evidence"]
    tar = served_run["out"] / "jobs" / evidence["training_job"] / "output" / "model.tar.gz"
    assert registry.approved_model(root, 1).read_bytes() == tar.read_bytes()
    served = json.loads((served_run["out"] / "report" / "confusion-matrix.json").read_text())
    assert evidence["evaluation"] == evaluation.summary(served["classes"], served["matrix"])
    assert sorted(evidence["evaluation"]["per_class"]) == sorted(p.name for p in (served_run["splits"] / "test").iterdir())
    # The retrain wrote the same kind of file where the cloud job uploads it (training/evaluation.py).
    written = json.loads((served_run["out"] / "jobs" / evidence["training_job"] / evaluation.EVALUATION_KEY).read_text())
    tested = sum(1 for p in (served_run["splits"] / "test").rglob("*") if p.is_file())
    assert written["classes"] == served["classes"] and sum(map(sum, written["confusion_matrix"])) == tested
    assert evidence["final_metrics"]["test_acc"] >= CONFIG.get("gate", {}).get("min_test_accuracy", 0)
    assert any(f"registered and approved version 1 in {root}" in line for line in served_run["printed"])
