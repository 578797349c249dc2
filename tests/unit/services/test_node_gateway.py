"""algostack node: the ingest host's execution gateway unit (the only holder of the broker
keys: ``broker=``/``alpaca_live=`` configure it) and trading hosts without any."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from algostack.errors import ConfigError
from algostack.services import node

INGEST_CFG = """\
environment=qa
bucket=algo-model-deploy
git_branch=main
alpaca_secret=alpaca/qa
nats_secret_ingest=algostack/qa/nats/ingest
nats_secret_trader=algostack/qa/nats/trader
nats_secret_dashboard=algostack/qa/nats/dashboard
nats_secret_gateway=algostack/qa/nats/gateway
"""
TRADER_CFG = """\
environment=qa
bucket=algo-model-deploy
git_branch=main
model_prefix=models/xgb/SPY/model_7
model_type=xgb
symbol=SPY
model_id=model_7
model_number=7
nats_public_ip=10.0.0.5
nats_secret=algostack/qa/nats/trader
"""
NATS = {role: node.NatsCredential(role, f"pw-{role}") for role in node.NATS_ROLES}
SECRETS = node.IngestSecrets(alpaca=node.AlpacaKeys("PKTEST", "s3cr3t"), nats=NATS)
GATEWAY = "algostack-gateway.service"


def _unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def _env_file(text: str) -> dict[str, str]:
    return {
        k: v.strip('"')
        for k, _, v in (line.partition("=") for line in text.splitlines())
        if k and not k.startswith("#")
    }


def _ingest(extra: str = "") -> node.NodePlan:
    return node.render_ingest(node.parse_deployment_config(INGEST_CFG + extra), ["SPY"], SECRETS)


def test_ingest_gateway_unit_runs_the_gateway_on_the_local_nats_with_its_own_user() -> None:
    plan = _ingest()
    unit = _unit(plan.units[GATEWAY])
    assert shlex.split(unit["Service"]["ExecStart"]) == [
        "/opt/algostack/venv/bin/algostack",
        "gateway",
        "--broker",
        "alpaca",
        "--state-dir",
        "/opt/algostack/state/gateway",
        "--nats-url",
        "nats://127.0.0.1:4222",
        "--env",
        "qa",
    ]
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["User"] == "ec2-user"
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "true" and service["PrivateTmp"] == "true"
    assert service["EnvironmentFile"] == "/opt/algostack/secrets/gateway.env"
    assert unit["Unit"]["Requires"] == "algostack-nats.service"
    assert "algostack-ingest.service" in unit["Unit"]["After"]  # MARKET exists by then
    assert GATEWAY in plan.restart and GATEWAY in plan.enable
    assert plan.dirs[Path("/opt/algostack/state/gateway")] == node.DirSpec(0o750, "ec2-user")
    env = _env_file(plan.files[Path("/opt/algostack/secrets/gateway.env")].content)
    assert env == {
        "ALGOSTACK_NATS_USER": "gateway",
        "ALGOSTACK_NATS_PASSWORD": "pw-gateway",
        "APCA_API_KEY_ID": "PKTEST",
        "APCA_API_SECRET_KEY": "s3cr3t",
    }
    assert plan.files[Path("/opt/algostack/secrets/gateway.env")].mode == 0o600


@pytest.mark.parametrize(
    ("extra", "broker", "live", "keys"),
    [
        ("", "alpaca", False, True),
        ("broker=sim\n", "sim", False, False),
        ("broker=alpaca\nalpaca_live=true\n", "alpaca", True, True),
    ],
)
def test_ingest_gateway_broker_is_rendered_and_live_only_on_opt_in(
    extra: str, broker: str, live: bool, keys: bool
) -> None:
    plan = _ingest(extra)
    text = plan.units[GATEWAY]
    argv = shlex.split(_unit(text)["Service"]["ExecStart"])
    assert argv[argv.index("--broker") + 1] == broker
    assert ("Environment=ALGOSTACK_ALPACA_LIVE=true" in text) is live
    env = _env_file(plan.files[Path("/opt/algostack/secrets/gateway.env")].content)
    assert ("APCA_API_KEY_ID" in env) is keys
    for other in ("algostack-ingest.service", "algostack-dashboard.service"):
        assert "ALGOSTACK_ALPACA_LIVE" not in plan.units[other]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("broker=ib\n", "broker='ib' must be alpaca"),
        ("alpaca_live=yes\n", "must be true or false"),
        ("broker=sim\nalpaca_live=true\n", "alpaca_live=true needs broker=alpaca"),
    ],
)
def test_ingest_bad_broker_settings_are_config_errors(extra: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _ingest(extra)


def test_ingest_needs_the_gateway_nats_secret() -> None:
    cfg = node.parse_deployment_config(INGEST_CFG.replace("nats_secret_gateway=", "x="))
    with pytest.raises(ConfigError, match="nats_secret_gateway"):
        node.secret_names(cfg, "ingest")
    assert node.secret_names(node.parse_deployment_config(INGEST_CFG), "ingest")[
        "nats_secret_gateway"
    ] == ("algostack/qa/nats/gateway")


@pytest.mark.parametrize("extra", ["", "broker=alpaca\nalpaca_live=true\nalpaca_secret=a/qa\n"])
def test_trader_sends_orders_to_the_gateway_and_holds_no_broker_key(extra: str) -> None:
    cfg = node.parse_deployment_config(TRADER_CFG + extra)
    assert node.secret_names(cfg, "trader") == {"nats_secret": "algostack/qa/nats/trader"}
    plan = node.render_trader(cfg, node.TraderSecrets(nats=NATS["trader"]))
    trader = plan.units["algostack-trader.service"]
    argv = shlex.split(_unit(trader)["Service"]["ExecStart"])
    assert argv[argv.index("--broker") + 1] == "gateway"
    everything = "".join(plan.units.values()) + "".join(f.content for f in plan.files.values())
    assert "APCA" not in everything and "ALPACA" not in everything


def test_nats_roles_subjects_match_the_services_that_use_them() -> None:
    from algostack.adapters.nats import order_channel as orders
    from algostack.services.gateway.service import status_subject

    gateway = node.nats_permissions("gateway", "qa")
    assert status_subject("qa") in gateway["publish"]["allow"]
    assert "orders.report.>" in gateway["publish"]["allow"]
    assert f"$JS.ACK.{orders.STREAM}.{orders.GATEWAY_CONSUMER}.>" in gateway["publish"]["allow"]
    # Intents come only through the durable consumer: no core subscription to them.
    assert "orders.intent.>" not in gateway["subscribe"]["allow"]
    trader = node.nats_permissions("trader", "qa")
    assert orders.intent_subject("xgb-SPY-model_7").startswith("orders.intent.")
    assert "orders.intent.>" in trader["publish"]["allow"]
    assert "orders.report.>" not in trader["publish"]["allow"]
    dashboard = node.nats_permissions("dashboard", "qa")
    assert "algostack.qa.gateway.>" in dashboard["subscribe"]["allow"]
