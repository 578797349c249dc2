"""The Python controllers against the emulator Terraform deployed to (conftest's
``deployments``): configured from the Lambda environment Terraform set and the run.sh inside
the zip Terraform uploaded, they must find and start/stop exactly the instances Terraform made,
and never touch the other environment's. moto_server lacks DescribeInstanceInformation and
ListCommandInvocations (the controllers fall back; AWS_MAX_ATTEMPTS=1 keeps boto3 from
retrying those 500s) and runs every SSM command as an instant success."""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from infra_emulated import (
    BUCKETS,
    CallLog,
    Deployed,
    FakeTime,
    LambdaContext,
    lambda_environment,
    lambda_task_root,
    live_instances,
)

from algostack.control import controllers, handlers
from algostack.control.config import ControlConfig
from algostack.control.runtime import Clients, Runtime
from algostack.control.ssm import script_commands
from algostack.control.status import fleet_status
from algostack.core.sessions import is_session

pytestmark = pytest.mark.timeout(900)

EVENTS = Path(__file__).resolve().parents[1] / "events"
# One trading day per scenario, so the idempotency records in Parameter Store never collide.
DRY_RUN_DAY = date(2026, 3, 10)
RUN_DAY = date(2026, 3, 11)
SHUTDOWN_DAY = date(2026, 3, 12)
READ_ONLY = ("Describe", "Get", "List")
Controller = Callable[..., dict[str, Any]]


@dataclass
class Control:
    """What the three qa Lambdas would have: clients, configs, a fake clock, a call log."""

    qa: Deployed
    clients: Clients
    configs: dict[str, ControlConfig]
    scripts: dict[str, list[str]]
    time: FakeTime
    log: CallLog

    def invoke(self, controller: Controller, component: str, event: Any, request_id: str) -> Any:
        """Run one invocation through the handler's code path (event parsing included)."""
        runtime = Runtime(clock=self.time.clock, sleep=self.time.sleep, wall=time.time)
        return handlers.handle(
            controller,
            event,
            LambdaContext(request_id),
            clients=self.clients,
            config=self.configs[component],
            runtime=runtime,
        )

    def record(self, day: date, component: str) -> dict[str, Any] | None:
        """The idempotency record of ``component`` on ``day``, or None."""
        ssm = self.qa.client("ssm")
        name = f"/algostack/qa/runs/{day.isoformat()}/{component}"
        found = ssm.get_parameters(Names=[name])["Parameters"]
        return json.loads(found[0]["Value"]) if found else None

    def mutating_calls(self) -> list[str]:
        """Every recorded call that is not Describe*/Get*/List*."""
        return [n for n in self.log.names() if not n.startswith(READ_ONLY)]


