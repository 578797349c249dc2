"""algostack node: deployment_config.txt parsing, unit rendering, idempotent install."""

from __future__ import annotations

import configparser
import re
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
alpaca_secret=alpaca/qa
nats_secret_ingest=algostack/qa/nats/ingest
nats_secret_trader=algostack/qa/nats/trader
nats_secret_dashboard=algostack/qa/nats/dashboard
nats_secret_gateway=algostack/qa/nats/gateway
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
nats_secret=algostack/prod/nats/trader
"""
NATS = {role: node.NatsCredential(role, f"pw-{role}#$x") for role in node.NATS_ROLES}
ALPACA = node.AlpacaKeys("PKTEST", "s3cr3t")
INGEST_SECRETS = node.IngestSecrets(alpaca=ALPACA, nats=NATS)
TRADER_SECRETS = node.TraderSecrets(nats=NATS["trader"])


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

    def __call__(self, argv: Sequence[str]) -> str:
        self.calls.append(tuple(argv))
        return ""


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
    plan = node.render_ingest(cfg, ["SPY", "QQQ", "SPY"], INGEST_SECRETS)
    assert set(plan.units) == {
        "algostack-nats.service",
        "algostack-ingest.service",
        "algostack-gateway.service",
        "algostack-dashboard.service",
    }
    bin_dir = "/opt/algostack/venv/bin"
    assert _argv(plan.units["algostack-nats.service"]) == [
        f"{bin_dir}/nats-server",
        "-c",
        "/opt/algostack/etc/nats-server.conf",
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
    assert ingest["Service"]["EnvironmentFile"] == "/opt/algostack/secrets/ingest.env"
    assert ingest["Service"]["User"] == "ec2-user"
    assert ingest["Service"]["Type"] == "notify"
    assert _unit(plan.units["algostack-nats.service"])["Service"]["Type"] == "simple"
    # every Python service that says it is ready is watched: hung, it is aborted (its stacks
    # dumped to the journal) and restarted; nats-server and Streamlit are not Python loops
    # that feed the watchdog
    for name, text in plan.units.items():
        service = _unit(text)["Service"]
        watched = service["Type"] == "notify"
        assert ("WatchdogSec" in service) == watched, name
        if watched:
            assert (service["WatchdogSec"], service["TimeoutAbortSec"]) == ("30", "10"), name
            assert "PYTHONFAULTHANDLER=1" in text and service["Restart"] == "on-failure"
    assert plan.restart == tuple(plan.units)
    assert plan.checks["algostack-nats.service"] == "http://127.0.0.1:8222/healthz"


def test_render_nats_conf_enables_jetstream_and_one_user_per_role_without_secrets() -> None:
    conf = node.render_nats_conf(node.NodeLayout(), "qa")
    assert "jetstream {" in conf
    assert 'store_dir: "/opt/algostack/nats/jetstream"' in conf
    for role in ("INGEST", "TRADER", "DASHBOARD", "GATEWAY"):
        assert f"user: $NATS_{role}_USER, password: $NATS_{role}_PASSWORD" in conf
    assert "pw-" not in conf


def test_render_ingest_without_symbols_is_a_config_error() -> None:
    cfg = node.parse_deployment_config(INGEST_CFG)
    with pytest.raises(ConfigError, match="no symbols"):
        node.render_ingest(cfg, [], INGEST_SECRETS)


def test_parse_symbols_rejects_shell_metacharacters() -> None:
    with pytest.raises(ConfigError, match="invalid symbol"):
        node.parse_symbols("SPY,$(reboot)")


def test_render_trader_units_run_trade_sync_timer_and_final_sync() -> None:
    cfg = node.parse_deployment_config(TRADER_CFG)
    plan = node.render_trader(cfg, TRADER_SECRETS)
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
        "--broker",
        "gateway",
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
    # warm-up across sessions reads the archive the ingest host writes into the same bucket
    assert "Environment=ALGOSTACK_ARCHIVE=s3://" in plan.units["algostack-trader.service"]
    assert _argv(plan.units["algostack-sync.service"]) == sync
    assert _unit(plan.units["algostack-sync.service"])["Service"]["Type"] == "oneshot"
    timer = _unit(plan.units["algostack-sync.timer"])
    assert timer["Timer"]["OnCalendar"] == "*:0/15"
    assert timer["Timer"]["Unit"] == "algostack-sync.service"
    assert plan.enable == ("algostack-trader.service", "algostack-sync.timer")


def test_render_trader_sync_timer_follows_sync_schedule() -> None:
    default = node.render_trader(node.parse_deployment_config(TRADER_CFG), TRADER_SECRETS)
    assert _unit(default.units["algostack-sync.timer"])["Timer"]["OnCalendar"] == "*:0/15"
    cfg = node.parse_deployment_config(TRADER_CFG + "sync_schedule=*:*:0/20\n")
    plan = node.render_trader(cfg, TRADER_SECRETS)
    assert _unit(plan.units["algostack-sync.timer"])["Timer"]["OnCalendar"] == "*:*:0/20"
    assert _unit(plan.units["algostack-sync.timer"])["Timer"]["AccuracySec"] == "1s"
    bad = node.parse_deployment_config(TRADER_CFG + "sync_schedule=*:0/15; rm -rf /\n")
    with pytest.raises(ConfigError, match="sync_schedule"):
        node.render_trader(bad, TRADER_SECRETS)


def test_render_trader_without_nats_address_is_a_config_error() -> None:
    cfg = node.parse_deployment_config(TRADER_CFG.replace("nats_public_ip=10.0.0.5\n", ""))
    with pytest.raises(ConfigError, match="nats_public_ip"):
        node.render_trader(cfg, TRADER_SECRETS)


def test_render_trader_prefix_disagreeing_with_parts_is_a_config_error() -> None:
    cfg = node.parse_deployment_config(TRADER_CFG.replace("symbol=SPY", "symbol=QQQ"))
    with pytest.raises(ConfigError, match="disagrees"):
        node.render_trader(cfg, TRADER_SECRETS)


def test_render_trader_non_integer_model_number_is_a_config_error() -> None:
    cfg = node.parse_deployment_config(TRADER_CFG.replace("model_number=7", "model_number=x"))
    with pytest.raises(ConfigError, match="not an integer"):
        node.render_trader(cfg, TRADER_SECRETS)


def test_install_plan_twice_rewrites_nothing_and_restarts_again(tmp_path: Path) -> None:
    cfg = node.parse_deployment_config(INGEST_CFG)
    plan = node.render_ingest(cfg, ["SPY"], INGEST_SECRETS)
    units = tmp_path / "units"
    rec = Recorder()
    first = node.install_plan(plan, units, rec, root=tmp_path / "root")
    assert len(first.written) == 9  # four units, nats-server.conf, four secrets files
    conf = tmp_path / "root" / "opt/algostack/etc/nats-server.conf"
    assert conf.read_text() == node.render_nats_conf(node.NodeLayout(), "qa")
    second = node.install_plan(plan, units, rec, root=tmp_path / "root")
    assert second.written == ()
    assert len(second.unchanged) == 9
    assert sorted(p.name for p in units.iterdir()) == sorted(plan.units)
    assert rec.calls[:2] == [
        ("systemctl", "daemon-reload"),
        ("systemctl", "enable", *plan.enable),
    ]
    assert rec.calls[2:] == rec.calls[:2]


def test_install_plan_changed_config_rewrites_only_the_changed_unit(tmp_path: Path) -> None:
    rec = Recorder()
    first = node.render_trader(node.parse_deployment_config(TRADER_CFG), TRADER_SECRETS)
    node.install_plan(first, tmp_path, rec, root=tmp_path / "root")
    moved = node.render_trader(
        node.parse_deployment_config(TRADER_CFG + "nats_public_ip=10.9.9.9\n"), TRADER_SECRETS
    )
    result = node.install_plan(moved, tmp_path, rec, root=tmp_path / "root")
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
        plan = node.render_ingest(node.parse_deployment_config(INGEST_CFG), ["SPY"], INGEST_SECRETS)
    else:
        plan = node.render_trader(node.parse_deployment_config(TRADER_CFG), TRADER_SECRETS)
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

    plan = node.render_trader(node.parse_deployment_config(TRADER_CFG), TRADER_SECRETS)
    trade = _argv(plan.units["algostack-trader.service"])
    sync = _argv(plan.units["algostack-sync.service"])
    root = Path(trade[trade.index("--journal-dir") + 1])
    spec = ModelSpec("xgb", "SPY", "model_7", 7)
    assert str(journal_dir_for(root, spec)) == sync[sync.index("--journal-dir") + 1]


# -- secrets files, modes, dashboard -----------------------------------------------------------


def _env_file(text: str) -> dict[str, str]:
    """Read an EnvironmentFile the way systemd does (double quotes, backslash escapes)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, raw = line.partition("=")
        assert raw.startswith('"') and raw.endswith('"'), line
        out[key] = re.sub(r'\\(["\\$`])', r"\1", raw[1:-1])
    return out


