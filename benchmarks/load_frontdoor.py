"""Load on the front door: N requests at concurrency C of real photos in mixed sizes and formats.

Reports throughput, p50/p95/p99 latency, answers by status code and, for a local stack, the RSS of
the endpoint and front door processes before and after the run. Every loop is bounded in count
(--requests, --breakdown-rounds) and time (--max-seconds).

Without --url it starts the local stack itself (`python -m imgclf local serve`: the endpoint with
the real handlers, and the front door child running the real Lambda handler, on 127.0.0.1) on
--model (a model dir or model.tar.gz), or on an untrained model dir it builds at --image-size.
With --url (and --api-key) it loads a deployed API instead: `<url>/predict`.

    python benchmarks/load_frontdoor.py --requests 2000 --concurrency 16
    python benchmarks/load_frontdoor.py --sweep 1,2,4,8,16 --requests 200 --breakdown
    python benchmarks/load_frontdoor.py --url https://abc.execute-api.eu-west-1.amazonaws.com/prod --api-key KEY

--sweep runs the same load at several concurrencies (throughput vs concurrency: where it saturates).
--breakdown times, on the same images and the same model in this process, the handler stages
(decode, preprocess, forward, serialisation) and one request at a time over HTTP to the endpoint
and to the front door; the differences are what each HTTP hop (and the Lambda handler) adds.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

#: scikit-image photos (all ship with the package) and the long sides they are resized to.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")
LONG_SIDES = (96, 320, 800, 1600)
FORMATS = (("JPEG", "image/jpeg", {"quality": 90}), ("PNG", "image/png", {}), ("WEBP", "image/webp", {"quality": 85}))
MAX_BODY_BYTES = 4_400_000  # the front door's default limit
START_TIMEOUT_SECONDS = 180


@dataclass(frozen=True)
class Sample:
    name: str
    content_type: str
    body: bytes


def image_pool() -> list[Sample]:
    """One image per photo x long side, formats in turn: 20 bodies from 2 KB to about 1.4 MB."""
    from PIL import Image
    from skimage import data as skdata

    pool = []
    for i, (photo, side) in enumerate((p, s) for p in PHOTOS for s in LONG_SIDES):
        image = Image.fromarray(getattr(skdata, photo)()).convert("RGB")
        scale = side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)
        fmt, content_type, params = FORMATS[i % len(FORMATS)]
        buffer = io.BytesIO()
        image.save(buffer, fmt, **params)
        if buffer.tell() > MAX_BODY_BYTES:
            raise SystemExit(f"{photo} at {side} px as {fmt} is over the front door's limit")
        pool.append(Sample(f"{photo}-{image.width}x{image.height}.{fmt.lower()}", content_type, buffer.getvalue()))
    return pool


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


class Client:
    """One keep-alive connection per thread to `<url>/predict`; reconnects after a failure."""

    def __init__(self, url: str, api_key: str | None, timeout: float) -> None:
        parts = urlsplit(url.rstrip("/"))
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.path = (parts.path or "") + "/predict"
        self.api_key = api_key
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = self._local.conn = cls(self.host, self.port, timeout=self.timeout)
        return conn

    def post(self, sample: Sample) -> tuple[int | str, float]:
        """(HTTP status, or the exception's name for no answer; seconds)."""
        headers = {"Content-Type": sample.content_type}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        started = time.perf_counter()
        try:
            conn = self._connection()
            conn.request("POST", self.path, body=sample.body, headers=headers)
            answer = conn.getresponse()
            answer.read()
            status: int | str = answer.status
            if answer.getheader("Connection", "").lower() == "close":
                self._drop()
        except (OSError, http.client.HTTPException) as err:
            self._drop()
            status = type(err).__name__
        return status, time.perf_counter() - started

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None


def run_load(client: Client, pool: list[Sample], requests: int, concurrency: int, max_seconds: float) -> dict:
    """`requests` POSTs from `concurrency` threads, stopping early at `max_seconds`."""
    deadline = time.monotonic() + max_seconds
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter = Counter()

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            status, seconds = client.post(pool[i % len(pool)])
            with lock:
                statuses[status] += 1
                if status == 200:
                    latencies.append(seconds)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as threads:
        for future in [threads.submit(worker) for _ in range(concurrency)]:
            future.result()
    elapsed = time.perf_counter() - started
    sent = sum(statuses.values())
    return {
        "concurrency": concurrency, "sent": sent, "seconds": round(elapsed, 2),
        "throughput_rps": round(sent / elapsed, 2) if elapsed else 0.0,
        "ok": statuses.get(200, 0),
        "errors": {str(k): v for k, v in sorted(statuses.items(), key=str) if k != 200},
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "stopped_by_time": sent < requests,
    }


class LocalStack:
    """`imgclf local serve` on a model, in its own process group; knows both processes' RSS."""

    def __init__(self, model: Path, workdir: Path) -> None:
        self.model = model
        self.log = workdir / "serve.log"
        self.proc: subprocess.Popen | None = None
        self.url = self.endpoint_url = ""

    def __enter__(self) -> "LocalStack":
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "imgclf", "local", "serve", str(self.model), "--port", "0"],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self.url:
            text = self.log.read_text(errors="replace")
            door = re.search(r"front door \(API Gateway \+ Lambda\): (http://\S+)/predict", text)
            endpoint = re.search(r"^endpoint \S+: (http://\S+) ", text, re.M)
            if door and endpoint:
                self.url, self.endpoint_url = door.group(1), endpoint.group(1)
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise SystemExit(f"the local stack did not start:\n{text[-2000:]}")
            else:
                time.sleep(0.2)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def rss_mb(self) -> dict[str, float]:
        import psutil

        endpoint = psutil.Process(self.proc.pid)
        children = endpoint.children(recursive=True)
        return {"endpoint": round(endpoint.memory_info().rss / 2**20, 1),
                "frontdoor": round(sum(c.memory_info().rss for c in children) / 2**20, 1)}


