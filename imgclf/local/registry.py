"""The local twin of the stack's model package group: a folder with one numbered version per gated
run, each with its model.tar.gz, its evidence (the same fields as the cloud version's ModelMetrics
file; as `evaluation`, the served model's per-class precision, recall and support and confusion
matrix, computed by training/evaluation.py as the cloud retrain's evaluation.json is) and its
approval status, and a record of the version being served.

    <registry>/<N>/version.json   {version, approval, approval_description, created, evidence}
    <registry>/<N>/model.tar.gz
    <registry>/serving.json       {version}

`imgclf models ... --local <registry>` reads and sets the approvals; `imgclf local serve --version N`
serves an approved version. Statuses and decisions are infra/registry.py's, as in the cloud.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from imgclf.errors import UserError
from infra.registry import APPROVAL, DECISIONS

#: The registry next to the run folders (runs/<time> -> runs/registry).
FOLDER_NAME = "registry"


def default_root(run_dir: Path) -> Path:
    return Path(run_dir).resolve().parent / FOLDER_NAME


def register(root: Path, approval: str, model_tar: Path, evidence: dict) -> int:
    """A new version holding `model_tar` and `evidence`, Approved or PendingManualApproval as
    `approval` (release.approval) says; its number."""
    root.mkdir(parents=True, exist_ok=True)
    number = max((v["version"] for v in versions(root)), default=0) + 1
    folder = root / str(number)
    folder.mkdir()
    shutil.copyfile(model_tar, folder / "model.tar.gz")
    _write(folder / "version.json", {"version": number, "approval": APPROVAL[approval], "approval_description": None,
                                     "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "evidence": evidence})
    return number


def versions(root: Path) -> list[dict]:
    """Every version, oldest first."""
    if not root.is_dir():
        return []
    found = [json.loads(p.read_text()) for p in root.glob("*/version.json") if p.parent.name.isdigit()]
    return sorted(found, key=lambda v: v["version"])


def version(root: Path, number: int) -> dict:
    path = root / str(number) / "version.json"
    if not path.is_file():
        known = ", ".join(str(v["version"]) for v in versions(root)) or "none"
        raise UserError(f"no version {number} in the local registry {root} (versions: {known})")
    return json.loads(path.read_text())


def decide(root: Path, number: int, decision: str, reason: str | None = None) -> dict:
    """Approve or reject version `number`."""
    found = version(root, number)
    found.update(approval=DECISIONS[decision], approval_description=reason)
    _write(root / str(number) / "version.json", found)
    return found


def approved_model(root: Path, number: int) -> Path:
    """The model.tar.gz of version `number`, which must be Approved (as a cloud deployment requires)."""
    found = version(root, number)
    if found["approval"] != "Approved":
        raise UserError(f"version {number} is {found['approval']}: only an Approved version is served "
                        f"(imgclf models approve {number} --local {root})")
    return root / str(number) / "model.tar.gz"


def serving(root: Path) -> int | None:
    path = root / "serving.json"
    return json.loads(path.read_text())["version"] if path.is_file() else None


def mark_serving(root: Path, number: int) -> None:
    _write(root / "serving.json", {"version": number})


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
