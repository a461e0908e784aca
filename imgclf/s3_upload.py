"""Upload a prepared dataset folder to S3, where the training job's channels read it.

Small images are many small objects, so files go up in parallel threads (one shared client, which
boto3 allows across threads) and large ones in multipart chunks (TransferConfig). One progress line
counts files and bytes for the whole folder.
"""
from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from imgclf.errors import UserError

PARALLEL_FILES = 8
MULTIPART_THRESHOLD = 64 * 1024 * 1024


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> (`bucket`, `some/prefix`)."""
    if not uri.startswith("s3://"):
        raise UserError(f"upload target must look like s3://bucket/prefix, got {uri!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise UserError(f"upload target {uri!r} has no bucket name")
    return bucket, prefix.strip("/")


def upload_folder(folder: str | Path, uri: str, client=None, stream: TextIO = sys.stderr) -> list[str]:
    """Upload every file under `folder` to `uri`, keeping relative paths; return the keys written."""
    import boto3
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_s3_uri(uri)
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise UserError(f"nothing to upload: {folder} has no files")
    client = client or boto3.client("s3")
    config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, max_concurrency=4)
    progress = _Progress(len(files), sum(p.stat().st_size for p in files), stream)
    keys = [f"{prefix}/{p.relative_to(folder).as_posix()}".lstrip("/") for p in files]

    def upload(path: Path, key: str) -> None:
        client.upload_file(str(path), bucket, key, Config=config, Callback=progress.add_bytes)
        progress.file_done()

    try:
        # The first file alone: a missing bucket or credential fails once, not in every thread.
        upload(files[0], keys[0])
        with ThreadPoolExecutor(PARALLEL_FILES) as pool:
            list(pool.map(upload, files[1:], keys[1:]))  # list() re-raises a thread's error here
    except (BotoCoreError, ClientError, S3UploadFailedError) as err:
        raise UserError(f"upload to {uri} failed: {_reason(err)}") from err
    finally:
        progress.close()
    return keys


def _reason(err: Exception) -> str:
    """S3's own words, or the fix for missing credentials."""
    from botocore.exceptions import NoCredentialsError

    if isinstance(err, NoCredentialsError):
        return "no AWS credentials found; set AWS_PROFILE or run `aws configure`"
    return str(err)


class _Progress:
    """`uploading 120/1200 files, 1.2/10.4 MB`: redrawn in place on a terminal, every 10 % in a log."""

    def __init__(self, total_files: int, total_bytes: int, stream: TextIO):
        self.total_files, self.total_bytes, self.stream = total_files, total_bytes, stream
        self.files = self.bytes = 0
        self.lock = threading.Lock()
        self.live = stream.isatty()
        self.every = max(1, total_files // (100 if self.live else 10))

    def add_bytes(self, amount: int) -> None:
        with self.lock:
            self.bytes += amount

    def file_done(self) -> None:
        with self.lock:
            self.files += 1
            if self.files == self.total_files or self.files % self.every == 0:
                mb = 1024 * 1024
                line = f"uploading {self.files}/{self.total_files} files, {self.bytes / mb:.1f}/{self.total_bytes / mb:.1f} MB"
                self.stream.write(f"\r{line}" if self.live else f"{line}\n")
                self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
