"""Load on the front door: N requests at concurrency C of real photos in mixed sizes and formats.

Reports throughput, p50/p95/p99 latency and answers by status code; for a local stack also the
time from starting the model container to the first 200 through the front door, and the RSS of the
container's processes and of the front door before and after the load. Every loop is bounded in
count (--requests, --breakdown-rounds) and time (--max-seconds).

Without --url it starts local stacks itself, one after the other, on --model (a model dir or
model.tar.gz) or on an untrained model dir it builds at --image-size: for each of --containers
(default both: `torchserve`, the container the endpoint ran before, from .venv-torchserve, then
`ray-serve`, the endpoint's container now), the model container with the CreateModel environment of the default config,
the local endpoint in front of it, and the front door child running the real Lambda handler, all
on 127.0.0.1. It then prints the figures side by side, with each one's ratio to the first.
With --endpoint URL it puts a front door in front of a local endpoint that is already running.
With --url (and --api-key) it loads a deployed API instead: `<url>/predict`.

    python benchmarks/load_frontdoor.py --requests 200 --sweep 1,16
    python benchmarks/load_frontdoor.py --containers ray-serve --sweep 1,2,4,8,16 --requests 100 --breakdown
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
import statistics
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
ENDPOINT_NAME = "imgclf-load"
CONTAINERS = ("torchserve", "ray-serve")  # today's container first: the ratios are to it


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
    """A model container, the local endpoint and the front door on `model_dir` (imgclf's local
    engine, as `imgclf local serve` starts them); knows when the first 200 came and the RSS of each."""

    def __init__(self, container: str, model_dir: Path, workdir: Path) -> None:
        self.kind = container
        self.model_dir = model_dir
        self.workdir = workdir
        self.container = self.endpoint = self.door = None
        self.url = self.endpoint_url = ""
        self.startup_seconds = float("nan")

    def __enter__(self) -> "LocalStack":
        from imgclf.local.container import container_for
        from imgclf.local.deploy import model_environment
        from imgclf.local.endpoint import EndpointServer
        from imgclf.local.frontdoor import FrontDoorProcess
        from infra.config import load_config
        from infra.frontdoor_environment import frontdoor_environment

        cfg = load_config({"endpoint": {"container": self.kind}})
        started = time.perf_counter()
        try:
            self.container = container_for(cfg, self.model_dir, model_environment(cfg, self.model_dir),
                                           self.workdir / f"{self.kind}.log").start()
            self.endpoint = EndpointServer(self.container, ENDPOINT_NAME).start()
            self.door = FrontDoorProcess(self.endpoint.url, ENDPOINT_NAME, self.workdir / f"{self.kind}-frontdoor.log",
                                         deployment=frontdoor_environment(cfg)).start()
        except BaseException:
            self.__exit__()
            raise
        self.url, self.endpoint_url = self.door.url, self.endpoint.url
        return self._first_200(started)

    def _first_200(self, started: float) -> "LocalStack":
        sample = image_pool()[0]
        client = Client(self.url, None, 60)
        while client.post(sample)[0] != 200:
            if time.perf_counter() - started > 900:
                raise SystemExit(f"{self.kind}: no 200 through the front door after 900 s")
            time.sleep(0.2)
        self.startup_seconds = round(time.perf_counter() - started, 1)
        return self

    def __exit__(self, *exc) -> None:
        for part in (self.door, self.endpoint, self.container):
            if part is not None:
                part.stop() if hasattr(part, "stop") else part.close()

    def rss_mb(self) -> dict[str, float]:
        """RSS summed over each side's processes (shared pages count once per process, as RSS does),
        and the container's PSS (shared pages split among their processes: what it really holds)."""
        import psutil

        from imgclf.local import sessions

        def total(processes, field: str) -> float:
            found = 0
            for process in processes:
                try:
                    info = process.memory_full_info() if field == "pss" else process.memory_info()
                    found += getattr(info, field)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            return round(found / 2**20, 1)

        container = [psutil.Process(pid) for pid in sessions.members(self.container.sessions)]
        door = psutil.Process(self.door._proc.pid)
        return {"container": total(container, "rss"), "container_pss": total(container, "pss"),
                "frontdoor": total([door, *door.children(recursive=True)], "rss")}


