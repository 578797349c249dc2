"""The market-data archive writer on a local bucket directory and on moto's S3 server: parts
appear during the session, a crash leaves them readable and the day incomplete, the finish
marks it complete, a restarted writer continues the day without doubling a bar."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from algostack.adapters.offline.synthetic import SyntheticSource
from algostack.adapters.storage import BucketStore, LocalDirStore, ObjectInfo, S3Store
from algostack.core.market import NS_PER_MIN, Bar, TradingStatus
from algostack.errors import RetryableError
from algostack.services.archive import (
    ArchiveWriter,
    DayManifest,
    decode_part,
    manifest_key,
    parse_key,
    part_key,
)
from algostack.services.archive_reader import read_bars, scan

DAY = date(2024, 3, 15)


def session_bars(symbols: list[str]) -> list[list[Bar]]:
    """The synthetic session's bars, one batch per minute."""
    src = SyntheticSource(symbols, day=DAY, seed=3, include_trades=False)

    async def collect() -> list[list[Bar]]:
        return [[e for e in b if isinstance(e, Bar)] async for b in src.stream()]

    return asyncio.run(collect())


BATCHES = session_bars(["AAPL", "MSFT"])


def bucket(tmp_path: Path) -> LocalDirStore:
    """An empty bucket directory (``algostack ingest --archive`` creates it)."""
    (tmp_path / "bucket").mkdir()
    return LocalDirStore(tmp_path / "bucket")


def part_keys(store: BucketStore) -> list[str]:
    return [k for k in store.list_keys("market/") if k.endswith(".parquet")]


async def test_archive_writer_parts_appear_during_the_session_and_close_marks_complete(
    tmp_path: Path,
) -> None:
    store = bucket(tmp_path)
    writer = ArchiveWriter(store)
    for batch in BATCHES[:31]:  # 09:30..10:00
        writer.add(batch, recv_ns=batch[0].ts + 60 * 10**9)
    await writer.drain()
    written = part_keys(store)
    # Every 5 minutes of event time: 09:30-09:35, ..., 09:55-10:00 held for the next flush.
    assert len(written) == 2 * 5
    assert parse_key(written[0]) is not None
    manifest = DayManifest.from_json(store.get_bytes(manifest_key("bars", DAY)), "m")
    assert not manifest.complete
    assert manifest.symbols["AAPL"].rows == 30
    for batch in BATCHES[31:]:
        writer.add(batch)
    assert await writer.close() is True
    assert writer.stats.archived == 780 and writer.stats.complete
    [listing] = scan(store)
    assert listing.complete and listing.rows == 780
    bars = read_bars(store, DAY)
    assert bars == [b for batch in BATCHES for b in batch]


async def test_archive_writer_crash_leaves_parts_readable_and_the_day_incomplete(
    tmp_path: Path,
) -> None:
    store = bucket(tmp_path)
    writer = ArchiveWriter(store)
    for batch in BATCHES[:100]:
        writer.add(batch)
    await writer.drain()  # then the process dies: no close()
    [listing] = scan(store)
    assert not listing.complete
    assert "did not finish" in listing.problem
    kept = read_bars(store, DAY, partial=True)
    assert 90 <= len(kept) // 2 < 100  # at most the last 5 minutes lost
    assert kept == [b for batch in BATCHES for b in batch][: len(kept)]


async def test_archive_writer_restart_continues_the_day_without_doubling_a_bar(
    tmp_path: Path,
) -> None:
    store = bucket(tmp_path)
    first = ArchiveWriter(store)
    for batch in BATCHES[:100]:
        first.add(batch)
    await first.drain()  # crashed
    archived = len(read_bars(store, DAY, partial=True)) // 2
    # A part written just before the crash, after the manifest: adopted, not overwritten.
    extra = BATCHES[archived]
    store.put_bytes(
        part_key("bars", DAY, "AAPL", 99), _encode([b for b in extra if b.symbol == "AAPL"])
    )
    second = ArchiveWriter(store)
    for batch in BATCHES[archived - 3 :]:  # the restarted ingest re-sends a few minutes
        second.add(batch)
    assert await second.close() is True
    assert second.stats.duplicates == 2 * 3 + 1
    [listing] = scan(store)
    assert listing.complete, listing.problem
    assert read_bars(store, DAY) == [b for batch in BATCHES for b in batch]
    assert max(parse_key(k).seq for k in part_keys(store)) > 99  # type: ignore[union-attr]


