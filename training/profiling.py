"""torch.profiler over a window of training steps, plus the step timings of the whole run.

SageMaker Debugger's framework profiling is deprecated from PyTorch 2.0 and does not work on
torch 2.x, so the portable profile is torch.profiler's: a TensorBoard trace of a few steps and a
plain summary (top operators, data wait vs compute, peak memory, CPU/GPU utilisation) that needs
no viewer.
"""
from __future__ import annotations

import json
import math
import resource
import statistics
import time
from pathlib import Path

import psutil
import torch
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

from training.output_files import PROFILER_SUMMARY_JSON, PROFILER_SUMMARY_MD, PROFILER_TRACE_DIR

#: Steps skipped, then warmed up, before the active window (the first steps pay one-off costs).
WAIT_STEPS = 1
WARMUP_STEPS = 1
TOP_OPS = 15
#: Least time between utilisation samples: CPU times tick every 10 ms, so one short step alone
#: would read as 0% or far over 100%; over a second the error is about 1%.
SAMPLE_SECONDS = 1.0


class UtilisationSampler:
    """CPU use of the trainer process (0-100 x cores; DataLoader workers are other processes) and
    of the whole machine (0-100), and with a GPU its utilisation (0-100, needs pynvml) and
    allocated memory, each averaged since the previous sample."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._cuda = torch.cuda.is_available()
        self._gpu_utilisation = self._cuda and _gpu_utilisation() is not None
        self.samples: list[dict] = []
        self._last = time.monotonic()
        self._process.cpu_percent(None)  # both counters measure from their previous call
        psutil.cpu_percent(None)

    def sample(self, step: int, force: bool = False) -> None:
        """Record a sample after training step `step` when SAMPLE_SECONDS have passed (or `force`)."""
        now = time.monotonic()
        if now - self._last < SAMPLE_SECONDS and not force:
            return
        self._last = now
        row = {"step": step, "process_cpu_pct": self._process.cpu_percent(None),
               "system_cpu_pct": psutil.cpu_percent(None)}
        if self._cuda:
            row["gpu_memory_mib"] = torch.cuda.memory_allocated() / 2**20
        if self._gpu_utilisation:  # every row has the same keys: a failed reading is NaN
            reading = _gpu_utilisation()
            row["gpu_pct"] = float("nan") if reading is None else reading
        self.samples.append(row)

    def summary(self) -> dict:
        keys = ("process_cpu_pct", "system_cpu_pct", "gpu_pct", "gpu_memory_mib")
        means = {}
        for key in keys:
            values = [r[key] for r in self.samples if key in r and not math.isnan(r[key])]
            if values:
                means[key] = statistics.fmean(values)
        return {"cpu_count": psutil.cpu_count(), "mean": means, "samples": self.samples}


def _gpu_utilisation() -> float | None:
    """The GPU's utilisation in percent, or None where NVML cannot say (no pynvml, no driver)."""
    try:
        return float(torch.cuda.utilization())
    except Exception:  # noqa: BLE001 - torch raises whatever pynvml or its import raised
        return None


