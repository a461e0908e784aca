"""`python app.py`, the CDK entry point, as the CDK CLI runs it: a separate process that must
not load PyTorch (a multi-GB import that synth has no use for), although infra/ imports the
trainer's metric, rule and collection tables."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Runs app.py as `python app.py` would (run_name __main__), then reports what it imported.
_RUN_APP = """
import json, runpy, sys
sys.argv = ["app.py"]
try:
    runpy.run_path("app.py", run_name="__main__")
except SystemExit as stop:
    code = stop.code
else:
    code = 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "smdebug"))
print(json.dumps({"exit": code, "heavy": heavy}))
"""


def test_python_app_py_synthesizes_without_importing_torch(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(CDK_OUTDIR=str(tmp_path / "cdk.out"), CDK_DISABLE_VERSION_CHECK="1",
               JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    result = subprocess.run([sys.executable, "-c", _RUN_APP], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["exit"] == 0, result.stderr[-3000:]
    assert list((tmp_path / "cdk.out").glob("*.template.json")), "app.py synthesized no template"
    assert report["heavy"] == []
