"""Sync onto a real full disk (a small tmpfs): every file that fits is stored, no temporary
file stays, and one ``SyncIncompleteError`` line names each file that did not fit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from algostack.adapters.storage import LocalDirStore
from algostack.cli import app
from algostack.services.sync import MANIFEST, STATE_FILE, SyncIncompleteError, sync_journals
from algostack.testing.tiny_disk import FILLER, fill, tiny_disk

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

DAY = "2024-01-03"
MODEL = "models/onnx/AAPL/model_7"
PREFIX = f"{MODEL}/live/{DAY}"
TRADES = b"time,qty\n" + b"2024-01-03T14:31:00Z,10\n" * 40


@pytest.fixture
def journals(tmp_path: Path) -> Path:
    d = tmp_path / "journal"
    d.mkdir()
    (d / f"trades_{DAY}.csv").write_bytes(TRADES)
    (d / "live_trader.log").write_bytes(b'{"msg":"a line of the live log"}\n' * 20_000)  # 660 KB
    return d


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_final_sync_to_a_full_bucket_stores_what_fits_and_names_what_did_not(
    journals: Path, tmp_path: Path
) -> None:
    with tiny_disk(tmp_path / "bucket", "256k") as bucket:
        store = LocalDirStore(bucket)
        with pytest.raises(SyncIncompleteError) as info:
            sync_journals(journals, store, PREFIX, day=DAY, final=True)
        log_path = bucket / PREFIX / "live_trader.log"
        assert str(info.value) == (
            f"1 of 2 file(s) not synced to {bucket}/{PREFIX} ({MANIFEST} not written): "
            f"cannot write {log_path}: [Errno 28] No space left on device"
        )
        report = info.value.report
        assert report.failed == {f"{PREFIX}/live_trader.log": f"cannot write {log_path}: "
                                 "[Errno 28] No space left on device"}  # fmt: skip
        assert report.uploaded == [f"{PREFIX}/trades_{DAY}.csv"]
        assert store.get_bytes(f"{PREFIX}/trades_{DAY}.csv") == TRADES
        assert files_under(bucket) == {f"{PREFIX}/trades_{DAY}.csv"}  # no .tmp-, no manifest
        # Once the disk has room, the next final sync completes the day.
        (journals / "live_trader.log").write_bytes(b'{"msg":"short"}\n')
        again = sync_journals(journals, store, PREFIX, day=DAY, final=True)
        assert again.uploaded == [f"{PREFIX}/live_trader.log", f"{PREFIX}/{MANIFEST}"]
        assert again.unchanged == [f"{PREFIX}/trades_{DAY}.csv"] and not again.failed


def test_sync_with_a_full_journal_disk_still_uploads_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    # The sync's own state file cannot be saved: that only costs re-uploads later.
    with tiny_disk(tmp_path / "journal", "128k") as journals:
        (journals / f"trades_{DAY}.csv").write_bytes(TRADES)
        fill(journals)
        store = LocalDirStore(tmp_path / "bucket")
        report = sync_journals(journals, store, PREFIX, day=DAY, final=True)
        assert report.uploaded == [f"{PREFIX}/trades_{DAY}.csv", f"{PREFIX}/{MANIFEST}"]
        assert {p.name for p in journals.iterdir()} == {f"trades_{DAY}.csv", FILLER, ".sync.lock"}
        assert not (journals / STATE_FILE).exists()


def test_sync_command_to_a_full_bucket_is_one_line_and_exit_1(
    journals: Path, tmp_path: Path
) -> None:
    with tiny_disk(tmp_path / "bucket", "256k") as bucket:
        result = CliRunner().invoke(
            app,
            ["sync", "--bucket", str(bucket), "--model", MODEL, "--journal-dir", str(journals),
             "--day", DAY, "--final"],
        )  # fmt: skip
    assert result.exit_code == 1
    # commands/sync.py lets rich wrap its message at the console's width: join it back.
    said = "".join(result.output.splitlines())
    assert said.startswith("error: sync failed: 1 of 2 file(s) not synced to ")
    assert said.endswith("live_trader.log: [Errno 28] No space left on device")
