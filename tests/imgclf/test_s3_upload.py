"""Uploading prepared splits to S3 (moto stands in for S3; the files and keys are real)."""
from __future__ import annotations

import argparse
import io

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from imgclf import data_prepare
from imgclf.errors import UserError
from imgclf.s3_upload import parse_s3_uri, upload_folder

BUCKET = "imgclf-data"


@pytest.fixture
def s3(monkeypatch):
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _keys(client, prefix=""):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def _dataset(root):
    for label, colour in (("ant", (200, 0, 0)), ("bee", (0, 0, 200))):
        (root / label).mkdir(parents=True)
        for index in range(10):
            Image.new("RGB", (16, 16), colour).save(root / label / f"{index}.png")
    return root


def test_every_file_lands_under_the_prefix_with_its_relative_path(s3, tmp_path):
    (tmp_path / "train" / "ant").mkdir(parents=True)
    (tmp_path / "train" / "ant" / "a.png").write_bytes(b"png")
    (tmp_path / "dataset.json").write_text("{}")

    keys = upload_folder(tmp_path, f"s3://{BUCKET}/runs/one/", client=s3, stream=io.StringIO())

    assert _keys(s3) == set(keys) == {"runs/one/train/ant/a.png", "runs/one/dataset.json"}


def test_the_uploaded_objects_hold_the_file_bytes(s3, tmp_path):
    (tmp_path / "x.bin").write_bytes(bytes(range(256)) * 40)

    upload_folder(tmp_path, f"s3://{BUCKET}", client=s3, stream=io.StringIO())

    assert s3.get_object(Bucket=BUCKET, Key="x.bin")["Body"].read() == bytes(range(256)) * 40


def test_progress_reaches_all_files_and_bytes(s3, tmp_path):
    for index in range(25):
        (tmp_path / f"{index}.bin").write_bytes(b"\0" * 100 * 1024)
    stream = io.StringIO()

    upload_folder(tmp_path, f"s3://{BUCKET}/p", client=s3, stream=stream)

    assert stream.getvalue().splitlines()[-1] == "uploading 25/25 files, 2.4/2.4 MB"


def test_a_missing_bucket_is_a_clear_error(s3, tmp_path):
    (tmp_path / "a.png").write_bytes(b"png")

    with pytest.raises(UserError, match="NoSuchBucket"):
        upload_folder(tmp_path, "s3://no-such-bucket/data", client=s3, stream=io.StringIO())


@pytest.mark.parametrize(("uri", "message"), [("bucket/prefix", "must look like s3://"), ("s3:///prefix", "no bucket")])
def test_a_malformed_target_is_refused(uri, message):
    with pytest.raises(UserError, match=message):
        parse_s3_uri(uri)


def test_prepare_with_upload_puts_the_splits_and_manifest_in_the_bucket(s3, tmp_path, capsys):
    src = _dataset(tmp_path / "src")
    parser = argparse.ArgumentParser()
    data_prepare.add_arguments(parser)
    args = parser.parse_args([str(src), "--out", str(tmp_path / "out"), "--upload", f"s3://{BUCKET}/demo"])

    assert data_prepare.run(args) == 0

    local = {f"demo/{p.relative_to(tmp_path / 'out').as_posix()}" for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert _keys(s3, "demo/") == local
    assert "demo/dataset.json" in local
    assert {key.split("/")[1] for key in local} == {"dataset.json", "train", "valid", "test"}
    assert f"s3://{BUCKET}/demo/{{train,valid,test}}/" in capsys.readouterr().out
