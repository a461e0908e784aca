"""Names of the files the trainer leaves in its output-data folder (`SM_OUTPUT_DATA_DIR`).

Their own module, importing nothing heavy, so that readers of a finished job (the local engine's report)
get the names without loading the trainer's torch and smdebug.
"""
from __future__ import annotations

from pathlib import Path

#: The rule verdicts of portable mode (training/instrumentation.py).
DEBUGGER_REPORT = "debugger-report.json"
#: torch.profiler's summary (training/profiling.py) and its TensorBoard trace folder.
PROFILER_SUMMARY_JSON = "profiler-summary.json"
PROFILER_SUMMARY_MD = "profiler-summary.md"
PROFILER_TRACE_DIR = Path("profiler") / "tensorboard"
#: The one-page training report and its plots (training/training_report.py).
REPORT_MD = "training-report.md"
LOSS_PNG = "report-loss.png"
STEP_PNG = "report-step-time.png"
UTILISATION_PNG = "report-utilisation.png"
#: What the local engine's report copies, in this order.
REPORT_FILES = (PROFILER_SUMMARY_JSON, PROFILER_SUMMARY_MD, REPORT_MD, LOSS_PNG, STEP_PNG, UTILISATION_PNG)