class ExistingEndpoint:
    """A front door in front of a local endpoint that already runs (`--endpoint`, `--endpoint-name`)."""

    def __init__(self, endpoint_url: str, name: str, workdir: Path) -> None:
        self.kind = "endpoint"
        self.endpoint_url = endpoint_url
        self.name = name
        self.workdir = workdir
        self.door = None
        self.url = ""

    def __enter__(self) -> "ExistingEndpoint":
        from imgclf.local.frontdoor import FrontDoorProcess

        self.door = FrontDoorProcess(self.endpoint_url, self.name, self.workdir / "frontdoor.log").start()
        self.url = self.door.url
        return self

    def __exit__(self, *exc) -> None:
        if self.door is not None:
            self.door.stop()


def build_untrained_model_dir(target: Path, image_size: int, arch: str = "resnet50") -> Path:
    """A model dir as the trainer writes it, with random weights and the 4 demo classes."""
    import torch

    from imgclf_serving.architecture import build_classifier
    from training.model_dir import write_model_dir

    torch.manual_seed(0)
    classes = ["astronaut", "cat", "coffee", "rocket"]
    write_model_dir(target, build_classifier(arch, len(classes)).eval(), classes, arch, image_size)
    return target


def breakdown(model_dir: Path, pool: list[Sample], stack, rounds: int, max_seconds: float) -> dict:
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

    def ms(fn, *args):
        started = time.perf_counter()
        result = fn(*args)
        return result, (time.perf_counter() - started) * 1000

    deadline = time.monotonic() + max_seconds
    for sample in (sample for _ in range(rounds) for sample in pool):
        if times["frontdoor_http"] and time.monotonic() > deadline:
            print(f"breakdown stopped by --max-seconds after {len(times['frontdoor_http'])} image(s)")
            break
        image, t = ms(inference.input_fn, sample.body, sample.content_type)
        times["decode"].append(t)
        batch, t = ms(lambda picture: model.transform(picture).unsqueeze(0), image)
        times["preprocess"].append(t)
        with torch.inference_mode():
            logits, t = ms(model.network, batch)
        times["forward"].append(t)
        prediction = inference.Prediction(torch.softmax(logits.float(), 1)[0], model)
        _, t = ms(inference.output_fn, prediction, "application/json")
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
    p.add_argument("--url", help="a deployed API's base URL (`<url>/predict` is called); default: start local stacks")
    p.add_argument("--api-key", default=os.environ.get("IMGCLF_API_KEY"), help="x-api-key for a deployed API")
    p.add_argument("--containers", default=",".join(CONTAINERS),
                   help="model containers to start and compare, in order (default %(default)s)")
    p.add_argument("--endpoint", help="a running local endpoint's URL, instead of starting containers")
    p.add_argument("--endpoint-name", help="the name that endpoint serves (with --endpoint)")
    p.add_argument("--model", type=Path, help="model dir or model.tar.gz for the local stack (default: untrained, built)")
    p.add_argument("--image-size", type=int, default=64, help="input size of the built model (the demo's is 64)")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-seconds", type=float, default=300,
                   help="stop sending after this long (per load run, and for the breakdown)")
    p.add_argument("--timeout", type=float, default=60, help="client socket timeout, seconds")
    p.add_argument("--sweep", help="comma-separated concurrencies, e.g. 1,2,4,8,16 (--requests each)")
    p.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    p.add_argument("--breakdown", action="store_true", help="time the stages of one request (local stacks only)")
    p.add_argument("--breakdown-rounds", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if args.url and (args.breakdown or args.endpoint):
        p.error("--breakdown and --endpoint need a local stack (no --url)")
    if bool(args.endpoint) != bool(args.endpoint_name):
        p.error("--endpoint and --endpoint-name go together")
    if args.endpoint and args.breakdown and not (args.model and args.model.is_dir()):
        p.error("--breakdown with --endpoint needs --model, the dir that endpoint serves")
    unknown = set(args.containers.split(",")) - set(CONTAINERS)
    if unknown:
        p.error(f"unknown container(s) {', '.join(sorted(unknown))}; choose from {', '.join(CONTAINERS)}")
    return args


def measure(stack, client: Client, pool: list[Sample], concurrencies: list[int], args: argparse.Namespace,
            model_dir: Path | None) -> dict:
    """Warm-up, then the load at each concurrency; RSS around it and the breakdown after it for a local stack."""
    result: dict = {"stack": getattr(stack, "kind", "api"), "startup_s": getattr(stack, "startup_seconds", None),
                    "runs": []}
    run_load(client, pool, args.warmup, 1, args.max_seconds)
    if isinstance(stack, LocalStack):
        result["rss_mb_before"] = stack.rss_mb()
        print(f"RSS before: {result['rss_mb_before']}")
    for c in concurrencies:
        run = run_load(client, pool, args.requests, c, args.max_seconds)
        result["runs"].append(run)
        print(f"c={c:>3} sent={run['sent']} in {run['seconds']} s: {run['throughput_rps']} req/s, "
              f"p50 {run['p50_ms']} ms, p95 {run['p95_ms']} ms, p99 {run['p99_ms']} ms, "
              f"errors {run['errors'] or 0}{' (stopped by --max-seconds)' if run['stopped_by_time'] else ''}")
    if isinstance(stack, LocalStack):
        result["rss_mb_after"] = stack.rss_mb()
        print(f"RSS after: {result['rss_mb_after']}")
    if args.breakdown:
        result["breakdown_ms"] = breakdown(model_dir, pool, stack, args.breakdown_rounds, args.max_seconds)
        print("breakdown (median ms per request, one at a time):")
        for key, value in result["breakdown_ms"].items():
            print(f"  {key:>24}: {value}")
    return result


def comparison(results: list[dict]) -> list[str]:
    """The stacks' figures side by side, with each one's ratio to the first."""
    def figures(result: dict) -> dict[str, float]:
        found = {"start-up to first 200 (s)": result["startup_s"],
                 "RSS container after (MB)": result["rss_mb_after"]["container"],
                 "PSS container after (MB)": result["rss_mb_after"]["container_pss"],
                 "RSS front door after (MB)": result["rss_mb_after"]["frontdoor"]}
        for run in result["runs"]:
            c = run["concurrency"]
            found |= {f"c={c} p50 (ms)": run["p50_ms"], f"c={c} p99 (ms)": run["p99_ms"],
                      f"c={c} throughput (req/s)": run["throughput_rps"]}
        return found

    table = [figures(result) for result in results]
    names = [result["stack"] for result in results]
    lines = [f"{'':>28} " + " ".join(f"{n:>12}" for n in names) + "".join(f" {n + '/' + names[0]:>24}" for n in names[1:])]
    for key in table[0]:
        row = [t[key] for t in table]
        ratios = "".join(f" {(v / row[0] if row[0] else float('nan')):>24.2f}" for v in row[1:])
        lines.append(f"{key:>28} " + " ".join(f"{v:>12}" for v in row) + ratios)
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pool = image_pool()
    sizes = sorted(len(s.body) for s in pool)
    print(f"images: {len(pool)} ({', '.join(f for f, _, _ in FORMATS)}), {sizes[0]:,} to {sizes[-1]:,} bytes, "
          f"median {statistics.median(sizes):,.0f}")
    concurrencies = [int(c) for c in args.sweep.split(",")] if args.sweep else [args.concurrency]
    results: dict = {"machine": {"cpus": os.cpu_count()}, "stacks": []}
    with tempfile.TemporaryDirectory(prefix="imgclf-load-") as tmp:
        if args.url:
            client = Client(args.url, args.api_key, args.timeout)
            results["stacks"].append(measure(None, client, pool, concurrencies, args, None))
        else:
            model_dir = _local_model_dir(args, Path(tmp))
            stacks = ([ExistingEndpoint(args.endpoint, args.endpoint_name, Path(tmp))] if args.endpoint else
                      [LocalStack(kind, model_dir, Path(tmp)) for kind in args.containers.split(",")])
            for stack in stacks:
                with stack:
                    started = f", started in {stack.startup_seconds} s to the first 200" if isinstance(stack, LocalStack) else ""
                    print(f"\n{stack.kind}: front door {stack.url}, endpoint {stack.endpoint_url}{started}")
                    client = Client(stack.url, None, args.timeout)
                    results["stacks"].append(measure(stack, client, pool, concurrencies, args, model_dir))
            if len(stacks) > 1:
                print("\nside by side (one model, one machine, one run):")
                print("\n".join(comparison(results["stacks"])))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def _local_model_dir(args: argparse.Namespace, tmp: Path) -> Path:
    if args.model is None:
        return build_untrained_model_dir(tmp / "model", args.image_size)
    from imgclf.local.endpoint import model_dir_from

    return model_dir_from(args.model.resolve(), tmp / "extracted")


if __name__ == "__main__":
    sys.exit(main())
