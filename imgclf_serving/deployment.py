"""The Ray Serve application that AWS's Ray Serve container runs: a thin deployment over the handlers.

The trainer copies this file to the root of model.tar.gz as `deployment.py`, beside `config.yaml`
(`import_path: deployment:build`), the model files and `code/`. The container extracts the tarball
to /opt/ml/model, puts it and its `code/` on PYTHONPATH, starts Ray and runs `serve run
config.yaml`; its adapter on port 8080 passes `POST /invocations` on to `POST /` here with the
body, Content-Type, Accept and `X-Amzn-SageMaker-*` headers, and returns this answer unchanged
(aws/deep-learning-containers scripts/docker/ray/sagemaker_entrypoint.sh and sagemaker_serve.py).

Each replica runs model_fn once on the model files beside this file; each request runs input_fn,
predict_fn and output_fn (imgclf_serving/inference.py, the handlers TorchServe runs too). A typed
request error is answered with its status and `{"error": message}`, the shape the container's
adapter gives its own errors; anything else is a 500 with a fixed message, its trace in the
replica's log only.

Replicas per instance: SAGEMAKER_MODEL_SERVER_WORKERS (the CreateModel environment sets 1 for
serverless), else one per GPU, else one that uses every CPU. On a GPU the replica batches
concurrent requests into one forward (Ray Serve's @serve.batch); on a CPU a batch costs as much
per image as single requests, so each request runs alone.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from imgclf_serving.errors import RequestError
from imgclf_serving.image_decode import env_int

#: The tarball's root, which holds this file: /opt/ml/model in the container.
MODEL_DIR = Path(__file__).resolve().parent
#: Requests one GPU forward takes at most, and how long the first waits for others to join it.
MAX_BATCH_SIZE = 8
BATCH_WAIT_SECONDS = 0.01
INTERNAL_ERROR = "the model failed to process the request"

logger = logging.getLogger("ray.serve")


def _json_error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status_code=status, media_type="application/json")


@serve.deployment
class Classifier:
    """One replica: the loaded model, answering `POST /`."""

    def __init__(self, model_dir: str, batched: bool) -> None:
        # Imported here: torch loads in each replica, not in the task that builds the application.
        from imgclf_serving import inference

        self.handlers = inference
        self.model = inference.model_fn(model_dir)
        self.batched = batched

    async def __call__(self, request: Request) -> Response:
        headers = dict(request.headers)  # lower-case names, as output_fn looks them up
        try:
            image = self.handlers.input_fn(await request.body(), headers.get("content-type"))
            if self.batched and not self.handlers.wants_explanation(headers):
                prediction = await self.predict_batch(image)
            else:  # an explained request runs alone: Grad-CAM takes one image at a time
                prediction = self.handlers.predict_fn(image, self.model, headers)
            body, content_type = self.handlers.output_fn(prediction, headers.get("accept"), headers)
        except RequestError as error:
            return _json_error(error.status_code, error.message)
        except Exception:  # noqa: BLE001 - the trace is for the log, never for the caller
            logger.exception("request failed")
            return _json_error(500, INTERNAL_ERROR)
        return Response(body, media_type=content_type)

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_SECONDS)
    async def predict_batch(self, images: list) -> list:
        return self.handlers.predict_batch_fn(images, self.model)


def build(_args: dict) -> serve.Application:
    """Ray Serve's application builder (config.yaml's import_path; it takes config.yaml's `args`,
    which sets none): sizes the replicas to the node Ray started on, which has every GPU and CPU
    of the instance."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    replicas = env_int("SAGEMAKER_MODEL_SERVER_WORKERS", max(gpus, 1))
    # A share of the node each, so that every replica fits; Ray sets a replica's torch threads
    # (OMP_NUM_THREADS) from its num_cpus.
    actor = {"num_cpus": cpus / replicas, "num_gpus": gpus / replicas}
    options = {"num_replicas": replicas, "ray_actor_options": actor}
    if gpus:  # room for a full batch waiting while one runs
        options["max_ongoing_requests"] = 2 * MAX_BATCH_SIZE
    return Classifier.options(**options).bind(str(MODEL_DIR), batched=gpus > 0)