@pytest.fixture
def control(
    qa: Deployed,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Control:
    """Controllers wired exactly as the qa Lambdas: Terraform's environment variables, the
    deployed zip (built by `algostack lambdas package`) as $LAMBDA_TASK_ROOT, clients from
    ``Clients.from_boto3`` (the Lambda's own construction) pointed at the emulator with one
    attempt per call."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_RETRY_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", qa.server.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    clients = Clients.from_boto3(region="us-east-1")
    assert clients.ssm.meta.config.retries["total_max_attempts"] == 1
    log = CallLog()
    log.attach(clients.ec2)
    log.attach(clients.ssm)
    configs: dict[str, ControlConfig] = {}
    scripts: dict[str, list[str]] = {}
    for component, function in (
        ("ingest", "AlpacaWebsocketLambda_qa"),
        ("trading", "TradingServerLambda_qa"),
        ("shutdown", "TradingServerShutdownLambda_qa"),
    ):
        root = lambda_task_root(qa, function, tmp_path / function)
        env = {**lambda_environment(qa, function), "LAMBDA_TASK_ROOT": str(root)}
        configs[component] = ControlConfig.from_env(env)
        if (root / "run.sh").exists():
            scripts[component] = script_commands((root / "run.sh").read_text())
    assert set(scripts) == {"ingest", "trading"}, "run.sh must be at the root of both zips"
    return Control(qa, clients, configs, scripts, FakeTime(), log)


def _ids(dep: Deployed) -> dict[str, str]:
    """Instance id -> state of every instance of the environment."""
    return {i["InstanceId"]: i["State"]["Name"] for i in live_instances(dep).values()}


def _stop_all(dep: Deployed) -> None:
    ec2 = dep.client("ec2")
    ec2.stop_instances(InstanceIds=list(_ids(dep)))
    assert set(_ids(dep).values()) == {"stopped"}


def _trader_ids(dep: Deployed) -> set[str]:
    return {info["id"] for info in dep.outputs["instance_info"].values()}


def _schedule_input(dep: Deployed) -> dict[str, Any]:
    """The event the qa schedule sends the ingest Lambda, as Terraform configured it."""
    sched = dep.client("scheduler").get_schedule(Name="alpaca-websocket-lambda-daily-9am-est-qa")
    return dict(json.loads(sched["Target"]["Input"]))


def _destination(dep: Deployed, ingest_event: dict[str, Any], result: dict[str, Any]) -> Any:
    """The on-success envelope Lambda would hand the trading Lambda (shape of
    tests/events/destination_ingest_success.json), built from the real ingest run."""
    envelope = json.loads((EVENTS / "destination_ingest_success.json").read_text())
    arn = dep.client("lambda").get_function_configuration(FunctionName="AlpacaWebsocketLambda_qa")[
        "FunctionArn"
    ]
    envelope["requestContext"].update(requestId=result["request_id"], functionArn=arn + ":$LATEST")
    envelope["requestPayload"] = ingest_event
    envelope["responsePayload"] = json.loads(json.dumps(result))
    return envelope


def test_scenario_days_are_sessions() -> None:
    assert all(is_session(d) for d in (DRY_RUN_DAY, RUN_DAY, SHUTDOWN_DAY))


@pytest.mark.parametrize(
    ("function", "component"),
    [
        ("AlpacaWebsocketLambda_qa", "ingest"),
        ("TradingServerLambda_qa", "trading"),
        ("TradingServerShutdownLambda_qa", "shutdown"),
    ],
)
def test_qa_lambda_environment_is_exactly_what_the_controllers_read(
    control: Control, function: str, component: str
) -> None:
    # A misspelt variable in Terraform would be silently ignored by from_env: refuse it.
    read = set(re.findall(r"\"(ALGOSTACK_[A-Z_]+)\"", inspect.getsource(ControlConfig.from_env)))
    env = lambda_environment(control.qa, function)
    assert {k for k in env if k.startswith("ALGOSTACK_")} <= read
    cfg = control.configs[component]
    assert cfg.environment == "qa"
    assert cfg.bucket == BUCKETS["qa"]
    assert cfg.ingest_instance_name == "alpaca-websocket-ingest-qa"
    assert cfg.trader_name_pattern == "trading-server-qa-*"
    assert cfg.state_prefix == "/algostack/qa/runs"


def test_lambda_zip_check_rejects_a_zip_the_lambda_does_not_run(
    qa: Deployed, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match="AlpacaWebsocketLambda_qa does not run"):
        # (The ingest and trading zips hold the same files, run.sh included: take the shutdown's.)
        lambda_task_root(qa, "AlpacaWebsocketLambda_qa", tmp_path, "trading_server_shutdown")
    assert not any(tmp_path.iterdir())


def test_qa_dry_runs_of_ingest_and_trading_change_nothing(control: Control, dev: Deployed) -> None:
    qa = control.qa
    _stop_all(qa)
    dev_before = _ids(dev)
    ingest_id = qa.outputs["ingest_instance_id"]
    event = {**_schedule_input(qa), "trading_day": DRY_RUN_DAY.isoformat(), "dry_run": True}

    ingest = control.invoke(controllers.run_ingest, "ingest", event, "dry-ingest")
    trading = control.invoke(
        controllers.run_trading, "trading", _destination(qa, event, ingest), "dry-trading"
    )

    assert ingest["status"] == "dry_run"
    assert ingest["instance"]["id"] == ingest_id
    assert ingest["would"]["start"] == [ingest_id]
    assert ingest["would"]["run_script"]["lines"] == len(control.scripts["ingest"])
    assert ingest["would"]["run"] is True
    # The upstream dry run makes the chained trading run a dry run too.
    assert trading["status"] == "dry_run"
    assert trading["source"] == "destination"
    assert set(trading["would"]["start"]) == _trader_ids(qa) | {ingest_id}
    assert set(trading["would"]["run_script"]["instances"]) == _trader_ids(qa)
    assert control.mutating_calls() == []
    assert set(_ids(qa).values()) == {"stopped"}
    assert control.record(DRY_RUN_DAY, "ingest") is None
    assert control.record(DRY_RUN_DAY, "trading") is None
    assert _ids(dev) == dev_before


def test_qa_ingest_then_trading_start_exactly_the_terraform_instances(
    control: Control, dev: Deployed
) -> None:
    qa = control.qa
    _stop_all(qa)
    dev_before = _ids(dev)
    ingest_id = qa.outputs["ingest_instance_id"]
    traders = _trader_ids(qa)
    event = {**_schedule_input(qa), "trading_day": RUN_DAY.isoformat()}

    ingest = control.invoke(controllers.run_ingest, "ingest", event, "run-ingest")

    assert ingest["status"] == "ok"
    assert ingest["trading_day"] == RUN_DAY.isoformat()
    assert ingest["instance"]["id"] == ingest_id
    assert ingest["instance"]["name"] == "alpaca-websocket-ingest-qa"
    assert ingest["instance"]["state"] == "running"
    assert ingest["health"]["started"] is True
    assert ingest["command"]["status"] == "Success"
    assert ingest["command"]["exit_code"] == 0
    assert [c["InstanceIds"] for c in control.log.of("StartInstances")] == [[ingest_id]]
    sends = control.log.of("SendCommand")
    assert [c["InstanceIds"] for c in sends] == [[ingest_id]]
    assert sends[0]["Parameters"]["commands"] == control.scripts["ingest"]
    states = _ids(qa)
    assert states[ingest_id] == "running"
    assert {states[t] for t in traders} == {"stopped"}
    assert control.record(RUN_DAY, "ingest")["status"] == "succeeded"  # type: ignore[index]

    control.log.calls.clear()
    envelope = _destination(qa, event, ingest)
    trading = control.invoke(controllers.run_trading, "trading", envelope, "run-trading")

    assert trading["status"] == "ok"
    assert trading["source"] == "destination"
    assert trading["trading_day"] == RUN_DAY.isoformat()
    assert set(trading["instances"]) == traders
    assert trading["counts"] == {"total": len(traders), "ok": len(traders), "failed": 0}
    private_ip = live_instances(qa)["alpaca-websocket-ingest-qa"]["PrivateIpAddress"]
    assert trading["nats_address"] == private_ip
    for prefix, info in qa.outputs["instance_info"].items():
        item = trading["instances"][info["id"]]
        assert item["name"] == info["name"]
        assert item["ok"] is True
        assert item["command"]["status"] == "Success"
        assert item["outputs"] == f"s3://{BUCKETS['qa']}/{prefix}/live/{RUN_DAY.isoformat()}/"
    starts = control.log.of("StartInstances")
    assert len(starts) == 1
    assert set(starts[0]["InstanceIds"]) == traders
    sends = control.log.of("SendCommand")
    assert len(sends) == 1
    assert set(sends[0]["InstanceIds"]) == traders
    commands = sends[0]["Parameters"]["commands"]
    assert commands == [f"export NATS_PUBLIC_IP={private_ip}", *control.scripts["trading"]]
    assert set(_ids(qa).values()) == {"running"}
    assert control.record(RUN_DAY, "trading")["status"] == "succeeded"  # type: ignore[index]

    status = fleet_status(control.clients, control.configs["trading"], RUN_DAY)
    rows = {r["id"]: r for r in status["instances"]}
    assert set(rows) == traders | {ingest_id}
    assert rows[ingest_id]["role"] == "ingest"
    assert {rows[t]["role"] for t in traders} == {"trader"}
    assert {r["state"] for r in rows.values()} == {"running"}
    assert status["runs"]["ingest"]["status"] == "succeeded"
    assert status["runs"]["trading"]["status"] == "succeeded"

    # The same day delivered again (another request): the record makes it a duplicate.
    control.log.calls.clear()
    again = control.invoke(controllers.run_trading, "trading", envelope, "run-trading-again")
    assert again["status"] == "duplicate"
    assert control.mutating_calls() == ["PutParameter"]  # the lock attempt, refused
    assert control.record(RUN_DAY, "trading")["request_id"] == "run-trading"  # type: ignore[index]
    assert _ids(dev) == dev_before


def test_qa_shutdown_syncs_then_stops_exactly_the_terraform_instances(
    control: Control, dev: Deployed
) -> None:
    qa = control.qa
    made = _ids(qa)
    qa.client("ec2").start_instances(InstanceIds=list(made))
    dev_before = _ids(dev)
    traders = _trader_ids(qa)
    event = json.loads((EVENTS / "events_rule_shutdown.json").read_text())
    event["trading_day"] = SHUTDOWN_DAY.isoformat()

    result = control.invoke(controllers.run_shutdown, "shutdown", event, "shutdown")

    assert result["component"] == "shutdown"
    assert result["status"] == "ok"
    assert set(result["synced"]) == traders
    assert set(result["stopped"]) == set(made)
    sends = control.log.of("SendCommand")
    assert len(sends) == 1
    assert set(sends[0]["InstanceIds"]) == traders
    assert "\n".join(sends[0]["Parameters"]["commands"]) == control.configs["shutdown"].sync_command
    assert control.mutating_calls() == ["SendCommand", "StopInstances"]
    states = _ids(qa)
    assert set(states) == set(made)
    assert set(states.values()) == {"stopped"}
    assert _ids(dev) == dev_before
