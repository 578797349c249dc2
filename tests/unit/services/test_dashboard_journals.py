"""Journal scanning for the dashboard: layout, tolerant columns, bad rows counted."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from algostack.adapters.storage import LocalDirStore
from algostack.services.dashboard.aggregate import DashboardState
from algostack.services.dashboard.demo import DEFAULT_MODELS, seed_bucket
from algostack.services.dashboard.journals import apply_scan, parse_trades_csv, scan_bucket

DAY = date(2025, 6, 16)


def test_scan_bucket_finds_models_journals_and_log_tail(tmp_path: Path) -> None:
    seed_bucket(tmp_path, DAY)
    scan = scan_bucket(LocalDirStore(tmp_path), DAY.isoformat())
    assert set(scan.models) == {m.key for m in DEFAULT_MODELS}
    assert scan.models["linear-SPY-model_9"] == "SPY"
    # the silent model has artifacts but no journal
    assert set(scan.journals) == {m.key for m in DEFAULT_MODELS if not m.silent}
    j = scan.journals["onnx-AAPL-model_1"]
    assert [t.side for t in j.trades] == ["buy", "sell"]
    assert all(t.symbol == "AAPL" and t.source == "journal" for t in j.trades)
    assert j.log_tail[-1].endswith('journal line 2 of onnx-AAPL-model_1"}')


def test_scan_bucket_other_days_are_ignored(tmp_path: Path) -> None:
    seed_bucket(tmp_path, DAY)
    scan = scan_bucket(LocalDirStore(tmp_path), "2025-06-17")
    assert scan.journals == {} and len(scan.models) == len(DEFAULT_MODELS)


def test_parse_trades_csv_bad_rows_are_skipped_and_counted() -> None:
    data = (
        b"Timestamp,Side,Qty,Price,Order_ID,unknown\n"
        b"2025-06-16T14:00:00Z,buy,3,10.5,o1,z\n"
        b"garbage,buy,3,10.5,o2,z\n"
        b"2025-06-16T14:01:00Z,sell,,10.5,o3,z\n"
        b"2025-06-16T14:02:00Z,sell,3,10.7,o4\n"
    )
    rows, skipped = parse_trades_csv(data, "AAPL")
    assert [r.order_id for r in rows] == ["o1", "o4"]
    assert skipped == 2
    assert rows[0].symbol == "AAPL"


def test_apply_scan_registers_silent_models_and_counts_skipped(tmp_path: Path) -> None:
    seed_bucket(tmp_path, DAY)
    path = tmp_path / "models/onnx/AAPL/model_1/live/2025-06-16/trades_2025-06-16.csv"
    path.write_text(path.read_text() + "bad,row\n")
    state = DashboardState()
    apply_scan(state, scan_bucket(LocalDirStore(tmp_path), DAY.isoformat()))
    snap = state.snapshot(0)
    assert snap.models["linear-SPY-model_9"].row.silent
    assert len(snap.models["onnx-AAPL-model_1"].trades) == 2
    assert snap.ignored == 1


def test_scan_bucket_reads_the_same_layout_from_s3(tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws

    from algostack.adapters.storage import open_store

    seed_bucket(tmp_path, DAY)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="desk")
        for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
            key = path.relative_to(tmp_path).as_posix()
            client.put_object(Bucket="desk", Key=key, Body=path.read_bytes())
        scan = scan_bucket(open_store("s3://desk", s3_client=client), DAY.isoformat())
    local = scan_bucket(LocalDirStore(tmp_path), DAY.isoformat())
    assert scan.models == local.models
    assert {k: [t.order_id for t in j.trades] for k, j in scan.journals.items()} == {
        k: [t.order_id for t in j.trades] for k, j in local.journals.items()
    }
