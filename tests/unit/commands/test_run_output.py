"""What ``algostack run`` leaves and prints at the end: ``summary.json`` written whole or
not at all, on a real full disk (a small tmpfs); the summary's lines unwrapped in a pipe."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from algostack.commands.run import _write_summary, finish
from algostack.errors import FileWriteError
from algostack.local.summary import RunSummary
from algostack.testing.tiny_disk import FILLER, fill, tiny_disk

ENOSPC = "[Errno 28] No space left on device"


def _summary(*notes: str) -> RunSummary:
    return RunSummary(
        mode="run",
        run_id="20240315T093000-001",
        day="2024-03-15",
        source="synthetic",
        wall_s=1.0,
        bars=780,
        models=[],
        notes=list(notes),
    )


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    with tiny_disk(tmp_path / "run", "64k") as d:
        yield d


def test_write_summary_on_a_full_disk_leaves_no_file_and_no_temporary(disk: Path) -> None:
    target = disk / "summary.json"
    fill(disk)
    with pytest.raises(FileWriteError) as info:
        _write_summary(target, _summary())
    assert str(info.value) == f"cannot write {target}: {ENOSPC}"
    assert sorted(p.name for p in disk.iterdir()) == [FILLER]  # no 0-byte summary, no temp


def test_write_summary_that_fails_keeps_the_previous_summary_whole(disk: Path) -> None:
    target = disk / "summary.json"
    _write_summary(target, _summary("first"))
    fill(disk)
    with pytest.raises(FileWriteError, match=r"Errno 28"):
        _write_summary(target, _summary("second", "x" * 100_000))
    assert json.loads(target.read_text())["notes"] == ["first"]
    assert sorted(p.name for p in disk.iterdir()) == [FILLER, "summary.json"]


def test_finish_in_a_pipe_prints_each_note_on_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # what a pipe or a CI log is given
    note = "gateway: 0 intents in 0 batches, " + "0 orders to the sim account, " * 8 + "done"
    with pytest.raises(typer.Exit):
        finish(_summary(note, "a short one"), as_json=False, exit_code=0)
    lines = capsys.readouterr().out.splitlines()
    assert note in lines and "a short one" in lines, lines


def test_finish_prints_a_note_that_quotes_brackets_as_it_is(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a bad row's text in a note: Rich read it as markup and raised MarkupError on '[/x]'
    note = "1 bad row(s) skipped, first: f.csv row 3: timestamp '[/x]' is not a time [bold]"
    with pytest.raises(typer.Exit):
        finish(_summary(note), as_json=False, exit_code=0)
    assert note in capsys.readouterr().out.splitlines()


def test_replay_on_a_full_disk_says_the_summary_was_not_written_in_one_line(
    disk: Path, tmp_path: Path
) -> None:
    """It ended in a traceback: replay wrote its summary outside any error handling."""
    import math

    from typer.testing import CliRunner

    from algostack.adapters.artifacts.native_json import dump_native
    from algostack.adapters.offline.bars_file import write_bars
    from algostack.cli import app
    from algostack.core.market import NS_PER_MIN, Bar

    fold = tmp_path / "store/models/sma/AAPL/model_4-outer_0_inner_0.json"
    fold.parent.mkdir(parents=True)
    thresholds = {"long_entry": 0.0, "long_exit": 0.0}
    fold.write_bytes(dump_native(kind="linear", features=["sma_ratio_10_30"], coef=[1.0],
                                 intercept=0.0, thresholds=thresholds))  # fmt: skip
    t0 = 1_710_509_400 * 1_000_000_000  # 2024-03-15 09:30 New York
    pxs = [100.0 + 5.0 * math.sin(i / 12.0) for i in range(120)]
    write_bars(tmp_path / "bars.csv", [
        Bar(symbol="AAPL", ts=t0 + i * NS_PER_MIN, open=p, high=p + 0.2, low=p - 0.2,
            close=p + 0.05, volume=1000.0) for i, p in enumerate(pxs)])  # fmt: skip
    fill(disk)
    res = CliRunner().invoke(
        app,
        ["replay", "--bars", str(tmp_path / "bars.csv"), "--models", str(tmp_path / "store"),
         "--no-report", "--json", "--home", str(disk)],
        env={"ALGOSTACK_HOME": str(disk), "COLUMNS": "80"},
    )  # fmt: skip
    assert isinstance(res.exception, SystemExit) and res.exit_code == 1, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, res.stderr  # beside it, the log's own 'log not written' notice
    (line,) = errors
    assert line.startswith("error: summary not written: cannot write ") and ENOSPC in line
    doc = json.loads(res.stdout)  # the summary still goes to stdout
    assert doc["summary_path"] == "" and doc["bars"] == 120
