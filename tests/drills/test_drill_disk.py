"""A full disk under the run (a small tmpfs where it writes): one line naming the path and the
error, exit 1, journals line-complete, no temporary file left, the bucket holding what the
journals hold."""

from __future__ import annotations

import time
from pathlib import Path

from drill_kit import (
    Outcome,
    Run,
    assert_bucket_equals_journals,
    assert_journals_whole,
    copy_models,
    temp_files,
)

from algostack.testing.tiny_disk import fill, tiny_disk


def _failed_on_one_line(out: Outcome, *words: str) -> str:
    assert out.code == 1, out.stderr[-2000:]  # the run's own code (a component's may be 3)
    errors = out.error_lines()
    assert len(errors) == 1, out.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def test_drill_full_home_stops_soon_naming_the_full_disk(models_home: Path, tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "home", "64m") as home:
        run = Run(home, models=models_home)
        try:
            run.wait_trading()
            fill(home)  # the disk fills mid-session: every writer under the home meets it
            started = time.monotonic()
            out = run.finish()
        finally:
            run.close()
        assert time.monotonic() - started < 30, "the run went on long after the disk was full"
        line = _failed_on_one_line(out, str(home))
        # whichever of its writers met the full disk first, named with the cause: JetStream's
        # store (refusing past its reserve, or silent on a failed write: nats-server's own
        # error is quoted then), the market-data archive in the bucket, or a journal
        assert line.startswith("error: run failed: "), line
        assert "insufficient resources" in line or "no space left on device" in line.lower(), line
        # a full disk is exit 3 wherever it is met: nothing is restarted into it again
        # (also a trader whose stderr, its log, is on that disk: the line is lost, not the code)
        hopeless = [c for c in out.summary["components"] if c["exit_code"] == 3]
        assert hopeless, out.summary["components"]
        assert all(c["restarts"] == 0 for c in out.summary["components"]), out.summary["components"]
        assert_journals_whole(home)
        assert not temp_files(home), temp_files(home)


def test_drill_full_journal_disk_fails_the_traders_naming_the_file(
    models_home: Path, tmp_path: Path
) -> None:
    home = copy_models(models_home, tmp_path / "home")
    with tiny_disk(home / "journals", "96k"):
        out = Run(home).finish()
        line = _failed_on_one_line(out, "No space left on device", str(home / "journals"))
        assert "trader:" in line, line
        assert_journals_whole(home)
        assert not temp_files(home), temp_files(home)
        assert out.summary is not None
        assert_bucket_equals_journals(home, out.summary)  # the final sync copied what is there


def test_drill_full_bucket_syncs_what_fits_and_names_what_did_not(
    models_home: Path, undisturbed: Outcome, tmp_path: Path
) -> None:
    home = copy_models(models_home, tmp_path / "home")
    with tiny_disk(home / "bucket", "64k"):
        out = Run(home).finish()
        line = _failed_on_one_line(out, "No space left on device", str(home / "bucket"))
        # the market-data archive is the first to meet the full bucket; the final sync next
        assert "archive in" in line and "not complete" in line, line
        # exit 3 after the session: a full bucket is not cured by sending the day again
        ingest = out.component("ingest")
        assert (ingest["exit_code"], ingest["restarts"]) == (3, 0), ingest
        assert any("final sync failed" in n for n in out.notes), out.notes
        assert out.trades == undisturbed.trades  # the trading itself was not disturbed
        assert_journals_whole(home)
        assert not temp_files(home), temp_files(home)
