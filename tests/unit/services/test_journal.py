"""Trade journal and live log: whole lines only, partial tails cut, documented columns."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from algostack.core.orders import Fill, Side
from algostack.errors import DataError
from algostack.services.journal import (
    COLUMNS,
    LIVE_LOG_NAME,
    TradeJournal,
    open_live_log,
    repair_partial_tail,
)

DAY = "2024-01-03"


def _fill(i: int = 1, model: str = "onnx-AAPL-model_7") -> Fill:
    return Fill(
        client_order_id=f"cid-{i}",
        broker_order_id=f"sim-{i}",
        model=model,
        symbol="AAPL",
        side=Side.BUY if i % 2 else Side.SELL,
        qty=10 * i,
        price=185.25 + i,
        ts=1_704_294_000_000_000_000 + i * 60_000_000_000,
        commission=0.5,
    )


def test_journal_append_writes_documented_columns(tmp_path: Path) -> None:
    with TradeJournal(tmp_path, DAY) as j:
        j.append(_fill(1), score=0.73, latency_us=212.5, position_after=10, realised_pnl=0.0)
        j.append(
            _fill(2, model="a,b"), score=-0.1, latency_us=99, position_after=-10,
            realised_pnl=-3.5, reason="flatten",
        )  # fmt: skip
    rows = list(csv.DictReader((tmp_path / f"trades_{DAY}.csv").open()))
    assert tuple(rows[0].keys()) == COLUMNS
    assert rows[0]["time"] == "2024-01-03T15:01:00.000000Z"
    assert rows[0]["side"] == "buy" and rows[0]["qty"] == "10"
    assert rows[0]["client_order_id"] == "cid-1" and rows[0]["broker_order_id"] == "sim-1"
    assert float(rows[0]["score"]) == pytest.approx(0.73)
    assert rows[1]["model"] == "a,b"  # quoted, not split
    assert rows[1]["reason"] == "flatten" and rows[1]["position_after"] == "-10"


def test_journal_reopen_appends_without_second_header(tmp_path: Path) -> None:
    with TradeJournal(tmp_path, DAY) as j:
        j.append(_fill(1), score=0, latency_us=0, position_after=10, realised_pnl=0)
    with TradeJournal(tmp_path, DAY) as j:
        j.append(_fill(2), score=0, latency_us=0, position_after=0, realised_pnl=1)
    lines = (tmp_path / f"trades_{DAY}.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("time,ts_ns,model")


def test_journal_partial_last_line_is_cut_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with TradeJournal(tmp_path, DAY) as j:
        j.append(_fill(1), score=0, latency_us=0, position_after=10, realised_pnl=0)
    path = tmp_path / f"trades_{DAY}.csv"
    whole = path.read_bytes()
    path.write_bytes(whole + b"2024-01-03T15:02:00.000000Z,17042940")  # torn by a crash
    with caplog.at_level(logging.WARNING), TradeJournal(tmp_path, DAY) as j:
        assert path.read_bytes() == whole
        j.append(_fill(3), score=0, latency_us=0, position_after=40, realised_pnl=0)
    assert "partial last line" in caplog.text
    rows = list(csv.DictReader(path.open()))
    assert [r["client_order_id"] for r in rows] == ["cid-1", "cid-3"]


def test_journal_torn_header_only_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / f"trades_{DAY}.csv"
    path.write_bytes(b"time,ts_n")
    with TradeJournal(tmp_path, DAY):
        pass
    assert path.read_text() == ",".join(COLUMNS) + "\n"


def test_journal_foreign_header_refused_and_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / f"trades_{DAY}.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="expected"):
        TradeJournal(tmp_path, DAY)
    assert path.read_text() == "a,b,c\n1,2,3\n"


def test_repair_partial_tail_long_line_without_newline_empties_file(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(b"y" * 200_000)
    assert repair_partial_tail(path) == 200_000
    assert path.read_bytes() == b""
    assert repair_partial_tail(path) == 0


def test_live_log_writes_one_json_line_per_record(tmp_path: Path) -> None:
    handler = open_live_log(tmp_path)
    logger = logging.getLogger("algostack.test.livelog")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("fill\nwith newline", extra={"fields": {"qty": 10}})
        logger.warning("second")
    finally:
        logger.removeHandler(handler)
        handler.close()
    lines = (tmp_path / LIVE_LOG_NAME).read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["msg"] == "fill\nwith newline" and first["qty"] == 10
    assert json.loads(lines[1])["level"] == "WARNING"


_WRITER = """
import sys
from pathlib import Path
from algostack.core.orders import Fill, Side
from algostack.services.journal import TradeJournal
j = TradeJournal(Path(sys.argv[1]), "2024-01-03", fsync=False)
print("ready", flush=True)
i = 0
while True:
    i += 1
    f = Fill(client_order_id=f"cid-{i}", broker_order_id="b" * 200, model="m" * 300,
             symbol="AAPL", side=Side.BUY, qty=i, price=1.0, ts=i)
    j.append(f, score=0, latency_us=0, position_after=i, realised_pnl=0)
"""


def test_journal_kill_9_mid_stream_leaves_only_whole_lines(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        path = tmp_path / f"trades_{DAY}.csv"
        deadline = time.monotonic() + 10
        while path.stat().st_size < 200_000 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    data = path.read_bytes()
    assert data.endswith(b"\n")
    rows = list(csv.DictReader(data.decode().splitlines()))
    assert len(rows) > 100
    assert [int(r["qty"]) for r in rows] == list(range(1, len(rows) + 1))


_FULL_DISK_CHILD = """
import resource, signal, sys
from pathlib import Path
from algostack.core.orders import Fill, Side
from algostack.services.journal import JournalWriteError, TradeJournal
from algostack.services.trader.state import DecisionLog

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
root = Path(sys.argv[1])
with TradeJournal(root, "2024-01-03", fsync=False) as j:
    try:
        for i in range(1, 10_000):
            fill = Fill(client_order_id=f"cid-{i}", broker_order_id=f"sim-{i:08d}", model="m",
                        symbol="AAPL", side=Side.BUY, qty=100, price=185.25 + i,
                        ts=1_704_294_000_000_000_000 + i * 60_000_000_000)
            j.append(fill, score=0.5, latency_us=1.0, position_after=i, realised_pnl=0.0)
    except JournalWriteError as exc:
        print("trades:", exc)
log = DecisionLog(root, "2024-01-03")
try:
    for i in range(10_000):
        log.append((i, "185.25", "0.5", 1, 100, 0, 100, f"cid-{i}", "submitted", "1.0", "signal"))
        log.write()
except JournalWriteError as exc:
    print("decisions:", exc)
"""


@pytest.mark.parametrize("limit", [1500, 4096, 10_001])
def test_a_full_disk_leaves_every_journal_line_complete(tmp_path: Path, limit: int) -> None:
    # RLIMIT_FSIZE stands in for a full disk: the write that crosses it is cut short (the
    # kernel writes what fits), the next fails, as ENOSPC does on a full file system.
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_CHILD, str(tmp_path), str(limit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    said = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    for name, kind in ((f"trades_{DAY}.csv", "trades"), (f"decisions_{DAY}.csv", "decisions")):
        data = (tmp_path / name).read_bytes()
        assert data.endswith(b"\n") and len(data) <= limit
        assert said[kind].startswith(f"{tmp_path / name}: File too large: ")
        assert "cut back to its last whole line" in said[kind]
        assert all(len(row) == len(next(csv.reader([data.decode().splitlines()[0]])))
                   for row in csv.reader(data.decode().splitlines()))  # fmt: skip
