"""torch.profiler window and step-timing summary: files written, numbers consistent."""
from __future__ import annotations

import json
import time

import psutil
import pytest
import torch
from torch import nn

from training import profiling
from training.output_files import PROFILER_SUMMARY_JSON, PROFILER_SUMMARY_MD, PROFILER_TRACE_DIR
from training.profiling import StepProfiler, timing_summary


def _train(profiler: StepProfiler, steps: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 32), torch.randint(0, 4, (64,))
    for step in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        profiler.step(0.001 * (step + 1), 0.003)


def test_window_writes_a_tensorboard_trace_and_a_summary_of_the_profiled_steps(tmp_path):
    profiler = StepProfiler(tmp_path, active_steps=3)
    _train(profiler, steps=8)
    summary = profiler.finish()
    assert summary["steps"] == 8 and summary["profiled_steps"] == 3
    assert list((tmp_path / PROFILER_TRACE_DIR).glob("*.pt.trace.json"))
    assert json.loads((tmp_path / PROFILER_SUMMARY_JSON).read_text()) == summary
    assert "Training steps: 8 (profiled window: 3 steps" in (tmp_path / PROFILER_SUMMARY_MD).read_text()
    ops = [o["op"] for o in summary["top_ops"]]
    assert "aten::addmm" in ops
    assert summary["peak_memory"]["bytes"] > 0


def test_data_wait_and_compute_shares_add_up_to_100_percent(tmp_path):
    profiler = StepProfiler(tmp_path, active_steps=2)
    _train(profiler, steps=4)
    summary = profiler.finish()
    assert summary["data_wait_pct"] + summary["compute_pct"] == pytest.approx(100.0)
    assert summary["data_wait_pct"] == pytest.approx(100 * 0.010 / (0.010 + 0.012))
    assert len(summary["step_times"]) == 4


def test_a_run_shorter_than_the_window_profiles_what_it_ran(tmp_path):
    profiler = StepProfiler(tmp_path, active_steps=10)
    _train(profiler, steps=4)
    summary = profiler.finish()
    assert summary["steps"] == 4 and summary["profiled_steps"] == 2
    assert list((tmp_path / PROFILER_TRACE_DIR).glob("*.pt.trace.json"))


def test_a_run_that_ends_before_the_window_has_no_operator_profile(tmp_path):
    profiler = StepProfiler(tmp_path, active_steps=5)
    _train(profiler, steps=1)
    summary = profiler.finish()
    assert summary["profiled_steps"] == 0 and summary["top_ops"] == [] and summary["trace_dir"] is None
    assert "No operator profile" in (tmp_path / PROFILER_SUMMARY_MD).read_text()


def test_zero_profile_steps_turns_the_profiler_off_but_keeps_step_timings(tmp_path):
    profiler = StepProfiler(tmp_path, active_steps=0)
    _train(profiler, steps=3)
    summary = profiler.finish()
    assert summary["steps"] == 3 and summary["profiled_steps"] == 0
    assert not (tmp_path / PROFILER_TRACE_DIR).exists()


def test_no_steps_gives_zero_shares_not_a_division_error():
    assert timing_summary([])["data_wait_pct"] == 0.0


def test_cpu_utilisation_is_sampled_during_training_within_what_the_machine_has(tmp_path, monkeypatch):
    monkeypatch.setattr(profiling, "SAMPLE_SECONDS", 0.25)
    profiler = StepProfiler(tmp_path, active_steps=0)
    for _ in range(4):  # one thread kept busy for 0.3 s a step
        busy_until = time.perf_counter() + 0.3
        while time.perf_counter() < busy_until:
            pass
        profiler.step(0.0, 0.3)
    utilisation = profiler.finish()["utilisation"]
    assert [s["step"] for s in utilisation["samples"]] == [1, 2, 3, 4]
    cores = psutil.cpu_count()
    assert utilisation["cpu_count"] == cores
    assert all(0 <= s["process_cpu_pct"] <= 100 * cores and 0 <= s["system_cpu_pct"] <= 100
               for s in utilisation["samples"])
    assert utilisation["mean"]["process_cpu_pct"] > 20  # the busy thread shows
    assert "trainer process CPU" in (tmp_path / PROFILER_SUMMARY_MD).read_text()


def test_a_run_shorter_than_one_sample_interval_still_gets_one_sample(tmp_path):
    profiler = StepProfiler(tmp_path, active_steps=0)
    _train(profiler, steps=2)
    assert [s["step"] for s in profiler.finish()["utilisation"]["samples"]] == [2]