def build_untrained_model_dir(target: Path, image_size: int, arch: str = "resnet50") -> Path:
    """A model dir as the trainer writes it, with random weights and the 4 demo classes."""
    import torch

    from imgclf_serving.architecture import build_classifier
    from training.model_dir import write_model_dir

    torch.manual_seed(0)
    classes = ["astronaut", "cat", "coffee", "rocket"]
    write_model_dir(target, build_classifier(arch, len(classes)).eval(), classes, arch, image_size)
    return target


def breakdown(model_dir: Path, pool: list[Sample], stack: LocalStack, rounds: int, max_seconds: float) -> dict:
    """Per-request ms of each stage: the median over `rounds` passes over the pool, or over the
    images measured within `max_seconds` (at least one)."""
    import torch

    code = str(model_dir / "code")
    sys.path.insert(0, code)
    import inference  # the model's own code/inference.py, as the container imports it

    model = inference.model_fn(str(model_dir))
    endpoint = Client(stack.endpoint_url, None, 60)
    endpoint.path = "/invocations"
    door = Client(stack.url, None, 60)
    times: dict[str, list[float]] = {k: [] for k in ("decode", "preprocess", "forward", "serialise",
                                                     "endpoint_http", "frontdoor_http")}

    def ms(fn):
        started = time.perf_counter()
        result = fn()
        return result, (time.perf_counter() - started) * 1000

    deadline = time.monotonic() + max_seconds
    for sample in (sample for _ in range(rounds) for sample in pool):
        if times["frontdoor_http"] and time.monotonic() > deadline:
            print(f"breakdown stopped by --max-seconds after {len(times['frontdoor_http'])} image(s)")
            break
        image, t = ms(lambda: inference.input_fn(sample.body, sample.content_type))
        times["decode"].append(t)
        batch, t = ms(lambda: model.transform(image).unsqueeze(0))
        times["preprocess"].append(t)
        with torch.inference_mode():
            logits, t = ms(lambda: model.network(batch))
        times["forward"].append(t)
        prediction = inference.Prediction(torch.softmax(logits.float(), 1)[0], model)
        _, t = ms(lambda: inference.output_fn(prediction, "application/json"))
        times["serialise"].append(t)
        for key, client in (("endpoint_http", endpoint), ("frontdoor_http", door)):
            status, seconds = client.post(sample)
            if status != 200:
                raise SystemExit(f"{key}: {sample.name} answered {status}")
            times[key].append(seconds * 1000)
    median = {k: round(statistics.median(v), 2) for k, v in times.items()}
    in_process = sum(median[k] for k in ("decode", "preprocess", "forward", "serialise"))
    median["in_process_total"] = round(in_process, 2)
    median["endpoint_http_overhead"] = round(median["endpoint_http"] - in_process, 2)
    median["frontdoor_overhead"] = round(median["frontdoor_http"] - median["endpoint_http"], 2)
    return median


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a deployed API's base URL (`<url>/predict` is called); default: start the local stack")
    p.add_argument("--api-key", default=os.environ.get("IMGCLF_API_KEY"), help="x-api-key for a deployed API")
    p.add_argument("--model", type=Path, help="model dir or model.tar.gz for the local stack (default: untrained, built)")
    p.add_argument("--image-size", type=int, default=64, help="input size of the built model (the demo's is 64)")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=300,
                   help="stop sending after this long (per load run, and for the breakdown)")
    p.add_argument("--timeout", type=float, default=60, help="client socket timeout, seconds")
    p.add_argument("--sweep", help="comma-separated concurrencies, e.g. 1,2,4,8,16 (--requests each)")
    p.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    p.add_argument("--breakdown", action="store_true", help="time the stages of one request (local stack only)")
    p.add_argument("--breakdown-rounds", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.url and args.breakdown:
        p.error("--breakdown needs the local stack (no --url)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pool = image_pool()
    sizes = sorted(len(s.body) for s in pool)
    print(f"images: {len(pool)} ({', '.join(f for f, _, _ in FORMATS)}), {sizes[0]:,} to {sizes[-1]:,} bytes, "
          f"median {statistics.median(sizes):,.0f}")
    concurrencies = [int(c) for c in args.sweep.split(",")] if args.sweep else [args.concurrency]
    results: dict = {"machine": {"cpus": os.cpu_count()}, "runs": []}
    with tempfile.TemporaryDirectory(prefix="imgclf-load-") as tmp:
        stack = None
        if args.url:
            url = args.url
        else:
            model = args.model or build_untrained_model_dir(Path(tmp) / "model", args.image_size)
            stack = LocalStack(model, Path(tmp)).__enter__()
            url = stack.url
            print(f"local stack: front door {stack.url}, endpoint {stack.endpoint_url}")
        try:
            client = Client(url, args.api_key, args.timeout)
            run_load(client, pool, args.warmup, 1, args.max_seconds)
            if stack:
                results["rss_mb_before"] = stack.rss_mb()
                print(f"RSS before: {results['rss_mb_before']}")
            for c in concurrencies:
                run = run_load(client, pool, args.requests, c, args.max_seconds)
                results["runs"].append(run)
                print(f"c={c:>3} sent={run['sent']} in {run['seconds']} s: {run['throughput_rps']} req/s, "
                      f"p50 {run['p50_ms']} ms, p95 {run['p95_ms']} ms, p99 {run['p99_ms']} ms, "
                      f"errors {run['errors'] or 0}{' (stopped by --max-seconds)' if run['stopped_by_time'] else ''}")
            if stack:
                results["rss_mb_after"] = stack.rss_mb()
                print(f"RSS after: {results['rss_mb_after']}")
                if args.breakdown:
                    model_dir = Path(args.model) if args.model and Path(args.model).is_dir() else None
                    model_dir = model_dir or _served_model_dir(args, Path(tmp))
                    results["breakdown_ms"] = breakdown(model_dir, pool, stack, args.breakdown_rounds, args.max_seconds)
                    print("breakdown (median ms per request, one at a time):")
                    for key, value in results["breakdown_ms"].items():
                        print(f"  {key:>24}: {value}")
        finally:
            if stack:
                stack.__exit__()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def _served_model_dir(args: argparse.Namespace, tmp: Path) -> Path:
    if args.model is None:
        return tmp / "model"
    from imgclf.local.endpoint import model_dir_from

    return model_dir_from(args.model, tmp / "extracted")


if __name__ == "__main__":
    sys.exit(main())
