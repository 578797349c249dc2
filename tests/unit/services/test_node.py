"""algostack node: deployment_config.txt parsing, unit rendering, idempotent install."""

from __future__ import annotations

import configparser
import shlex
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from algostack.errors import ConfigError
from algostack.services import node

INGEST_CFG = """\
# written by user data
environment=qa
aws_region=us-east-1
bucket=algo-model-deploy
git_branch=main
git_repository=git@github.com:example/algostack.git
symbols=SPY,QQQ
"""
TRADER_CFG = """\
environment=prod
bucket=algo-model-deploy-prod
git_branch=live
model_prefix=models/xgb/SPY/model_7
model_type=xgb
symbol=SPY
model_id=model_7
model_number=7
nats_public_ip=10.0.0.5
"""


def _unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def _argv(unit_text: str, key: str = "ExecStart") -> list[str]:
    return shlex.split(_unit(unit_text)["Service"][key])


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> None:
        self.calls.append(tuple(argv))


def test_parse_deployment_config_last_line_wins_and_comments_skipped() -> None:
    cfg = node.parse_deployment_config(TRADER_CFG + "nats_public_ip=10.0.0.9\n")
    assert cfg.environment == "prod"
    assert cfg.bucket == "algo-model-deploy-prod"
    assert cfg.get("nats_public_ip") == "10.0.0.9"


def test_parse_deployment_config_line_without_equals_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"cfg:3: expected key=value"):
        node.parse_deployment_config("environment=dev\nbucket=b\ngarbage\n", source="cfg")


def test_parse_deployment_config_missing_keys_are_listed() -> None:
    with pytest.raises(ConfigError, match="missing bucket, git_branch"):
        node.parse_deployment_config("environment=dev\n")


def test_parse_deployment_config_unknown_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match="'staging' is not one of dev, qa, prod"):
        node.parse_deployment_config("environment=staging\nbucket=b\ngit_branch=x\n")


def test_render_ingest_units_run_the_contract_commands() -> None:
    cfg = node.parse_deployment_config(INGEST_CFG)
    plan = node.render_ingest(cfg, ["SPY", "QQQ", "SPY"])
    assert set(plan.units) == {
        "algostack-nats.service",
        "algostack-ingest.service",
        "algostack-dashboard.service",
    }
    bin_dir = "/opt/algostack/venv/bin"
    assert _argv(plan.units["algostack-nats.service"]) == [
        f"{bin_dir}/nats-server",
        "-c",
        "/opt/algostack/nats/nats-server.conf",
    ]
    assert _argv(plan.units["algostack-ingest.service"]) == [
        f"{bin_dir}/algostack",
        "ingest",
        "--source",
        "alpaca",
        "--symbols",
        "SPY,QQQ",
        "--nats-url",
        "nats://127.0.0.1:4222",
    ]
    assert _argv(plan.units["algostack-dashboard.service"]) == [
        f"{bin_dir}/algostack",
        "dashboard",
        "--host",
        "127.0.0.1",
        "--port",
        "8501",
        "--bucket",
        "s3://algo-model-deploy",
        "--env",
        "qa",
    ]
    ingest = _unit(plan.units["algostack-ingest.service"])
    assert ingest["Unit"]["Requires"] == "algostack-nats.service"
    assert ingest["Service"]["EnvironmentFile"] == "/opt/algostack/secrets.env"
    assert ingest["Service"]["User"] == "ec2-user"
    assert plan.restart == tuple(plan.units)


def test_render_nats_conf_enables_jetstream_and_auth_without_the_password() -> None:
    conf = node.render_nats_conf(node.NodeLayout())
    assert "jetstream {" in conf
    assert 'store_dir: "/opt/algostack/nats/jetstream"' in conf
    assert "user: $ALGOSTACK_NATS_USER" in conf
    assert "password: $ALGOSTACK_NATS_PASSWORD" in conf


def test_render_ingest_without_symbols_is_a_config_error() -> None:
    cfg = node.parse_deployment_config(INGEST_CFG)
    with pytest.raises(ConfigError, match="no symbols"):
        node.render_ingest(cfg, [])


def test_parse_symbols_rejects_shell_metacharacters() -> None:
    with pytest.raises(ConfigError, match="invalid symbol"):
        node.parse_symbols("SPY,$(reboot)")


def test_render_trader_units_run_trade_sync_timer_and_final_sync() -> None:
    cfg = node.parse_deployment_config(TRADER_CFG)
    plan = node.render_trader(cfg)
    bin_dir = "/opt/algostack/venv/bin"
    trader = plan.units["algostack-trader.service"]
    assert _argv(trader) == [
        f"{bin_dir}/algostack",
        "trade",
        "--model",
        "models/xgb/SPY/model_7",
        "--bucket",
        "s3://algo-model-deploy-prod",
        "--journal-dir",
        "/opt/algostack/state/journals",
        "--env",
        "prod",
        "--nats-url",
        "nats://10.0.0.5:4222",
    ]
    sync = [
        f"{bin_dir}/algostack",
        "sync",
        "--bucket",
        "s3://algo-model-deploy-prod",
        "--model",
        "models/xgb/SPY/model_7",
        "--journal-dir",
        "/opt/algostack/state/journals/xgb-SPY-model_7",
    ]
    assert _argv(trader, "ExecStopPost") == [*sync, "--final"]
    assert _argv(plan.units["algostack-sync.service"]) == sync
    assert _unit(plan.units["algostack-sync.service"])["Service"]["Type"] == "oneshot"
    timer = _unit(plan.units["algostack-sync.timer"])
    assert timer["Timer"]["OnCalendar"] == "*:0/15"
    assert timer["Timer"]["Unit"] == "algostack-sync.service"
    assert plan.enable == ("algostack-trader.service", "algostack-sync.timer")