def test_env_file_text_round_trips_awkward_values_the_way_systemd_reads_them() -> None:
    value = "p#ss w$rd\"x'y}{\\z `q`"
    assert _env_file(node.env_file_text({"A": value, "B": "plain"})) == {"A": value, "B": "plain"}


def test_each_unit_gets_its_own_root_only_secrets_file_with_only_what_it_needs() -> None:
    cfg = node.parse_deployment_config(INGEST_CFG)
    plan = node.render_ingest(cfg, ["SPY"], INGEST_SECRETS)
    sec = Path("/opt/algostack/secrets")
    files = {p: f for p, f in plan.files.items() if p.parent == sec}
    assert set(files) == {
        sec / "nats.env",
        sec / "ingest.env",
        sec / "gateway.env",
        sec / "dashboard.env",
    }
    assert {f.mode for f in files.values()} == {0o600}
    assert {f.group for f in files.values()} == {None}
    ingest = _env_file(files[sec / "ingest.env"].content)
    assert ingest == {
        "APCA_API_KEY_ID": "PKTEST",
        "APCA_API_SECRET_KEY": "s3cr3t",
        "ALGOSTACK_NATS_USER": "ingest",
        "ALGOSTACK_NATS_PASSWORD": "pw-ingest#$x",
    }
    dash = _env_file(files[sec / "dashboard.env"].content)
    assert dash["ALGOSTACK_NATS_USER"] == "dashboard"
    assert "APCA_API_KEY_ID" not in dash and "ALGOSTACK_DASHBOARD_PASSWORD" not in dash
    nats_env = _env_file(files[sec / "nats.env"].content)
    # JSON strings: nats-server parses $VAR values as config, so they arrive quoted.
    assert nats_env["NATS_TRADER_PASSWORD"] == '"pw-trader#$x"'
    assert nats_env["NATS_INGEST_USER"] == '"ingest"'
    assert "APCA_API_KEY_ID" not in nats_env
    for name in (
        "algostack-nats.service",
        "algostack-gateway.service",
        "algostack-dashboard.service",
    ):
        env_file = _unit(plan.units[name])["Service"]["EnvironmentFile"]
        assert Path(env_file) in files
    # the NATS config is readable by the service user's group, and holds no secret
    conf = plan.files[Path("/opt/algostack/etc/nats-server.conf")]
    assert (conf.mode, conf.group) == (0o640, "ec2-user")
    assert "s3cr3t" not in repr(plan) and "pw-" not in repr(plan)


