"""Handlers with AWS-shaped events from tests/events/, event parsing, config parsing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from control_fakes import Aws

from algostack.control import handlers
from algostack.control.config import ControlConfig
from algostack.control.requests import parse_event
from algostack.control.runtime import Clients
from algostack.errors import ConfigError, DataError

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


class Context:
    aws_request_id = "11111111-2222-3333-4444-555555555555"

    def __init__(self, remaining_ms: int = 900_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_parse_event_scheduler_uses_scheduled_time() -> None:
    req = parse_event(event("scheduler_ingest_thanksgiving.json"), "r", NOW)
    assert req.source == "schedule" and req.day == date(2026, 11, 26) and not req.dry_run


def test_parse_event_destination_unwraps_request_and_response() -> None:
    req = parse_event(event("destination_ingest_success.json"), "r", NOW)
    assert req.source == "destination" and req.day == date(2026, 11, 27)
    assert req.upstream is not None and req.upstream["status"] == "ok"


def test_parse_event_destination_flags_come_from_original_event() -> None:
    env = event("destination_ingest_success.json")
    env["requestPayload"] = {"dry_run": True, "force": "true"}
    req = parse_event(env, "r", NOW)
    assert req.dry_run and req.force


def test_parse_event_failure_envelope_refused() -> None:
    env = event("destination_ingest_success.json")
    env["requestContext"]["condition"] = "RetriesExhausted"
    with pytest.raises(DataError, match="on-success destination only"):
        parse_event(env, "r", NOW)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"dry_run": "yes"}, "dry_run"),
        ({"trading_day": "27/11/2026"}, "YYYY-MM-DD"),
        ([1, 2], "JSON object"),
        ({"detail-type": "Scheduled Event", "time": "noon"}, "ISO 8601"),
    ],
)
def test_parse_event_malformed_raises_clear_error(bad: Any, match: str) -> None:
    with pytest.raises(DataError, match=match):
        parse_event(bad, "r", NOW)


def test_config_from_env_defaults_follow_environment(tmp_path: Path) -> None:
    cfg = ControlConfig.from_env({"ALGOSTACK_ENV": "qa", "LAMBDA_TASK_ROOT": str(tmp_path)})
    assert cfg.ingest_instance_name == "alpaca-websocket-ingest-qa"
    assert cfg.trader_name_pattern == "trading-server-qa-*"
    assert cfg.state_prefix == "/algostack/qa/runs" and cfg.nats_address == "private"
    assert cfg.run_script == tmp_path / "run.sh" and cfg.bucket is None
    assert "algostack-sync.service" in cfg.sync_command


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({}, "ALGOSTACK_ENV is not set"),
        ({"ALGOSTACK_ENV": "staging"}, "dev, qa, prod"),
        ({"ALGOSTACK_ENV": "qa", "ALGOSTACK_NATS_ADDRESS": "elastic"}, "private' or 'public"),
        ({"ALGOSTACK_ENV": "qa", "ALGOSTACK_STATE_PREFIX": "algostack"}, "start with '/'"),
    ],
)
def test_config_from_env_invalid_raises(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ControlConfig.from_env(env)


def test_config_missing_run_script_raises(tmp_path: Path) -> None:
    cfg = ControlConfig(environment="dev", run_script=tmp_path / "nope.sh")
    with pytest.raises(ConfigError, match=r"package run\.sh at the zip root"):
        cfg.read_run_script()


def test_ingest_handler_scheduled_event_runs_and_is_json(aws: Aws, cfg: ControlConfig) -> None:
    aws.launch("alpaca-websocket-ingest-dev", role="ingest", state="stopped")
    built: list[str] = []

    def clients() -> Clients:
        built.append("clients")
        return aws.clients

    def config() -> ControlConfig:
        built.append("config")
        return cfg

    container = handlers.Container(clients=clients, config=config, runtime=lambda: aws.time.runtime)
    out = container.ingest(event("scheduler_ingest.json"), Context())
    assert out["status"] == "ok" and out["source"] == "schedule"
    assert out["request_id"] == Context.aws_request_id
    json.dumps(out)  # JSON-serialisable, as Lambda requires
    again = container.ingest(event("scheduler_ingest.json"), Context())
    assert again["status"] == "duplicate"  # the same day, already done
    assert built == ["config", "clients"]  # once per container: the cold start


def test_module_handlers_share_one_container() -> None:
    bound = [handlers.ingest_handler, handlers.trading_handler, handlers.shutdown_handler]
    assert [h.__func__ for h in bound] == [
        handlers.Container.ingest,
        handlers.Container.trading,
        handlers.Container.shutdown,
    ]
    assert len({id(h.__self__) for h in bound}) == 1


def test_trading_handler_destination_envelope_runs_fleet(aws: Aws, cfg: ControlConfig) -> None:
    aws.launch("alpaca-websocket-ingest-dev", role="ingest")
    aws.launch("trading-server-dev-AAPL-xgb-1", state="stopped")
    out = handlers.handle(
        handlers.controllers.run_trading,
        event("destination_ingest_success.json"),
        Context(),
        clients=aws.clients,
        config=cfg,
        runtime=aws.time.runtime,
    )
    assert out["status"] == "ok" and out["source"] == "destination"
    assert out["counts"]["ok"] == 1
    json.dumps(out)


def test_trading_handler_skipped_ingest_envelope_skips(aws: Aws, cfg: ControlConfig) -> None:
    out = handlers.handle(
        handlers.controllers.run_trading,
        event("destination_ingest_skipped.json"),
        Context(),
        clients=aws.clients,
        config=cfg,
        runtime=aws.time.runtime,
    )
    assert out["status"] == "skipped" and out["trading_day"] == "2026-11-26"


def test_shutdown_handler_events_rule_stops_fleet(aws: Aws, cfg: ControlConfig) -> None:
    ids = aws.launch("trading-server-dev-AAPL-xgb-1") + aws.launch(
        "alpaca-websocket-ingest-dev", role="ingest"
    )
    out = handlers.handle(
        handlers.controllers.run_shutdown,
        event("events_rule_shutdown.json"),
        Context(300_000),
        clients=aws.clients,
        config=cfg,
        runtime=aws.time.runtime,
    )
    assert sorted(out["stopped"]) == sorted(ids)


def test_handle_short_deadline_bounds_waits(aws: Aws, cfg: ControlConfig) -> None:
    (iid,) = aws.launch("alpaca-websocket-ingest-dev", role="ingest")
    aws.overlay.statuses[iid] = [("running", "initializing", "initializing")]
    with pytest.raises(Exception, match="not healthy"):
        handlers.handle(
            handlers.controllers.run_ingest,
            event("direct_invoke.json"),
            Context(120_000),
            clients=aws.clients,
            config=cfg,
            runtime=aws.time.runtime,
        )
    assert aws.time.now - 1000 < 120 - 20  # stopped inside the Lambda's time, with margin
