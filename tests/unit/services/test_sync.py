"""Journal sync: idempotent uploads to the live prefix, local dir and moto S3, and the CLI."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from algostack.adapters.storage import LocalDirStore, ObjectInfo, S3Store, open_store
from algostack.cli import app
from algostack.core.naming import parse_artifact_key
from algostack.errors import ConfigError
from algostack.services.sync import MANIFEST, journal_day, sync_journals

PREFIX = "models/onnx/AAPL/model_7/live/2024-01-03"


@pytest.fixture
def journals(tmp_path: Path) -> Path:
    d = tmp_path / "journal"
    d.mkdir()
    (d / "trades_2024-01-03.csv").write_text("time,qty\n1,10\n")
    (d / "trades_2024-01-02.csv").write_text("time,qty\n0,5\n")
    (d / "live_trader.log").write_text('{"msg":"start"}\n')
    (d / "notes.txt").write_text("not a journal\n")
    return d


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="algo-bucket")
        yield client


def test_sync_local_dir_uploads_then_second_run_uploads_nothing(
    journals: Path, tmp_path: Path
) -> None:
    store = LocalDirStore(tmp_path / "bucket")
    first = sync_journals(journals, store, PREFIX, day="2024-01-03")
    assert first.uploaded == [f"{PREFIX}/live_trader.log", f"{PREFIX}/trades_2024-01-03.csv"]
    assert store.get_bytes(f"{PREFIX}/trades_2024-01-03.csv") == b"time,qty\n1,10\n"
    second = sync_journals(journals, store, PREFIX, day="2024-01-03")
    assert second.uploaded == [] and len(second.unchanged) == 2


def test_sync_appended_line_uploads_only_that_file(journals: Path, tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path / "bucket")
    sync_journals(journals, store, PREFIX, day="2024-01-03")
    with open(journals / "trades_2024-01-03.csv", "a") as fh:
        fh.write("2,20\n3,")  # a line still being written is not uploaded
    report = sync_journals(journals, store, PREFIX, day="2024-01-03")
    assert report.uploaded == [f"{PREFIX}/trades_2024-01-03.csv"]
    assert store.get_bytes(f"{PREFIX}/trades_2024-01-03.csv").endswith(b"2,20\n")


def test_sync_moto_s3_idempotent_and_final_manifest(journals: Path, s3: Any) -> None:
    store = S3Store("algo-bucket", s3)
    first = sync_journals(journals, store, PREFIX, day="2024-01-03", final=True)
    assert f"{PREFIX}/{MANIFEST}" in first.uploaded and len(first.uploaded) == 3
    manifest = json.loads(store.get_bytes(f"{PREFIX}/{MANIFEST}"))
    assert manifest["files"]["trades_2024-01-03.csv"]["size"] == len(b"time,qty\n1,10\n")
    again = sync_journals(journals, store, PREFIX, day="2024-01-03", final=True)
    assert again.uploaded == [] and len(again.unchanged) == 3
    keys = list(store.list_keys("models/"))
    assert all(parse_artifact_key(k) is None for k in keys)  # never looks like an artifact


class _KmsLikeStore(LocalDirStore):
    """A store whose ETag is not the MD5 (as S3 with SSE-KMS)."""

    puts = 0

    def put_bytes(self, key: str, data: bytes) -> None:
        self.puts += 1
        super().put_bytes(key, data)

    def stat(self, key: str) -> ObjectInfo | None:
        info = super().stat(key)
        return None if info is None else ObjectInfo(info.size, "kms" + (info.md5 or "")[:8])


def test_sync_non_md5_etag_still_idempotent_through_state(journals: Path, tmp_path: Path) -> None:
    store = _KmsLikeStore(tmp_path / "bucket")
    sync_journals(journals, store, PREFIX)
    puts = store.puts
    report = sync_journals(journals, store, PREFIX)
    assert report.uploaded == [] and store.puts == puts


def test_sync_concurrent_runs_are_serialised_and_leave_valid_state(
    journals: Path, tmp_path: Path
) -> None:
    # The timer's sync and the trader's final sync on stop may overlap (found on the emulated
    # AWS day): they must take turns, and the state file must stay whole.
    inside = {"now": 0, "most": 0}
    guard = threading.Lock()

    class SlowStore(LocalDirStore):
        def put_bytes(self, key: str, data: bytes) -> None:
            with guard:
                inside["now"] += 1
                inside["most"] = max(inside["most"], inside["now"])
            time.sleep(0.05)
            super().put_bytes(key, data)
            with guard:
                inside["now"] -= 1

    def run(n: int) -> None:
        store = SlowStore(tmp_path / "bucket")
        sync_journals(journals, store, f"{PREFIX}-{n}", final=True)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside["most"] == 1
    state = json.loads((journals / ".sync-state.json").read_text())
    assert len(state) == 4 * 4  # 2 trades files, the log, the manifest per prefix
    assert not list(journals.glob(".tmp-*"))


def test_sync_missing_journal_dir_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        sync_journals(tmp_path / "nope", LocalDirStore(tmp_path / "b"), PREFIX)


def test_sync_cli_local_bucket_and_repeat(journals: Path, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    args = [
        "sync", "--bucket", str(bucket), "--model", "models/onnx/AAPL/model_7",
        "--journal-dir", str(journals), "--day", "2024-01-03",
    ]  # fmt: skip
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "2 uploaded" in first.output
    assert (bucket / PREFIX / "trades_2024-01-03.csv").is_file()
    assert not (bucket / PREFIX / "trades_2024-01-02.csv").exists()
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "0 uploaded" in second.output


def test_sync_cli_without_day_files_under_the_journals_session_not_the_wall_clock(
    journals: Path, tmp_path: Path
) -> None:
    # A final sync after midnight, or on a host whose clock is days past the bars, must still
    # complete the session the trader journaled (found on the emulated AWS day).
    (journals / "decisions_2024-01-04.csv").write_text("time\n")
    assert journal_day(journals) == "2024-01-04"
    bucket = tmp_path / "bucket"
    args = [
        "sync", "--bucket", str(bucket), "--model", "models/onnx/AAPL/model_7",
        "--journal-dir", str(journals),
    ]  # fmt: skip
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    day_prefix = bucket / "models/onnx/AAPL/model_7/live/2024-01-04"
    assert (day_prefix / "live_trader.log").is_file()
    assert not (day_prefix / "trades_2024-01-03.csv").exists()


def test_journal_day_none_for_an_empty_or_missing_journal(tmp_path: Path) -> None:
    assert journal_day(tmp_path) is None
    assert journal_day(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("model", "day", "message"),
    [
        ("models/onnx/AAPL", "2024-01-03", "not a model prefix"),
        ("models/onnx/AAPL/model_7", "03/01/2024", "not a date"),
    ],
)
def test_sync_cli_bad_input_one_line_error(
    journals: Path, tmp_path: Path, model: str, day: str, message: str
) -> None:
    args = ["sync", "--bucket", str(tmp_path / "b"), "--model", model,
            "--journal-dir", str(journals), "--day", day]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2  # bad input, as in every command
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b").exists()


def test_sync_open_store_s3_url_through_moto(journals: Path, s3: Any) -> None:
    store = open_store("s3://algo-bucket", s3_client=s3)
    assert sync_journals(journals, store, PREFIX, day="2024-01-03").uploaded
