"""DecisionLog: lines wait in memory until a commit writes them; the offset counts them."""

from __future__ import annotations

from pathlib import Path

from algostack.services.trader.state import DECISION_COLUMNS, DecisionLog, decisions_file_name

DAY = "2024-03-05"


def row(ts: int) -> tuple[object, ...]:
    return (ts, "100.5", "0.5", 1, 10, 0, 10, "cid", "submitted", "412.0", 'signal, "quoted"')


def test_append_writes_nothing_until_write_then_one_write_for_all(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path, DAY)
    path = tmp_path / decisions_file_name(DAY)
    header = path.read_bytes()
    assert header == (",".join(DECISION_COLUMNS) + "\n").encode()
    log.append(row(1))
    log.append(row(2))
    assert path.read_bytes() == header  # not written yet: no commit covers them
    log.write()
    data = path.read_bytes()
    assert log.offset == len(data) and data.count(b"\n") == 3
    assert b'"signal, ""quoted"""' in data  # csv quoting kept
    log.append(row(3))
    log.close()  # closing writes what is left
    assert path.read_bytes().count(b"\n") == 4


def test_reopen_cuts_back_to_the_committed_offset(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path, DAY)
    log.append(row(1))
    log.write()
    committed = log.offset
    log.append(row(2))
    log.close()
    again = DecisionLog(tmp_path, DAY, committed=committed)
    assert again.offset == committed
    assert (tmp_path / decisions_file_name(DAY)).read_bytes().count(b"\n") == 2
    again.close()