class StepProfiler:
    """Call `step(data_s, compute_s)` after every training step and `finish()` once at the end."""

    def __init__(self, output_dir: Path, active_steps: int, wait: int = WAIT_STEPS,
                 warmup: int = WARMUP_STEPS) -> None:
        if active_steps < 0:
            raise ValueError(f"profile steps must be >= 0, got {active_steps}")
        self.output_dir = Path(output_dir)
        self.window = {"wait": wait, "warmup": warmup, "active": active_steps}
        self.timings: list[tuple[float, float]] = []
        self.utilisation = UtilisationSampler()
        self._cuda = torch.cuda.is_available()
        self._prof = None
        if active_steps:
            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self._cuda else [])
            self._prof = profile(
                activities=activities,
                schedule=schedule(wait=wait, warmup=warmup, active=active_steps, repeat=1),
                on_trace_ready=tensorboard_trace_handler(str(self.output_dir / PROFILER_TRACE_DIR)),
            )
            self._prof.start()

    def step(self, data_seconds: float, compute_seconds: float) -> None:
        self.timings.append((float(data_seconds), float(compute_seconds)))
        self.utilisation.sample(len(self.timings))
        if self._prof is not None:
            self._prof.step()

    def finish(self) -> dict:
        """Stop the profiler, write the summary JSON and Markdown, return the summary."""
        ops = []
        if self._prof is not None:
            self._prof.stop()
            ops = self._top_ops() if self.profiled_steps else []
        if self.timings and not self.utilisation.samples:
            self.utilisation.sample(len(self.timings), force=True)  # a run shorter than one sample
        summary = {
            "steps": len(self.timings),
            "window": self.window,
            "profiled_steps": self.profiled_steps,
            "trace_dir": str(PROFILER_TRACE_DIR) if self.profiled_steps else None,
            **timing_summary(self.timings),
            "peak_memory": self._peak_memory(),
            "utilisation": self.utilisation.summary(),
            "top_ops": ops,
        }
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / PROFILER_SUMMARY_JSON).write_text(json.dumps(summary, indent=2))
        (self.output_dir / PROFILER_SUMMARY_MD).write_text(summary_markdown(summary))
        return summary

    @property
    def profiled_steps(self) -> int:
        """Steps the active window actually recorded (a short run may end inside the window)."""
        if self._prof is None:
            return 0
        before = self.window["wait"] + self.window["warmup"]
        return max(0, min(self.window["active"], len(self.timings) - before))

    def _top_ops(self) -> list[dict]:
        events = self._prof.key_averages()
        device_key = "self_device_time_total"
        total_cpu = sum(e.self_cpu_time_total for e in events) or 1.0
        rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:TOP_OPS]
        return [
            {
                "op": e.key,
                "calls": e.count,
                "self_cpu_ms": e.self_cpu_time_total / 1000.0,
                "cpu_total_ms": e.cpu_time_total / 1000.0,
                "self_cpu_pct": 100.0 * e.self_cpu_time_total / total_cpu,
                **({"self_device_ms": getattr(e, device_key, 0.0) / 1000.0} if self._cuda else {}),
            }
            for e in rows
        ]

    def _peak_memory(self) -> dict:
        if self._cuda:
            return {"kind": "cuda_max_memory_allocated", "bytes": int(torch.cuda.max_memory_allocated())}
        # Linux reports ru_maxrss in KiB.
        return {"kind": "cpu_max_rss", "bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024}


def timing_summary(timings: list[tuple[float, float]]) -> dict:
    """Data-wait vs compute split of the recorded steps; the two shares add up to 100."""
    data = sum(d for d, _ in timings)
    compute = sum(c for _, c in timings)
    total = data + compute
    step_ms = [1000.0 * (d + c) for d, c in timings]
    data_pct = 100.0 * data / total if total > 0 else 0.0
    return {
        "data_seconds": data,
        "compute_seconds": compute,
        "data_wait_pct": data_pct,
        "compute_pct": 100.0 - data_pct if total > 0 else 0.0,
        "step_ms_mean": statistics.fmean(step_ms) if step_ms else 0.0,
        "step_ms_median": statistics.median(step_ms) if step_ms else 0.0,
        "step_times": [[d, c] for d, c in timings],
    }


def summary_markdown(summary: dict) -> str:
    mem = summary["peak_memory"]
    lines = [
        "# Profiler summary",
        "",
        f"- Training steps: {summary['steps']} (profiled window: {summary['profiled_steps']} steps, "
        f"after {summary['window']['wait']} wait + {summary['window']['warmup']} warmup)",
        f"- Data wait: {summary['data_wait_pct']:.1f}% ({summary['data_seconds']:.3f} s), "
        f"compute: {summary['compute_pct']:.1f}% ({summary['compute_seconds']:.3f} s)",
        f"- Step time: mean {summary['step_ms_mean']:.1f} ms, median {summary['step_ms_median']:.1f} ms",
        f"- Peak memory ({mem['kind']}): {mem['bytes'] / 2**20:.1f} MiB",
        f"- Utilisation: {utilisation_text(summary['utilisation'])}",
    ]
    if summary["trace_dir"]:
        lines.append(f"- TensorBoard trace: `{summary['trace_dir']}` (`tensorboard --logdir` it)")
    lines += ["", ops_table(summary["top_ops"])]
    return "\n".join(lines) + "\n"


def utilisation_text(utilisation: dict) -> str:
    """One line of mean utilisation, for the summary and the report."""
    mean = utilisation["mean"]
    if not mean:
        return "not sampled (no training steps)"
    parts = [f"trainer process CPU {mean['process_cpu_pct']:.0f}% of {100 * utilisation['cpu_count']}% "
             f"({utilisation['cpu_count']} cores)", f"machine CPU {mean['system_cpu_pct']:.0f}%"]
    if "gpu_pct" in mean:
        parts.append(f"GPU {mean['gpu_pct']:.0f}%")
    if "gpu_memory_mib" in mean:
        parts.append(f"GPU memory allocated {mean['gpu_memory_mib']:.0f} MiB")
    return ", ".join(parts) + f" (means of {len(utilisation['samples'])} samples)"


def ops_table(ops: list[dict]) -> str:
    if not ops:
        return "_No operator profile (the run ended before the profiler window, or profiling is off)._"
    rows = ["| operator | calls | self CPU ms | self CPU % |", "| --- | ---: | ---: | ---: |"]
    rows += [f"| `{o['op']}` | {o['calls']} | {o['self_cpu_ms']:.2f} | {o['self_cpu_pct']:.1f} |" for o in ops]
    return "\n".join(rows)
