"""Data-parallel training: train.py under torchrun, started the ways SageMaker starts it.

- One instance, two processes: through the real sagemaker-training toolkit and the PyTorch
  container's framework module (sagemaker_pytorch_container.training), which pick sagemaker-training's
  TorchDistributedRunner for the `sagemaker_torch_distributed_enabled` hyperparameter. Without GPUs
  the toolkit starts one process per host; `sagemaker_mpi_num_of_processes_per_host` is the
  toolkit's own setting for more (it is what a 2-GPU instance gets by counting its GPUs).
- Two instances: two torchrun agents meeting at a rendezvous on loopback, each with its own job
  folder, as two instances have.
Every run uses one thread per process (torchrun's default with several processes), so that runs
differ only in what the test changes, and ResNet-18 at 32 px, the quickest backbone to train.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from smdebug.core.modes import ModeKeys
from smdebug.trials import create_trial

from trainer_samples import TRAIN_SCRIPT, trainer_command, trainer_env
from test_toolkit_launch import make_job, run_toolkit, source_bundle  # noqa: F401 - fixture
from training.instrumentation import TRIAL_DIR
from training.output_files import DEBUGGER_REPORT

#: The module's fixtures train several models in the first test that uses them.
pytestmark = pytest.mark.timeout(1800)
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
#: Only the head trains: BatchNorm keeps its running statistics, so two ranks at batch 2 compute
#: exactly what one process computes at batch 4, up to the order of float32 additions. 32 train and
#: 32 valid images: 8 TRAIN and 8 EVAL steps per epoch, enough for every rule to reach a verdict.
HEAD = {"arch": "resnet18", "unfreeze": "head", "epochs": "2", "batch-size": "4", "lr": "0.001", "seed": "3",
        "debugger": "portable", "save-interval": "500", "profile-steps": "2"}
#: Every layer trains: each rank normalises its own half of the batch (BatchNorm's statistics over
#: 4 images instead of 8), the one difference from one process at the same global batch.
ALL = ("--arch", "resnet18", "--unfreeze", "all", "--epochs", "1", "--batch-size", "8", "--optimizer", "adamw", "--lr", "0.001",
       "--debugger", "off")
#: The head-only runs agree to float32 rounding: the all-reduce adds the ranks' gradient sums
#: where one process adds all terms at once (about 1e-7 relative per step). 1e-5 leaves room for
#: that to compound over 16 steps, and is far below any real difference (a wrong shard, a
#: gradient averaged twice, or a loss over one rank's images only changes these by percents).
EXACT = 1e-5


def metric_lines(stdout: str) -> list[str]:
    return re.findall(r"^(?:epoch=\d+ |test_loss=).*$", stdout, re.M)


def metric_values(stdout: str) -> dict[str, list[float]]:
    """Each metric's values in order: train_loss, valid_loss, ... per epoch, then test_loss, test_acc."""
    values: dict[str, list[float]] = {}
    for line in metric_lines(stdout):
        for name, value in re.findall(r"(\w+)=([-+\d.e]+|nan|inf)", line):
            if name != "epoch":
                values.setdefault(name, []).append(float(value))
    return values


