"""The front-door Lambda's code: imgclf_serving/frontdoor/ as the top-level package `frontdoor`,
with Powertools for AWS Lambda (Python) and its run-time dependencies beside it.

Why not AWS's Powertools layer: its ARN comes from a public SSM parameter that exists in only some
regions, so synth passed and the deploy failed elsewhere (me-central-1, ap-east-2, ...). Why copy
the installed distributions (requirements.txt pins Powertools): synth stays offline and needs no
Docker. The function runs on arm64, possibly built on an x86 machine, so every copied distribution
must be pure Python (its wheel says `Root-Is-Purelib: true`), or be one whose pure-Python fallback
runs when its compiled module is absent: wrapt (wrapt/__wrapt__.py imports `_wrappers` only if it
can), shipped without its compiled files. Licences travel in each `.dist-info`.
"""
from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

FRONTDOOR_DIR = Path(__file__).resolve().parents[1] / "imgclf_serving" / "frontdoor"
PACKAGE = "frontdoor"
#: Powertools and what its Logger, Metrics, Tracer and event handler import at run time; boto3 and
#: botocore (which aws-xray-sdk also needs) come with the Lambda Python runtime.
DISTRIBUTIONS = ("aws-lambda-powertools", "aws-xray-sdk", "wrapt", "jmespath", "typing-extensions")
RUNTIME_PROVIDED = frozenset({"boto3", "botocore"})
#: Platform wheels whose Python fallback is shipped instead of their compiled modules.
PYTHON_FALLBACK = frozenset({"wrapt"})
_COMPILED = (".so", ".pyd", ".c", ".h")


class BundleError(RuntimeError):
    """A distribution the front door needs is missing, or cannot run on the function's platform."""


def build_frontdoor_bundle(out: Path) -> Path:
    """Write the asset's files into `out` (an empty directory) and return it."""
    out = Path(out)
    package = out / PACKAGE
    package.mkdir(parents=True)
    for source in sorted([*FRONTDOOR_DIR.glob("*.py"), *FRONTDOOR_DIR.glob("*.html")]):  # code and the web page
        shutil.copy2(source, package / source.name)
    for name in DISTRIBUTIONS:
        _copy_distribution(name, out)
    return out


def _copy_distribution(name: str, out: Path) -> None:
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise BundleError(f"{name} is not installed, and the front door's asset needs it: "
                          "pip install -r requirements.txt") from None
    pure = "Root-Is-Purelib: true" in (dist.read_text("WHEEL") or "")
    if not pure and name not in PYTHON_FALLBACK:
        raise BundleError(f"{name} {dist.version} is not pure Python: its installed build cannot run on the "
                          "function's arm64 runtime")
    for file in dist.files or ():
        parts = Path(file).parts
        if parts[0] == ".." or "__pycache__" in parts or file.suffix == ".pyc" or file.name.endswith(_COMPILED):
            continue  # scripts outside site-packages, caches, compiled modules
        target = out / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dist.locate_file(file), target)