def test_directories_modes_and_owners() -> None:
    plan = node.render_ingest(node.parse_deployment_config(INGEST_CFG), ["SPY"], INGEST_SECRETS)
    app = Path("/opt/algostack")
    assert plan.dirs[app] == node.DirSpec(0o755, None)
    assert plan.dirs[app / "secrets"] == node.DirSpec(0o700, None)
    assert plan.dirs[app / "state"] == node.DirSpec(0o750, "ec2-user")
    assert plan.dirs[app / "nats"] == node.DirSpec(0o750, "ec2-user")
    trader = node.render_trader(node.parse_deployment_config(TRADER_CFG), TRADER_SECRETS)
    assert trader.dirs[app / "state" / "journals"] == node.DirSpec(0o750, "ec2-user")


def test_install_plan_applies_modes_and_owners_every_time(tmp_path: Path) -> None:
    plan = node.render_ingest(node.parse_deployment_config(INGEST_CFG), ["SPY"], INGEST_SECRETS)
    owners: list[tuple[str, str | None, str | None]] = []

    def chown(path: Path, user: str | None, group: str | None) -> None:
        owners.append((str(path.relative_to(tmp_path)), user, group))

    root = tmp_path / "root"
    node.install_plan(plan, tmp_path / "units", Recorder(), root=root, chown=chown)
    app = root / "opt/algostack"
    assert (app / "secrets").stat().st_mode & 0o777 == 0o700
    assert (app / "secrets/ingest.env").stat().st_mode & 0o777 == 0o600
    assert (app / "etc/nats-server.conf").stat().st_mode & 0o777 == 0o640
    assert (app / "state").stat().st_mode & 0o777 == 0o750
    assert ("root/opt/algostack/state", "ec2-user", "ec2-user") in owners
    assert ("root/opt/algostack/etc/nats-server.conf", None, "ec2-user") in owners
    assert ("root/opt/algostack/secrets/ingest.env", None, None) in owners
    (app / "secrets/ingest.env").chmod(0o644)  # drift (an older bootstrap) is repaired
    node.install_plan(plan, tmp_path / "units", Recorder(), root=root, chown=chown)
    assert (app / "secrets/ingest.env").stat().st_mode & 0o777 == 0o600


