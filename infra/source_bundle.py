"""The training source bundle: the tar.gz that `sagemaker_submit_directory` points to.

The SageMaker training toolkit downloads that S3 object and opens it with tarfile (`r:gz`), so it
must be a gzipped tar, not the zip CDK makes of a directory asset; it then pip-installs the root
`requirements.txt` (a copy of training/requirements.txt). smdebug, which pip cannot install with its
own pins, comes from training/requirements-no-deps.txt, which the trainer installs with --no-deps
(training/smdebug_runtime.py). The archive is byte-for-byte deterministic (sorted entries, mtime 0, owner 0,
fixed modes, gzip header without a timestamp), so the CDK asset hash changes only when the code does.
"""
from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLE_NAME = "source.tar.gz"
#: Packages shipped to the training container: top-level modules only (imgclf_serving/frontdoor is the Lambda's),
#: and each package's requirements files (the trainer copies serving's into the model's code/).
PACKAGES = ("training", "imgclf_serving")
PACKAGE_FILES = ("*.py", "requirements*.txt")
#: What a job cannot start without: the toolkit's requirements and the trainer's --no-deps list.
REQUIRED = ("training/requirements.txt", "training/requirements-no-deps.txt")


def bundle_members(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Archive name -> source file, in archive order."""
    members = {
        f"{package}/{module.name}": module
        for package in PACKAGES
        for pattern in PACKAGE_FILES
        for module in sorted((root / package).glob(pattern))
    }
    for name in REQUIRED:
        if not (root / name).is_file():
            raise FileNotFoundError(f"the source bundle needs {root / name}")
    members["requirements.txt"] = root / "training" / "requirements.txt"
    return dict(sorted(members.items()))


def _info(name: str, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_source_bundle(out_dir: str | Path, *, root: Path = REPO_ROOT) -> Path:
    """Write `<out_dir>/source.tar.gz` and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    members = bundle_members(root)
    directories = sorted({name.rsplit("/", 1)[0] for name in members if "/" in name})
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in directories:
            tar.addfile(_info(directory, directory=True))
        for name, source in members.items():
            data = source.read_bytes()
            tar.addfile(_info(name, size=len(data)), io.BytesIO(data))
    target = out_dir / BUNDLE_NAME
    with open(target, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        gz.write(raw.getvalue())
    return target
