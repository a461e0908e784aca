"""The accepted image media types: one definition for the Lambda and the stack, equal to the handlers'."""
from __future__ import annotations

import subprocess
import sys

from model_dirs import REPO_ROOT

from imgclf_serving import image_decode
from imgclf_serving.frontdoor import content_types


def test_the_inference_handlers_accept_the_same_types_as_the_front_door():
    assert image_decode.ACCEPTED_CONTENT_TYPES == content_types.ACCEPTED_CONTENT_TYPES


def test_importing_the_content_types_loads_neither_powertools_nor_boto3():
    probe = ("import sys, imgclf_serving.frontdoor.content_types; "
             "print(sorted(m for m in ('aws_lambda_powertools', 'boto3', 'botocore') if m in sys.modules))")
    answer = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "[]"