def test_remote_dashboard_allows_remote_with_its_password() -> None:
    cfg = node.parse_deployment_config(
        INGEST_CFG + "dashboard_host=0.0.0.0\ndashboard_secret=algostack/qa/dashboard\n"
    )
    assert "dashboard_secret" in node.secret_names(cfg, "ingest")
    secrets = node.IngestSecrets(alpaca=ALPACA, nats=NATS, dashboard_password="letmein")
    plan = node.render_ingest(cfg, ["SPY"], secrets)
    argv = _argv(plan.units["algostack-dashboard.service"])
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert "--allow-remote" in argv
    env = _env_file(plan.files[Path("/opt/algostack/secrets/dashboard.env")].content)
    assert env["ALGOSTACK_DASHBOARD_PASSWORD"] == "letmein"
    assert plan.checks["algostack-dashboard.service"] == "http://127.0.0.1:8501/_stcore/health"
    _parse_with_cli(argv)


def test_remote_dashboard_without_a_secret_is_refused() -> None:
    cfg = node.parse_deployment_config(INGEST_CFG + "dashboard_host=0.0.0.0\n")
    with pytest.raises(ConfigError, match="dashboard_secret"):
        node.render_ingest(cfg, ["SPY"], INGEST_SECRETS)
    loopback = node.render_ingest(node.parse_deployment_config(INGEST_CFG), ["SPY"], INGEST_SECRETS)
    assert "--allow-remote" not in _argv(loopback.units["algostack-dashboard.service"])


def test_secret_parsers_name_the_secret_and_never_the_value() -> None:
    with pytest.raises(ConfigError, match=r"'alpaca/qa' has no APCA_API_SECRET_KEY") as err:
        node.parse_alpaca_secret('{"APCA_API_KEY_ID": "PKSECRETVALUE"}', "alpaca/qa")
    assert "PKSECRETVALUE" not in str(err.value)
    with pytest.raises(ConfigError, match="is not JSON"):
        node.parse_nats_secret("hunter2", "algostack/qa/nats/trader")
    with pytest.raises(ConfigError, match="control character"):
        node.parse_nats_secret('{"user": "t", "password": "a\\nb"}', "n")
    cred = node.parse_nats_secret('{"user": "trader", "password": "x y"}', "n")
    assert "x y" not in repr(cred)


def test_ingest_needs_every_role_secret_name() -> None:
    cfg = node.parse_deployment_config(INGEST_CFG.replace("nats_secret_trader=", "x_trader="))
    with pytest.raises(ConfigError, match="nats_secret_trader"):
        node.secret_names(cfg, "ingest")


# -- readiness -----------------------------------------------------------------------------------


def _state(active: str, sub: str, **kw: object) -> node.UnitState:
    return node.UnitState(active, sub, **kw)  # type: ignore[arg-type]


def test_unit_state_parses_systemctl_show() -> None:
    st = node.UnitState.parse(
        "ActiveState=activating\nSubState=start\nResult=success\nNRestarts=2\nJob=84\n"
    )
    assert st == node.UnitState("activating", "start", "success", 2, True)
    assert not node.UnitState.parse("ActiveState=active\nSubState=running\nJob=\n").job


@pytest.mark.parametrize(
    ("state", "before", "verdict"),
    [
        (_state("active", "running"), 0, "ready"),
        (_state("activating", "start"), 0, None),
        (_state("failed", "failed", job=True), 0, None),  # an old failure, restart queued
        (_state("failed", "failed", result="exit-code"), 0, "failed"),
        (_state("activating", "auto-restart", result="exit-code"), 0, "restarting"),
        (_state("active", "running", restarts=3), 2, "restarting"),
        (_state("active", "running", restarts=3), 3, "ready"),
        (_state("inactive", "dead"), 0, "not running"),
    ],
)
def test_judge(state: node.UnitState, before: int, verdict: str | None) -> None:
    got = node.judge(state, before)
    if verdict is None or verdict == "ready":
        assert got == verdict
    else:
        assert got is not None and verdict in got


class FakeUnits:
    """``systemctl show`` answers scripted per unit (the last one repeats)."""

    def __init__(self, script: dict[str, list[node.UnitState]]) -> None:
        self.script = script

    def __call__(self, unit: str) -> node.UnitState:
        seq = self.script[unit]
        return seq.pop(0) if len(seq) > 1 else seq[0]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