def flat(values: dict[str, list[float]]) -> list[float]:
    return [v for name in sorted(values) for v in values[name]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flags(values: dict[str, str]) -> list[str]:
    return [token for name, value in values.items() for token in (f"--{name}", value)]


def verdicts(job: Path) -> dict[str, str]:
    report = json.loads((job / "output" / "data" / DEBUGGER_REPORT).read_text())
    return {r["rule"]: r["status"] for r in report["rules"]}


def loss_steps(checkpoints: Path) -> dict[str, list[int]]:
    trial = create_trial(str(checkpoints / TRIAL_DIR))
    loss = trial.tensor("CrossEntropyLoss_output_0")
    return {mode.name: loss.steps(mode=mode) for mode in (ModeKeys.TRAIN, ModeKeys.EVAL)}


def run(command: list[str], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(command, cwd=cwd, env={**trainer_env(), **ONE_THREAD, **env}, capture_output=True,
                          text=True, timeout=timeout)


def torchrun(*launch: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launch, str(TRAIN_SCRIPT)]


def script_args(command: list[str]) -> list[str]:
    """The trainer's arguments of a trainer_command (everything after the script)."""
    return command[command.index(str(TRAIN_SCRIPT)) + 1:]


# --- one instance, two processes, through the toolkit ------------------------------------------

@pytest.fixture(scope="module")
def single_head(small_splits: Path, tmp_path_factory: pytest.TempPathFactory):
    job = tmp_path_factory.mktemp("single-head")
    result = run(trainer_command(small_splits, job, *flags(HEAD)), job)
    assert result.returncode == 0, result.stderr[-3000:]
    return job, result


@pytest.fixture(scope="module")
def toolkit_head(small_splits: Path, source_bundle: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    base = make_job(tmp_path_factory.mktemp("toolkit-ddp") / "opt_ml", small_splits, source_bundle, **HEAD,
                    sagemaker_torch_distributed_enabled="true", sagemaker_mpi_num_of_processes_per_host="2")
    result = run_toolkit(base, SAGEMAKER_TRAINING_MODULE="sagemaker_pytorch_container.training:main",
                         PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                         PET_MASTER_PORT=str(free_port()), **ONE_THREAD)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return base, result


def test_the_toolkit_starts_two_ranks_through_torchrun_and_reports_success(toolkit_head):
    base, result = toolkit_head
    assert "torchrun --nnodes 1 --nproc_per_node 2 training/train.py" in result.stdout + result.stderr
    assert "2 process(es), global batch 4" in result.stdout
    assert (base / "output" / "success").exists()


def test_two_ranks_at_batch_2_train_as_one_process_at_batch_4(single_head, toolkit_head):
    (_, single), (_, ranks) = single_head, toolkit_head
    expected, got = metric_values(single.stdout), metric_values(ranks.stdout)
    assert got.keys() == expected.keys() and len(got["train_loss"]) == 2 and len(got["test_acc"]) == 1
    assert all(math.isclose(g, e, rel_tol=EXACT, abs_tol=EXACT) for g, e in zip(flat(got), flat(expected), strict=True)), (
        got, expected)


def test_only_rank_0_prints_metrics_and_writes_the_model_once(toolkit_head):
    base, result = toolkit_head
    lines = metric_lines(result.stdout)
    assert len(lines) == len(set(lines)) == 3
    assert result.stdout.count("model written to") == 1
    assert {"model.pth", "classes.json", "model-meta.json"} <= {p.name for p in (base / "model").iterdir()}
    assert sorted(p.name for p in (base / "checkpoints").glob("checkpoint-*.pth")) == [
        "checkpoint-0001.pth", "checkpoint-0002.pth"]


def test_rank_0_evaluates_and_baselines_the_whole_test_split_not_its_share(toolkit_head, small_splits: Path):
    base, _ = toolkit_head
    tested = sum(1 for p in (small_splits / "test").rglob("*") if p.is_file())
    evaluation = json.loads((base / "model" / "evaluation.json").read_text())
    baseline = json.loads((base / "model" / "monitoring-baseline.json").read_text())
    assert sum(map(sum, evaluation["confusion_matrix"])) == baseline["count"] == tested


def test_the_debugger_records_on_rank_0_the_steps_and_verdicts_of_one_process(single_head, toolkit_head):
    (single_job, _), (base, _) = single_head, toolkit_head
    assert loss_steps(base / "checkpoints") == loss_steps(single_job / "checkpoints") == {
        "TRAIN": list(range(16)), "EVAL": list(range(16))}
    assert verdicts(base) == verdicts(single_job)
    assert "NoVerdict" not in verdicts(base).values() and "Error" not in verdicts(base).values()
    assert [n for n in os.listdir(base / "checkpoints" / TRIAL_DIR / "collections" / "000000000")] == [
        "worker_0_collections.json"]


# --- two instances: a two-node rendezvous on loopback ----------------------------------------

def _start_node(node: int, nodes: int, port: int, splits: Path, job: Path, *extra: str) -> subprocess.Popen:
    job.mkdir(parents=True, exist_ok=True)
    launch = ("--nnodes", str(nodes), "--nproc_per_node", "1", "--node_rank", str(node),
              "--master_addr", "127.0.0.1", "--master_port", str(port))
    command = torchrun(*launch) + script_args(trainer_command(splits, job, *ALL, *extra))
    return subprocess.Popen(command, cwd=job, env={**trainer_env(), **ONE_THREAD}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def two_nodes(small_splits: Path, tmp_path_factory: pytest.TempPathFactory):
    root, port = tmp_path_factory.mktemp("two-nodes"), free_port()
    nodes = [_start_node(n, 2, port, small_splits, root / f"node{n}") for n in (0, 1)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    for node, (out, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, out[-2000:] + err[-3000:]
    return root, [out for out, _ in outputs]


@pytest.fixture(scope="module")
def single_all(small_splits: Path, tmp_path_factory: pytest.TempPathFactory):
    """One process, same flags; and one with another seed, whose distance is the noise floor."""
    results = {}
    for seed in ("0", "1"):
        job = tmp_path_factory.mktemp(f"single-all-{seed}")
        results[seed] = run(trainer_command(small_splits, job, *ALL, "--seed", seed), job)
        assert results[seed].returncode == 0, results[seed].stderr[-3000:]
    return results


def test_two_nodes_meet_on_loopback_and_only_node_0_writes(two_nodes):
    root, (node0, node1) = two_nodes
    assert "2 process(es), global batch 8" in node0 and metric_lines(node0) and not metric_lines(node1)
    assert (root / "node0" / "model" / "model.pth").is_file()
    assert not (root / "node1" / "model").exists() and not (root / "node1" / "checkpoints").exists()


def test_two_ranks_with_their_own_batchnorm_statistics_stay_within_the_seed_noise_of_one_process(
        two_nodes, single_all):
    """Training every layer, each rank normalises its half-batch with its own statistics (DDP's
    default; SyncBatchNorm works on GPUs only), so the curves are no longer equal. The tolerance:
    the distance between two one-process runs that differ only in their seed, the spread any run
    of this recipe has anyway. The data-parallel run must lie closer to its one-process twin."""
    _, (node0, _) = two_nodes
    ranks, twin, other = (metric_values(x) for x in (node0, single_all["0"].stdout, single_all["1"].stdout))
    losses = ("train_loss", "valid_loss", "test_loss")
    assert all(len(run[name]) == 1 for run in (ranks, twin, other) for name in losses)
    gap = max(abs(ranks[name][0] - twin[name][0]) for name in losses)
    noise = max(abs(other[name][0] - twin[name][0]) for name in losses)
    assert gap < noise, (ranks, twin, other)


# --- SIGTERM mid-epoch with two ranks ---------------------------------------------------------

def test_sigterm_mid_epoch_stops_both_ranks_and_the_rerun_ends_with_the_uninterrupted_weights(
        small_splits: Path, tmp_path: Path, two_nodes):
    reference_root, (reference, _) = two_nodes
    job = tmp_path / "job"
    job.mkdir()
    command = torchrun("--standalone", "--nproc_per_node", "2") + script_args(
        trainer_command(small_splits, job, *ALL))
    env = {**trainer_env(), **ONE_THREAD}
    first = subprocess.Popen(command, cwd=job, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             bufsize=1, start_new_session=True)
    seen = []
    for line in first.stdout:
        seen.append(line)
        if line.startswith("data: "):  # every rank is past its SIGTERM handler, no step done yet
            os.killpg(first.pid, signal.SIGTERM)  # as SageMaker stops a job: every process
            break
    rest, err = first.communicate(timeout=300)
    stopped = "".join(seen) + rest
    assert re.search(r"^stopped by SIGTERM in epoch 1 after step [123];", stopped, re.M), stopped + err[-3000:]
    assert stopped.count("stopped by SIGTERM") == 1 and not metric_lines(stopped)
    assert not (job / "model").exists() or not any((job / "model").iterdir())

    rerun = run(command, job)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert re.search(r"resuming from .*checkpoint-0000\.pth: 0 of 1 epoch\(s\) and [123] step\(s\) of the next done",
                     rerun.stdout)
    assert metric_lines(rerun.stdout) == metric_lines(reference)
    assert rerun.stdout.count("model written to") == 1
    expected = torch.load(reference_root / "node0" / "model" / "model.pth", weights_only=True)
    resumed = torch.load(job / "model" / "model.pth", weights_only=True)
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)


def test_an_evaluation_batch_smaller_than_the_ranks_leaves_one_rank_an_empty_share_it_can_still_run():
    from torchvision.models import resnet18

    from training.data import SplitBatches, _collate

    shares = [list(SplitBatches(5, 4, rank, world_size=2)) for rank in (0, 1)]
    assert shares == [[[0, 1], [4]], [[2, 3], []]]  # every image once, in one process's batches
    images, targets = _collate([])
    with torch.no_grad():
        outputs = resnet18(num_classes=4).eval()(images)
    assert outputs.shape == (0, 4) and targets.shape == (0,)
