"""What a serving cold start pays to get ONNX Runtime, the optimized forward's one extra package, three ways:

- `pypi`: code/requirements.txt names onnxruntime and the container pip-installs it from PyPI at
  every start (what the model dir did before; a fresh container has no pip cache).
- `wheel`: the wheel ships in model.tar.gz and requirements.txt points pip at it
  (`--no-index --find-links`): no network, pip still unpacks and installs it.
- `unpacked`: the trainer unpacks the wheel into code/ (training/optimize.py ship_runtime), which
  both containers put on PYTHONPATH: nothing is installed; the extra cost is the bigger tarball's
  extraction, timed here as `tar -xzf` of the unpacked package alone.

Each install goes into an empty `--target` folder with `--no-deps` (its dependency the serving images
already have: numpy), so the three differ only in where ONNX Runtime comes from. Needs PyPI for the
`pypi` row and for the wheel (downloaded once). Prints the medians and the ratios.

    .venv/bin/python benchmarks/runtime_cold_start.py --rounds 3
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from importlib.metadata import version
from pathlib import Path

#: PyPI itself: pip's configuration (local find-links or indexes) is ignored, as a container has none.
PYPI = ("--isolated", "--index-url", "https://pypi.org/simple/")


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q", *args]


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    release = version("onnxruntime")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        wheelhouse = root / "wheels"
        subprocess.run(_pip("download", *PYPI, f"onnxruntime=={release}", "--only-binary=:all:", "--no-deps", "-d", str(wheelhouse)),
                       check=True)
        wheel = next(wheelhouse.glob("onnxruntime-*.whl"))
        unpacked = root / "code"
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(unpacked, [n for n in archive.namelist() if not n.split("/")[0].endswith(".data")])
        tarball = root / "runtime.tar.gz"
        with tarfile.open(tarball, "w:gz") as tar:
            for item in sorted(unpacked.iterdir()):
                tar.add(item, arcname=item.name)

        times: dict[str, list[float]] = {"pypi": [], "wheel": [], "unpacked": []}
        common = ["install", "--no-deps", "--no-cache-dir", f"onnxruntime=={release}"]
        for round_ in range(args.rounds):
            times["pypi"].append(_timed(_pip(*common, *PYPI, "--target", str(root / f"pypi{round_}"))))
            times["wheel"].append(_timed(_pip(*common, "--isolated", "--no-index", "--find-links", str(wheelhouse),
                                              "--target", str(root / f"wheel{round_}"))))
            out = root / f"extract{round_}"
            out.mkdir()
            times["unpacked"].append(_timed(["tar", "-xzf", str(tarball), "-C", str(out)]))
        medians = {way: statistics.median(values) for way, values in times.items()}
        print(f"onnxruntime {release}, Python {sys.version_info.major}.{sys.version_info.minor}, "
              f"{args.rounds} rounds; wheel {wheel.stat().st_size / 1e6:.1f} MB, unpacked in model.tar.gz "
              f"{tarball.stat().st_size / 1e6:.1f} MB gzipped")
        for way, values in times.items():
            print(f"  {way:9s} median {medians[way]:6.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")
        print(f"pypi / wheel {medians['pypi'] / medians['wheel']:.1f}x; "
              f"pypi / unpacked {medians['pypi'] / medians['unpacked']:.1f}x; "
              f"wheel / unpacked {medians['wheel'] / medians['unpacked']:.1f}x")


if __name__ == "__main__":
    main()