def test_wait_ready_waits_for_notify_and_health_checks() -> None:
    clock = Clock()
    answers = iter([False, False, True])
    units = FakeUnits(
        {
            "a.service": [_state("activating", "start", job=True), _state("activating", "start"),
                          _state("active", "running")],
            "nats.service": [_state("active", "running")],
        }
    )  # fmt: skip
    failures = node.wait_ready(
        ["a.service", "nats.service"],
        units,
        {"nats.service": "http://127.0.0.1:8222/healthz"},
        lambda url: next(answers),
        wait_s=120,
        clock=clock,
        sleep=clock.sleep,
    )
    assert failures == []
    assert clock.now == 2.0


def test_wait_ready_reports_a_crash_at_once_and_a_hang_at_the_deadline() -> None:
    clock = Clock()
    crash = FakeUnits(
        {
            "t.service": [_state("activating", "start"), _state("activating", "auto-restart",
                                                                 result="exit-code")],
        }
    )  # fmt: skip
    (f,) = node.wait_ready(
        ["t.service"], crash, {}, lambda _: True, wait_s=120, clock=clock, sleep=clock.sleep
    )
    assert f.unit == "t.service" and "auto-restart" in f.state
    assert clock.now == 1.0
    clock = Clock()
    hang = FakeUnits({"t.service": [_state("activating", "start")]})
    (f,) = node.wait_ready(
        ["t.service"], hang, {}, lambda _: True, wait_s=5, clock=clock, sleep=clock.sleep
    )
    assert f.state == "not ready after 5 s: activating (start)"
    clock = Clock()
    unhealthy = FakeUnits({"n.service": [_state("active", "running")]})
    (f,) = node.wait_ready(
        ["n.service"], unhealthy, {"n.service": "http://x/healthz"}, lambda _: False,
        wait_s=3, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert "http://x/healthz does not answer" in f.state


def test_notify_ready_sends_ready_on_the_notify_socket(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        assert node.notify_ready("up", environ={"NOTIFY_SOCKET": str(path)})
        assert server.recv(100) == b"READY=1\nSTATUS=up"
    assert not node.notify_ready(environ={})
    assert not node.notify_ready(environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})


async def test_the_watchdog_is_fed_four_times_a_period_only_when_systemd_watches_this_process(
    tmp_path: Path,
) -> None:
    import asyncio
    import os
    import socket

    from algostack.services.node.readiness import feed_watchdog

    path = tmp_path / "notify.sock"
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": ""}
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        if len(slept) == 3:
            raise asyncio.CancelledError  # the service stopped

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.setblocking(False)
        for pid in (str(os.getpid()), ""):  # systemd names this process, or no one
            slept.clear()
            with pytest.raises(asyncio.CancelledError):
                await feed_watchdog(environ={**env, "WATCHDOG_PID": pid}, sleep=sleep)
            assert [server.recv(100) for _ in slept] == [b"WATCHDOG=1"] * 3
            assert slept == [7.5] * 3
        # inherited from a parent, no period, or no unit at all: nothing watches, nothing sent
        for other in (
            {"WATCHDOG_PID": str(os.getpid() + 1)},
            {"WATCHDOG_USEC": ""},
            {"WATCHDOG_USEC": "0"},
        ):
            await asyncio.wait_for(feed_watchdog(environ={**env, **other}, sleep=sleep), 1.0)
        await asyncio.wait_for(feed_watchdog(environ={}, sleep=sleep), 1.0)
        with pytest.raises(BlockingIOError):
            server.recv(100)


def test_every_service_stops_restarting_when_a_restart_cannot_help() -> None:
    """Exit 2 (bad input) or 3 (a full disk or store: ``errors.exit_code``) leaves a unit
    failed at once; a unit that keeps crashing is left failed after its start limit."""
    plans = [
        node.render_trader(node.parse_deployment_config(TRADER_CFG), TRADER_SECRETS),
        node.render_ingest(node.parse_deployment_config(INGEST_CFG), ["AAPL"], INGEST_SECRETS),
    ]
    services = {n: u for p in plans for n, u in p.units.items() if n.endswith(".service")}
    restarting = {n: _unit(u) for n, u in services.items() if "Restart=on-failure" in u}
    assert {"algostack-trader.service", "algostack-ingest.service"} <= set(restarting)
    for name, unit in restarting.items():
        assert unit["Service"]["RestartPreventExitStatus"].split() == ["2", "3"], name
        assert int(unit["Unit"]["StartLimitBurst"]) >= 3, name
        assert int(unit["Unit"]["StartLimitIntervalSec"]) > 5 * int(unit["Unit"]["StartLimitBurst"])
