from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from algostack.adapters.storage import LocalDirStore, S3Store, md5_hex, open_store
from algostack.errors import ConfigError, DataError, RetryableError


def test_local_store_put_list_get_stat(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    store.put_bytes("models/a/B/m_1-outer_0_inner_0.json", b"{}")
    store.put_bytes("models/a/B/m_1/live/2026-11-24/live_trader.log", b"x\n")
    assert list(store.list_keys("models/a/B/m_1-")) == ["models/a/B/m_1-outer_0_inner_0.json"]
    assert store.get_bytes("models/a/B/m_1-outer_0_inner_0.json") == b"{}"
    info = store.stat("models/a/B/m_1/live/2026-11-24/live_trader.log")
    assert info is not None and info.size == 2 and info.md5 == md5_hex(b"x\n")
    assert store.stat("nope") is None


def test_local_store_missing_object_and_dir_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no object 'k'"):
        LocalDirStore(tmp_path).get_bytes("k")
    with pytest.raises(ConfigError, match="does not exist"):
        list(LocalDirStore(tmp_path / "absent").list_keys())


def test_local_store_refuses_escaping_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        LocalDirStore(tmp_path).put_bytes("../evil", b"")


def test_open_store_rejects_unknown_scheme() -> None:
    with pytest.raises(ConfigError, match="unsupported store URL"):
        open_store("gs://bucket")


@mock_aws
def test_s3_store_paginates_and_stats() -> None:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="algostack-test")
    store = S3Store("algostack-test", client)
    for i in range(1005):
        store.put_bytes(f"models/t/S/m_{i}-outer_0_inner_0.json", b"{}")
    assert len(list(store.list_keys("models/"))) == 1005
    info = store.stat("models/t/S/m_1-outer_0_inner_0.json")
    assert info is not None and info.md5 == md5_hex(b"{}")
    assert store.stat("missing") is None
    with pytest.raises(DataError):
        store.get_bytes("missing")


@mock_aws
def test_s3_store_missing_bucket_is_config_error() -> None:
    client = boto3.client("s3", region_name="us-east-1")
    with pytest.raises(ConfigError, match="NoSuchBucket"):
        list(S3Store("absent", client).list_keys())


def test_s3_store_without_credentials_or_endpoint_names_it_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No credentials anywhere (environment, files, instance metadata): outside the project.
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.session.Session().client(
        "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:1"
    )
    # Retryable: on a host the credentials come from instance metadata, which may be late.
    with pytest.raises(RetryableError, match=r"^s3://b: list 'models/': AWS credentials: "):
        list(S3Store("b", client).list_keys("models/"))
    # With credentials but nothing listening: no answer, which a retry may cure.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    client = boto3.session.Session().client(
        "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:1"
    )
    with pytest.raises(RetryableError, match="Could not connect to the endpoint URL"):
        S3Store("b", client).get_bytes("models/x")