def _encode(bars: list[Bar]) -> bytes:
    from algostack.services.archive import encode_part

    return encode_part("bars", [(b, 0) for b in bars])


async def test_archive_writer_keeps_statuses_and_a_day_per_new_york_date(tmp_path: Path) -> None:
    store = bucket(tmp_path)
    writer = ArchiveWriter(store)
    halt = TradingStatus(symbol="AAPL", ts=BATCHES[10][0].ts + 5, status_code="H", tape="C")
    next_day = Bar(
        symbol="AAPL",
        ts=BATCHES[0][0].ts + 24 * 60 * NS_PER_MIN,
        open=1,
        high=1,
        low=1,
        close=1,
        volume=1,
    )
    writer.add([*BATCHES[0], halt])
    writer.add([next_day])
    assert await writer.close()
    kinds = {(lst.kind, lst.day): lst for lst in scan(store)}
    assert set(kinds) == {("bars", DAY), ("status", DAY), ("bars", date(2024, 3, 16))}
    assert all(lst.complete for lst in kinds.values())
    [key] = kinds[("status", DAY)].symbols["AAPL"].parts
    [(status, _)] = decode_part("status", "AAPL", store.get_bytes(key), key)
    assert status == halt


class FlakyStore:
    """A local store whose puts fail while ``down`` (an S3 outage)."""

    def __init__(self, root: Path) -> None:
        self.inner = LocalDirStore(root)
        self.url = self.inner.url
        self.down = True

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list_keys(prefix)

    def get_bytes(self, key: str) -> bytes:
        return self.inner.get_bytes(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        if self.down:
            raise RetryableError(f"{self.url}: put {key!r}: SlowDown")
        self.inner.put_bytes(key, data)

    def stat(self, key: str) -> ObjectInfo | None:
        return self.inner.stat(key)


async def test_archive_writer_failed_writes_are_tried_again_and_block_completion(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "bucket").mkdir()
    store = FlakyStore(tmp_path / "bucket")
    writer = ArchiveWriter(store)
    for batch in BATCHES[:20]:
        writer.add(batch)
    await writer.drain()
    assert writer.stats.failed_writes > 0 and writer.stats.archived == 0
    assert "archive write failed" in caplog.text
    store.down = False
    for batch in BATCHES[20:]:
        writer.add(batch)
    assert await writer.close()
    assert read_bars(store.inner, DAY) == [b for batch in BATCHES for b in batch]

    store.down = True
    again = ArchiveWriter(store)
    again.add(BATCHES[0])
    assert await again.close() is False  # nothing lost silently: the run says so


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[Any]:
    """moto's S3 server on a free loopback port, and a client with a bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",  # moto's fake credentials
    )
    client.create_bucket(Bucket="archive-bucket")
    try:
        yield client
    finally:
        server.stop()


async def test_archive_writer_on_moto_s3_crash_then_restart_then_complete(moto_s3: Any) -> None:
    store = S3Store("archive-bucket", moto_s3)
    first = ArchiveWriter(store)
    for batch in BATCHES[:50]:
        first.add(batch)
    await first.drain()
    [listing] = scan(store)
    assert not listing.complete and listing.rows > 0
    second = ArchiveWriter(store)
    for batch in BATCHES[40:]:
        second.add(batch)
    assert await second.close()
    [listing] = scan(store)
    assert listing.complete and listing.rows == 780
    assert read_bars(store, DAY, symbols=["MSFT"]) == [
        b for batch in BATCHES for b in batch if b.symbol == "MSFT"
    ]
