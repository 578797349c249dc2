"""Trading and shutdown controllers: one start, one wait, one SendCommand per 50, reports."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from control_fakes import Aws

from algostack.control.config import ControlConfig
from algostack.control.controllers import run_shutdown, run_trading
from algostack.control.failures import FleetError
from algostack.control.fakes import Outcome
from algostack.control.requests import Request

FRIDAY = date(2026, 11, 27)


def req(rid: str = "req-1", upstream: dict[str, object] | None = None, **flags: bool) -> Request:
    return Request(
        request_id=rid,
        at=datetime(2026, 11, 27, 13, 31, tzinfo=UTC),
        day=FRIDAY,
        source="destination" if upstream else "direct",
        upstream=upstream,
        **flags,
    )


def fleet(aws: Aws, n: int = 3, state: str = "stopped") -> tuple[str, list[str]]:
    (ingest,) = aws.launch("alpaca-websocket-ingest-dev", role="ingest")
    traders = []
    for k in range(n):
        traders += aws.launch(
            f"trading-server-dev-AAPL-xgb-{k}",
            state=state,
            tags={"ModelPrefix": f"models/xgb/AAPL/model_{k}"},
        )
    return ingest, traders


def private_ip(aws: Aws, iid: str) -> str:
    r = aws.clients.ec2.describe_instances(InstanceIds=[iid])
    return str(r["Reservations"][0]["Instances"][0]["PrivateIpAddress"])


def test_run_trading_starts_all_in_one_call_and_exports_address(
    aws: Aws, cfg: ControlConfig
) -> None:
    ingest, traders = fleet(aws, 3)
    out = run_trading(aws.clients, cfg, req(), aws.time.deadline(800), aws.time.runtime)
    assert out["status"] == "ok" and out["counts"] == {"total": 3, "ok": 3, "failed": 0}
    assert aws.overlay.start_calls == [sorted(traders)] or sorted(
        aws.overlay.start_calls[0]
    ) == sorted(traders)
    assert len(aws.overlay.start_calls) == 1
    (cmd,) = aws.ssm_fake.commands.values()
    assert sorted(cmd.instances) == sorted(traders)
    addr = private_ip(aws, ingest)
    assert cmd.script.startswith(f"export NATS_PUBLIC_IP={addr}\n#!/bin/bash")
    assert out["nats_address"] == addr
    item = out["instances"][traders[1]]
    assert item["outputs"] == "s3://algo-model-deploy-dev/models/xgb/AAPL/model_1/live/2026-11-27/"
    assert all(aws.state(t) == "running" for t in traders)


def test_run_trading_public_address_when_configured(aws: Aws, run_sh: object) -> None:
    ingest, _ = fleet(aws, 1)
    cfg = ControlConfig(environment="dev", run_script=run_sh, nats_address="public")  # type: ignore[arg-type]
    out = run_trading(aws.clients, cfg, req(), aws.time.deadline(800), aws.time.runtime)
    r = aws.clients.ec2.describe_instances(InstanceIds=[ingest])
    assert out["nats_address"] == r["Reservations"][0]["Instances"][0]["PublicIpAddress"]


def test_run_trading_partial_failure_raises_with_per_instance_report(
    aws: Aws, cfg: ControlConfig
) -> None:
    _, traders = fleet(aws, 3, state="running")
    bad = traders[1]
    aws.ssm_fake.outcome = lambda iid, s: (
        Outcome("Failed", 1, "", "no model artifacts") if iid == bad else Outcome(stdout="ok")
    )
    with pytest.raises(FleetError, match="1 of 3 trading instances failed") as info:
        run_trading(aws.clients, cfg, req(), aws.time.deadline(800), aws.time.runtime)
    report = info.value.report["instances"]
    assert report[bad]["ok"] is False and report[bad]["exit_code"] == 1
    assert "no model artifacts" in report[bad]["command"]["stderr"]
    assert [report[t]["ok"] for t in traders if t != bad] == [True, True]
    assert bad in str(info.value)
    # The cause is in the message itself, not only in the report (the emulated AWS day's drill).
    assert "no model artifacts" in str(info.value)


def test_run_trading_unhealthy_instance_skipped_others_run_then_raises(
    aws: Aws, cfg: ControlConfig
) -> None:
    _, traders = fleet(aws, 2, state="running")
    aws.ssm_fake.agents[traders[0]] = "ConnectionLost"
    with pytest.raises(FleetError) as info:
        run_trading(aws.clients, cfg, req(), aws.time.deadline(300), aws.time.runtime)
    (cmd,) = aws.ssm_fake.commands.values()
    assert cmd.instances == [traders[1]]
    item = info.value.report["instances"][traders[0]]
    assert "ConnectionLost" in item["error"] and "command" not in item
    assert aws.time.now - 1000 < 300


def test_run_trading_destination_of_skipped_ingest_skips(aws: Aws, cfg: ControlConfig) -> None:
    fleet(aws, 1)
    up = {"status": "skipped", "reason": "2026-11-26 is not an NYSE session"}
    out = run_trading(aws.clients, cfg, req(upstream=up), aws.time.deadline(800), aws.time.runtime)
    assert out["status"] == "skipped" and "ingest run was skipped" in out["reason"]
    assert not aws.overlay.start_calls and not aws.ssm_fake.calls


def test_run_trading_destination_of_dry_run_is_dry_run(aws: Aws, cfg: ControlConfig) -> None:
    _, traders = fleet(aws, 2)
    out = run_trading(
        aws.clients,
        cfg,
        req(upstream={"status": "dry_run"}),
        aws.time.deadline(800),
        aws.time.runtime,
    )
    assert out["status"] == "dry_run" and sorted(out["would"]["start"]) == sorted(traders)
    assert not aws.overlay.start_calls and aws.ssm_fake.calls["SendCommand"] == 0
    assert all(aws.state(t) == "stopped" for t in traders)


def test_run_trading_second_invocation_while_running_is_duplicate(
    aws: Aws, cfg: ControlConfig
) -> None:
    fleet(aws, 1)
    from algostack.control.run_records import RunState

    RunState(aws.clients.ssm, cfg.state_prefix).claim(FRIDAY, "trading", "first", aws.time.wall())
    out = run_trading(aws.clients, cfg, req("second"), aws.time.deadline(800), aws.time.runtime)
    assert out["status"] == "duplicate" and out["reason"].startswith("already running")
    assert not aws.overlay.start_calls


def test_run_shutdown_syncs_running_traders_then_stops_everything(
    aws: Aws, cfg: ControlConfig
) -> None:
    ingest, traders = fleet(aws, 2, state="running")
    (stopped,) = aws.launch("trading-server-dev-MSFT-xgb-9", state="stopped")
    (other_env,) = aws.launch("trading-server-qa-AAPL-xgb-1", env="qa")
    out = run_shutdown(aws.clients, cfg, req(), aws.time.deadline(280), aws.time.runtime)
    (cmd,) = aws.ssm_fake.commands.values()
    assert (
        sorted(cmd.instances) == sorted(traders)
        and "systemctl stop algostack-trader.service" in cmd.script
    )
    assert sorted(out["stopped"]) == sorted([ingest, *traders])
    assert all(aws.state(i) == "stopped" for i in [ingest, *traders, stopped])
    assert aws.state(other_env) == "running"
    # Found on the emulated AWS day: a synced trader's row read "ok": false, "error": "".
    assert all(out["instances"][i]["ok"] is True for i in [ingest, *traders])
    assert all("error" not in out["instances"][i] for i in traders)


def test_run_shutdown_stops_everything_even_when_sync_fails(aws: Aws, cfg: ControlConfig) -> None:
    ingest, traders = fleet(aws, 2, state="running")
    aws.ssm_fake.outcome = lambda iid, s: (
        Outcome("Failed", 1, "", "s3 denied") if iid == traders[0] else Outcome()
    )
    with pytest.raises(FleetError, match="1 syncs") as info:
        run_shutdown(aws.clients, cfg, req(), aws.time.deadline(280), aws.time.runtime)
    assert all(aws.state(i) == "stopped" for i in [ingest, *traders])
    assert info.value.report["instances"][traders[0]]["sync"]["ok"] is False


def test_run_shutdown_stops_everything_when_ssm_is_down(aws: Aws, cfg: ControlConfig) -> None:
    ingest, traders = fleet(aws, 1, state="running")
    aws.ssm_fake.send_errors = ["AccessDeniedException"]
    with pytest.raises(FleetError):
        run_shutdown(aws.clients, cfg, req(), aws.time.deadline(280), aws.time.runtime)
    assert all(aws.state(i) == "stopped" for i in [ingest, *traders])


def test_run_shutdown_dry_run_changes_nothing(aws: Aws, cfg: ControlConfig) -> None:
    ingest, traders = fleet(aws, 2, state="running")
    out = run_shutdown(
        aws.clients, cfg, req(dry_run=True), aws.time.deadline(280), aws.time.runtime
    )
    assert sorted(out["would"]["stop"]) == sorted([ingest, *traders])
    assert sorted(out["would"]["sync"]) == sorted(traders)
    assert all(aws.state(i) == "running" for i in [ingest, *traders])
    assert not aws.ssm_fake.calls
