"""Ingest controller: calendar skip, start + health + run.sh, idempotency, dry run, failures."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from control_fakes import Aws

from algostack.control.config import ControlConfig
from algostack.control.controllers import run_ingest
from algostack.control.failures import ControlError, InstanceNotFoundError
from algostack.control.fakes import Outcome
from algostack.control.requests import Request
from algostack.control.run_records import RunState


def req(day: date, rid: str = "req-1", **flags: bool) -> Request:
    at = datetime(day.year, day.month, day.day, 13, 30, tzinfo=UTC)
    return Request(request_id=rid, at=at, day=day, **flags)


FRIDAY = date(2026, 11, 27)
THANKSGIVING = date(2026, 11, 26)


def test_run_ingest_thanksgiving_skipped_without_aws_calls(aws: Aws, cfg: ControlConfig) -> None:
    aws.launch("alpaca-websocket-ingest-dev", role="ingest", state="stopped")
    out = run_ingest(aws.clients, cfg, req(THANKSGIVING), aws.time.deadline(800), aws.time.runtime)
    assert out["status"] == "skipped"
    assert "2026-11-26 is not an NYSE session (an NYSE holiday)" in out["reason"]
    assert not aws.ssm_fake.calls and not aws.overlay.start_calls


def test_run_ingest_weekend_skipped(aws: Aws, cfg: ControlConfig) -> None:
    out = run_ingest(
        aws.clients, cfg, req(date(2026, 11, 28)), aws.time.deadline(800), aws.time.runtime
    )
    assert out["status"] == "skipped" and "weekend" in out["reason"]


def test_run_ingest_stopped_host_started_bootstrapped_and_recorded(
    aws: Aws, cfg: ControlConfig
) -> None:
    (iid,) = aws.launch("alpaca-websocket-ingest-dev", role="ingest", state="stopped")
    aws.ssm_fake.outcome = lambda i, s: Outcome(stdout="nats up\n", duration_s=20)
    out = run_ingest(aws.clients, cfg, req(FRIDAY), aws.time.deadline(800), aws.time.runtime)
    assert out["status"] == "ok"
    assert aws.overlay.start_calls == [[iid]]
    assert aws.state(iid) == "running"
    assert out["command"]["exit_code"] == 0 and out["command"]["stdout"] == "nats up\n"
    (cmd,) = aws.ssm_fake.commands.values()
    assert cmd.instances == [iid] and "echo bootstrap" in cmd.script
    assert cmd.params["DocumentName"] == "AWS-RunShellScript"
    rec = RunState(aws.clients.ssm, cfg.state_prefix).read(FRIDAY, "ingest")
    assert rec is not None and rec.status == "succeeded" and rec.request_id == "req-1"


def test_run_ingest_second_invocation_same_day_is_duplicate(aws: Aws, cfg: ControlConfig) -> None:
    aws.launch("alpaca-websocket-ingest-dev", role="ingest")
    run_ingest(aws.clients, cfg, req(FRIDAY), aws.time.deadline(800), aws.time.runtime)
    sent = aws.ssm_fake.calls["SendCommand"]
    out = run_ingest(
        aws.clients, cfg, req(FRIDAY, "req-2"), aws.time.deadline(800), aws.time.runtime
    )
    assert out["status"] == "duplicate" and out["reason"] == "already succeeded"
    assert aws.ssm_fake.calls["SendCommand"] == sent


def test_run_ingest_force_bypasses_record(aws: Aws, cfg: ControlConfig) -> None:
    aws.launch("alpaca-websocket-ingest-dev", role="ingest")
    run_ingest(aws.clients, cfg, req(FRIDAY), aws.time.deadline(800), aws.time.runtime)
    out = run_ingest(
        aws.clients, cfg, req(FRIDAY, "req-2", force=True), aws.time.deadline(800), aws.time.runtime
    )
    assert out["status"] == "ok" and aws.ssm_fake.calls["SendCommand"] == 2


def test_run_ingest_dry_run_changes_nothing(aws: Aws, cfg: ControlConfig) -> None:
    (iid,) = aws.launch("alpaca-websocket-ingest-dev", role="ingest", state="stopped")
    out = run_ingest(
        aws.clients, cfg, req(FRIDAY, dry_run=True), aws.time.deadline(800), aws.time.runtime
    )
    assert out["status"] == "dry_run"
    assert out["would"]["start"] == [iid] and out["would"]["run"] is True
    assert aws.state(iid) == "stopped"
    assert aws.ssm_fake.calls["SendCommand"] == 0
    assert RunState(aws.clients.ssm, cfg.state_prefix).read(FRIDAY, "ingest") is None


def test_run_ingest_script_fails_raises_and_records_failure(aws: Aws, cfg: ControlConfig) -> None:
    aws.launch("alpaca-websocket-ingest-dev", role="ingest")
    aws.ssm_fake.outcome = lambda i, s: Outcome(
        "Failed", 2, "", "git clone: denied password=hunter2"
    )
    with pytest.raises(ControlError, match="exit code 2") as info:
        run_ingest(aws.clients, cfg, req(FRIDAY), aws.time.deadline(800), aws.time.runtime)
    assert "hunter2" not in str(info.value)
    rec = RunState(aws.clients.ssm, cfg.state_prefix).read(FRIDAY, "ingest")
    assert rec is not None and rec.status == "failed"
    # A failed run may run again (Lambda's async retry, or an operator).
    aws.ssm_fake.outcome = lambda i, s: Outcome()
    out = run_ingest(
        aws.clients, cfg, req(FRIDAY, "req-3"), aws.time.deadline(800), aws.time.runtime
    )
    assert out["status"] == "ok" and "failed" in out["idempotency"]["reason"]


def test_run_ingest_missing_instance_raises_clear_error(aws: Aws, cfg: ControlConfig) -> None:
    with pytest.raises(InstanceNotFoundError, match="alpaca-websocket-ingest-dev"):
        run_ingest(aws.clients, cfg, req(FRIDAY), aws.time.deadline(800), aws.time.runtime)