def test_render_trader_without_nats_address_is_a_config_error() -> None:
    cfg = node.parse_deployment_config(TRADER_CFG.replace("nats_public_ip=10.0.0.5\n", ""))
    with pytest.raises(ConfigError, match="nats_public_ip"):
        node.render_trader(cfg)


def test_render_trader_prefix_disagreeing_with_parts_is_a_config_error() -> None:
    cfg = node.parse_deployment_config(TRADER_CFG.replace("symbol=SPY", "symbol=QQQ"))
    with pytest.raises(ConfigError, match="disagrees"):
        node.render_trader(cfg)


def test_render_trader_non_integer_model_number_is_a_config_error() -> None:
    cfg = node.parse_deployment_config(TRADER_CFG.replace("model_number=7", "model_number=x"))
    with pytest.raises(ConfigError, match="not an integer"):
        node.render_trader(cfg)


def test_install_plan_twice_rewrites_nothing_and_restarts_again(tmp_path: Path) -> None:
    cfg = node.parse_deployment_config(INGEST_CFG)
    plan = node.render_ingest(cfg, ["SPY"])
    units = tmp_path / "units"
    rec = Recorder()
    first = node.install_plan(plan, units, rec, root=tmp_path / "root")
    assert len(first.written) == 4  # three units + nats-server.conf
    conf = tmp_path / "root" / "opt/algostack/nats/nats-server.conf"
    assert conf.read_text() == node.render_nats_conf(node.NodeLayout())
    second = node.install_plan(plan, units, rec, root=tmp_path / "root")
    assert second.written == ()
    assert len(second.unchanged) == 4
    assert sorted(p.name for p in units.iterdir()) == sorted(plan.units)
    assert rec.calls[:3] == [
        ("systemctl", "daemon-reload"),
        ("systemctl", "enable", *plan.enable),
        ("systemctl", "restart", *plan.restart),
    ]
    assert rec.calls[3:] == rec.calls[:3]


def test_install_plan_changed_config_rewrites_only_the_changed_unit(tmp_path: Path) -> None:
    rec = Recorder()
    first = node.render_trader(node.parse_deployment_config(TRADER_CFG))
    node.install_plan(first, tmp_path, rec)
    moved = node.render_trader(
        node.parse_deployment_config(TRADER_CFG + "nats_public_ip=10.9.9.9\n")
    )
    result = node.install_plan(moved, tmp_path, rec)
    assert [p.name for p in result.written] == ["algostack-trader.service"]
    assert "nats://10.9.9.9:4222" in (tmp_path / "algostack-trader.service").read_text()


def test_node_cli_dry_run_prints_units_and_writes_nothing(tmp_path: Path) -> None:
    from algostack.cli import app

    cfg = tmp_path / "deployment_config.txt"
    cfg.write_text(TRADER_CFG)
    units = tmp_path / "units"
    result = CliRunner().invoke(
        app, ["node", "trader", "--config", str(cfg), "--units-dir", str(units), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "OnCalendar=*:0/15" in result.output
    assert not units.exists()


def test_node_cli_bad_config_is_one_line_error_and_exit_2(tmp_path: Path) -> None:
    from algostack.cli import app

    cfg = tmp_path / "deployment_config.txt"
    cfg.write_text("environment=dev\n")
    result = CliRunner().invoke(
        app, ["node", "ingest", "--config", str(cfg), "--units-dir", str(tmp_path / "u")]
    )
    assert result.exit_code == 2
    assert "missing bucket, git_branch" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "u").exists()


def test_node_cli_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    from algostack.cli import app

    result = CliRunner().invoke(
        app, ["node", "trader", "--config", str(tmp_path / "nope.txt"), "--dry-run"]
    )
    assert result.exit_code == 2
    assert "cannot read" in result.output


def _parse_with_cli(argv: list[str]) -> None:
    """Parse ``algostack ...`` argv with the real Typer app, without running the command."""
    import typer.main

    from algostack.cli import app

    group = typer.main.get_command(app)
    name, *rest = argv[1:]
    command = group.get_command(group.make_context("algostack", [name]), name)  # type: ignore[attr-defined]
    assert command is not None, f"no command {name!r}"
    command.make_context(name, list(rest))  # raises a usage error on any bad option


@pytest.mark.parametrize("role", ["ingest", "trader"])
def test_rendered_commands_parse_with_the_real_cli(role: str) -> None:
    if role == "ingest":
        plan = node.render_ingest(node.parse_deployment_config(INGEST_CFG), ["SPY"])
    else:
        plan = node.render_trader(node.parse_deployment_config(TRADER_CFG))
    checked = 0
    for text in plan.units.values():
        for key in ("ExecStart", "ExecStopPost"):
            if f"{key}=" not in text:
                continue
            argv = _argv(text, key)
            if argv[0].endswith("/algostack"):
                _parse_with_cli(argv)
                checked += 1
    assert checked >= 2


def test_rendered_trader_journal_dir_is_where_the_trader_writes() -> None:
    from algostack.core.naming import ModelSpec
    from algostack.services.trader.service import journal_dir_for

    plan = node.render_trader(node.parse_deployment_config(TRADER_CFG))
    trade = _argv(plan.units["algostack-trader.service"])
    sync = _argv(plan.units["algostack-sync.service"])
    root = Path(trade[trade.index("--journal-dir") + 1])
    spec = ModelSpec("xgb", "SPY", "model_7", 7)
    assert str(journal_dir_for(root, spec)) == sync[sync.index("--journal-dir") + 1]
