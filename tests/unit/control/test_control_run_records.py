"""Idempotency records in Parameter Store (moto): lock, duplicate, stale takeover, force."""

from __future__ import annotations

from datetime import date

from control_fakes import Aws

from algostack.control.run_records import FAILED, SUCCEEDED, RunRecord, RunState

DAY = date(2026, 11, 27)


def state(aws: Aws) -> RunState:
    return RunState(aws.clients.ssm, "/algostack/dev/runs")


def test_claim_first_creates_running_record(aws: Aws) -> None:
    claim = state(aws).claim(DAY, "ingest", "a", 1000.0)
    assert claim.acquired and claim.key == "/algostack/dev/runs/2026-11-27/ingest"
    rec = state(aws).read(DAY, "ingest")
    assert rec is not None and rec.status == "running" and rec.request_id == "a"


def test_claim_while_running_refused(aws: Aws) -> None:
    state(aws).claim(DAY, "ingest", "a", 1000.0)
    claim = state(aws).claim(DAY, "ingest", "b", 1100.0)
    assert not claim.acquired and claim.reason == "already running (for 100 s)"


def test_claim_same_request_retry_allowed(aws: Aws) -> None:
    state(aws).claim(DAY, "ingest", "a", 1000.0)
    assert state(aws).claim(DAY, "ingest", "a", 1100.0).acquired


def test_claim_stale_running_taken_over(aws: Aws) -> None:
    state(aws).claim(DAY, "ingest", "a", 1000.0)
    claim = state(aws).claim(DAY, "ingest", "b", 1000.0 + 961)
    assert claim.acquired and "stale" in claim.reason
    rec = state(aws).read(DAY, "ingest")
    assert rec is not None and rec.request_id == "b"


def test_claim_after_success_refused_after_failure_allowed(aws: Aws) -> None:
    s = state(aws)
    s.claim(DAY, "ingest", "a", 1000.0)
    s.finish(DAY, "ingest", "a", 1010.0, SUCCEEDED, "ok")
    assert not s.claim(DAY, "ingest", "b", 1020.0).acquired
    s.claim(DAY, "trading", "a", 1000.0)
    s.finish(DAY, "trading", "a", 1010.0, FAILED, "boom")
    assert s.claim(DAY, "trading", "b", 1020.0).acquired


def test_claim_force_overwrites_success(aws: Aws) -> None:
    s = state(aws)
    s.claim(DAY, "ingest", "a", 1000.0)
    s.finish(DAY, "ingest", "a", 1010.0, SUCCEEDED, "ok")
    assert s.claim(DAY, "ingest", "b", 1020.0, force=True).acquired


def test_check_writes_nothing(aws: Aws) -> None:
    claim = state(aws).check(DAY, "ingest", "a", 1000.0)
    assert claim.acquired and state(aws).read(DAY, "ingest") is None


def test_record_unreadable_reads_as_failed() -> None:
    rec = RunRecord.from_json("not json")
    assert rec.status == "failed" and "unreadable" in rec.detail
