"""The model "bucket": S3 through boto3, or a local directory laid out exactly like it.

One interface, two implementations, chosen by URL: ``s3://bucket`` or a filesystem path
(``file://`` optional). The catalog lists models through it and ``algostack sync`` uploads
journals through it, so the local session and AWS share one code path.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from algostack.core.atomic_file import TMP_PREFIX, replace_file
from algostack.errors import ConfigError, DataError, RetryableError


@dataclass(frozen=True)
class ObjectInfo:
    """Size and MD5 (hex) of a stored object; MD5 is ``None`` when the store cannot tell
    (an S3 multipart ETag)."""

    size: int
    md5: str | None


class BucketStore(Protocol):
    """A flat key -> bytes store with S3 semantics."""

    url: str

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield every key under ``prefix`` in lexicographic order (paginated for S3)."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """Return an object's content; ``DataError`` naming the key when it is missing."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (atomically: readers never see half an object)."""
        ...

    def stat(self, key: str) -> ObjectInfo | None:
        """Size and MD5 of ``key``, or ``None`` when it does not exist."""
        ...


def md5_hex(data: bytes) -> str:
    """MD5 of ``data`` in hex, as S3 reports it in a single-part ETag."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid object key {key!r}")
    return key


class LocalDirStore:
    """A directory that mirrors the bucket: key ``a/b/c`` is file ``<root>/a/b/c``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield every file's key under ``prefix``, sorted (S3 order)."""
        if not self.root.is_dir():
            raise ConfigError(f"bucket directory {self.root} does not exist or is not a directory")
        keys = []
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(TMP_PREFIX):
                    continue
                rel = Path(dirpath, name).relative_to(self.root).as_posix()
                if rel.startswith(prefix):
                    keys.append(rel)
        yield from sorted(keys)

    def get_bytes(self, key: str) -> bytes:
        """Read one object."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{self.url}: no object {key!r}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write through a temporary file and rename, so a crash never leaves half a file;
        a failed write (a full disk) leaves the old file, no temporary file, and raises
        ``FileWriteError`` naming the file and the OS error."""
        replace_file(self._path(key), data)

    def stat(self, key: str) -> ObjectInfo | None:
        """Size and MD5 of a file, or ``None``."""
        path = self._path(key)
        if not path.is_file():
            return None
        data = path.read_bytes()
        return ObjectInfo(len(data), md5_hex(data))


def aws_setup_problem(exc: BaseException) -> str | None:
    """One line for an AWS client that could not ask anything (no credentials, no region);
    ``None`` for any other error. Said the same by every command that reaches AWS."""
    from botocore.exceptions import (
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError | ProfileNotFound):
        return (
            f"AWS credentials: {exc} (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY)"
        )
    if isinstance(exc, NoRegionError):
        return "no AWS region: pass --region or set AWS_DEFAULT_REGION"
    return None


class S3Store:
    """An S3 bucket through a boto3 client (injected; ``AWS_ENDPOINT_URL`` reaches moto)."""

    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self.client = client
        self.url = f"s3://{bucket}"

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except BotoCoreError as exc:  # no answer, or nothing could be asked
            # Missing credentials too are worth another try: on a host they come from the
            # instance metadata, which may not answer in time at boot (a service restarted
            # by systemd gets them then; a user sees the same one line).
            raise RetryableError(f"{self.url}: {what}: {aws_setup_problem(exc) or exc}") from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket", "AccessDenied", "403", "InvalidAccessKeyId"):
                raise ConfigError(f"{self.url}: {what}: {code}") from exc
            if code in ("NoSuchKey", "404"):
                raise DataError(f"{self.url}: {what}: no such object") from exc
            raise RetryableError(f"{self.url}: {what}: {code or exc}") from exc

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield keys page by page (ListObjectsV2 returns at most 1,000 per call)."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            f"list {prefix!r}", lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=prefix))
        )
        for page in pages:
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def get_bytes(self, key: str) -> bytes:
        """Download one object."""
        resp = self._call(f"get {key!r}", self.client.get_object, Bucket=self.bucket, Key=key)
        body: bytes = resp["Body"].read()
        return body

    def put_bytes(self, key: str, data: bytes) -> None:
        """Upload one object (single PUT: atomic in S3)."""
        self._call(
            f"put {key!r}",
            self.client.put_object,
            Bucket=self.bucket,
            Key=_check_key(key),
            Body=data,
        )

    def stat(self, key: str) -> ObjectInfo | None:
        """HEAD one object; ``None`` when it does not exist."""
        try:
            resp = self._call(f"head {key!r}", self.client.head_object, Bucket=self.bucket, Key=key)
        except DataError:
            return None
        etag = str(resp.get("ETag", "")).strip('"')
        return ObjectInfo(int(resp["ContentLength"]), None if "-" in etag else etag)


def open_store(url: str, *, s3_client: Any = None) -> BucketStore:
    """Open ``s3://bucket[/ignored]`` or a local directory (``file://`` prefix optional)."""
    if url.startswith("s3://"):
        bucket = url[5:].split("/", 1)[0]
        if not bucket:
            raise ConfigError(f"invalid bucket URL {url!r}: expected s3://<bucket>")
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        return S3Store(bucket, s3_client)
    if "://" in url and not url.startswith("file://"):
        raise ConfigError(f"unsupported store URL {url!r}: use s3://<bucket> or a directory")
    return LocalDirStore(Path(url.removeprefix("file://")))
