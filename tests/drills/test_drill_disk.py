"""A full disk under the run (a small tmpfs where it writes): one line naming the path and the
error, exit 1, journals line-complete, no temporary file left, the bucket holding what the
journals hold."""

from __future__ import annotations

from pathlib import Path

from drill_kit import (
    Outcome,
    Run,
    assert_bucket_equals_journals,
    assert_journals_whole,
    copy_models,
    temp_files,
)

from algostack.testing.tiny_disk import tiny_disk


def _failed_on_one_line(out: Outcome, *words: str) -> str:
    assert out.code == 1, out.stderr[-2000:]
    errors = out.error_lines()
    assert len(errors) == 1, out.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def test_drill_full_home_stops_on_the_jetstream_store_naming_it(
    models_home: Path, tmp_path: Path
) -> None:
    with tiny_disk(tmp_path / "home", "3m") as home:
        out = Run(home, models=models_home).finish()
        line = _failed_on_one_line(out, str(home))
        assert line.startswith("error: run failed: ingest failed"), line
        # whichever of its two writers met the full disk first: JetStream's store or the
        # market-data archive in the bucket; either way named with the cause
        assert ("insufficient resources" in line and str(home / "nats") in line) or (
            "No space left on device" in line and str(home / "bucket") in line
        ), line
        assert_journals_whole(home)
        assert not temp_files(home), temp_files(home)
        assert out.summary is not None  # the summary still reached stdout


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
        assert any("final sync failed" in n for n in out.notes), out.notes
        assert out.trades == undisturbed.trades  # the trading itself was not disturbed
        assert_journals_whole(home)
        assert not temp_files(home), temp_files(home)
