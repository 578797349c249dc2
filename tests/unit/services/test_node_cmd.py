"""``algostack node ingest|trader`` end to end without a host: secrets from moto's Secrets
Manager, files under a temporary root, ``systemctl``/``journalctl`` and health probes faked."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from algostack.commands import node as node_cmd
from algostack.services import node

REGION = "us-east-1"
TRADER_CFG = """\
environment=qa
aws_region=us-east-1
bucket=algo-model-deploy
git_branch=main
model_prefix=models/xgb/SPY/model_7
model_type=xgb
symbol=SPY
model_id=model_7
model_number=7
nats_public_ip=10.0.0.5
alpaca_secret=alpaca/qa
nats_secret=algostack/qa/nats/trader
"""
"""A trader's user data of before the gateway still names alpaca_secret=: it is not read."""
INGEST_CFG = """\
environment=qa
aws_region=us-east-1
bucket=algo-model-deploy
git_branch=main
alpaca_secret=alpaca/qa
nats_secret_ingest=algostack/qa/nats/ingest
nats_secret_trader=algostack/qa/nats/trader
nats_secret_dashboard=algostack/qa/nats/dashboard
nats_secret_gateway=algostack/qa/nats/gateway
symbols_parameter=/algostack/qa/symbols
"""
ALPACA_SECRET = "s3cr3t-value"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name=REGION)
        sm.create_secret(
            Name="alpaca/qa",
            SecretString=json.dumps(
                {"APCA_API_KEY_ID": "PKTEST", "APCA_API_SECRET_KEY": ALPACA_SECRET}
            ),
        )
        for role in node.NATS_ROLES:
            sm.create_secret(
                Name=f"algostack/qa/nats/{role}",
                SecretString=json.dumps({"user": role, "password": f"pw-{role}"}),
            )
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name="/algostack/qa/symbols", Value="SPY,QQQ", Type="String"
        )
        yield


class FakeHost:
    """systemctl/journalctl/useradd behind the runner seam; units answer as scripted."""

    def __init__(self, states: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.states = states or {}

    def __call__(self, argv: Sequence[str]) -> str:
        self.calls.append(tuple(argv))
        if argv[:2] == ("systemctl", "show") or list(argv[:2]) == ["systemctl", "show"]:
            unit = argv[2]
            active, sub = self.states.get(unit, "active/running").split("/")
            return f"ActiveState={active}\nSubState={sub}\nResult=success\nNRestarts=0\nJob=\n"
        if argv[0] == "journalctl":
            return "\n".join(f"line {i} of {argv[2]}" for i in range(20)) + "\n"
        return ""


def _run(
    tmp_path: Path, role: str, cfg_text: str, host: FakeHost, **kw: object
) -> tuple[int, Path]:
    cfg = tmp_path / "deployment_config.txt"
    cfg.write_text(cfg_text)
    root = tmp_path / "root"
    seams = node_cmd.Seams(
        runner=host,
        chown=lambda *_: None,
        probe=lambda _url: True,
        ensure_user=lambda *_: False,
        sleep=lambda _s: None,
        root=root,
    )
    code = node_cmd.run_node(
        role,
        cfg,
        units_dir=tmp_path / "units",
        app_dir=Path("/opt/algostack"),
        user="ec2-user",
        seams=seams,
        **kw,  # type: ignore[arg-type]
    )
    return code, root / "opt/algostack"


def test_trader_fetches_its_secrets_writes_them_root_only_and_waits(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = FakeHost()
    code, app = _run(tmp_path, "trader", TRADER_CFG, host)
    out = capsys.readouterr()
    assert code == 0, out.err
    env = (app / "secrets/trader.env").read_text()
    assert "APCA" not in env  # a trading host never holds broker keys: the gateway does
    assert 'ALGOSTACK_NATS_USER="trader"' in env
    assert (app / "secrets/trader.env").stat().st_mode & 0o777 == 0o600
    assert ALPACA_SECRET not in out.out + out.err
    assert ("systemctl", "restart", "--no-block", "algostack-trader.service",
            "algostack-sync.timer") in host.calls  # fmt: skip
    assert "ready: algostack-trader.service" in out.out


def test_ingest_reads_symbols_from_the_ssm_parameter(aws: None, tmp_path: Path) -> None:
    host = FakeHost()
    code, _ = _run(tmp_path, "ingest", INGEST_CFG, host)
    assert code == 0
    unit = (tmp_path / "units/algostack-ingest.service").read_text()
    assert "--symbols SPY,QQQ" in unit


def test_ingest_gives_the_gateway_the_alpaca_keys_and_waits_for_it(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = FakeHost()
    code, app = _run(tmp_path, "ingest", INGEST_CFG, host)
    out = capsys.readouterr()
    assert code == 0, out.err
    env = (app / "secrets/gateway.env").read_text()
    assert f'APCA_API_SECRET_KEY="{ALPACA_SECRET}"' in env
    assert 'ALGOSTACK_NATS_USER="gateway"' in env
    assert (app / "secrets/gateway.env").stat().st_mode & 0o777 == 0o600
    assert ALPACA_SECRET not in out.out + out.err
    restart = next(c for c in host.calls if c[:2] == ("systemctl", "restart"))
    assert "algostack-gateway.service" in restart
    assert "algostack-gateway.service" in out.out.rsplit("ready:", 1)[1]


def test_ingest_fails_when_the_gateway_unit_crashes(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = FakeHost({"algostack-gateway.service": "failed/failed"})
    code, _ = _run(tmp_path, "ingest", INGEST_CFG, host)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: unit algostack-gateway.service failed")


def test_a_unit_that_crashes_fails_with_one_line_and_its_journal(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = FakeHost({"algostack-trader.service": "activating/auto-restart"})
    code, _ = _run(tmp_path, "trader", TRADER_CFG, host)
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[0].startswith("error: unit algostack-trader.service crashed and is restarting")
    assert err[1:] == [f"line {i} of algostack-trader.service" for i in range(20)]
    assert ("journalctl", "-u", "algostack-trader.service", "-n", "20", "--no-pager") in host.calls


def test_a_missing_secret_is_a_config_error_naming_it(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId="alpaca/qa", ForceDeleteWithoutRecovery=True
    )
    host = FakeHost()
    code, _ = _run(tmp_path, "ingest", INGEST_CFG, host)
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "error: secret 'alpaca/qa' (alpaca_secret=) does not exist in Secrets Manager"
    )
    assert not any(c[:2] == ("systemctl", "restart") for c in host.calls)


def test_a_trader_needs_no_alpaca_secret(aws: None, tmp_path: Path) -> None:
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId="alpaca/qa", ForceDeleteWithoutRecovery=True
    )
    code, app = _run(tmp_path, "trader", TRADER_CFG, FakeHost())
    assert code == 0
    assert "APCA" not in (app / "secrets/trader.env").read_text()
    unit = (tmp_path / "units/algostack-trader.service").read_text()
    assert "--broker gateway" in unit and "ALPACA" not in unit


def test_dry_run_needs_no_aws_and_prints_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = FakeHost()
    code, app = _run(tmp_path, "ingest", INGEST_CFG, host, dry_run=True)
    out = capsys.readouterr().out
    assert code == 0
    assert "algostack-nats.service" in out and "(secrets: not shown)" in out
    assert host.calls == [] and not app.exists()


def test_ensure_user_creates_a_system_user_only_when_missing() -> None:
    calls: list[list[str]] = []

    def runner(argv: Sequence[str]) -> str:
        calls.append(list(argv))
        return ""

    assert not node_cmd.ensure_user("root", Path("/opt/algostack/state"), runner)
    assert node_cmd.ensure_user("algostack-no-such-user", Path("/srv/state"), runner)
    assert calls[0][:2] == ["useradd", "--system"] and calls[0][-1] == "algostack-no-such-user"


def test_run_sh_is_one_script_for_both_modules_and_pins_pyprojects_boto3() -> None:
    import re
    import tomllib

    repo = Path(__file__).resolve().parents[3]
    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d.split("==")[1] for d in deps if d.startswith("boto3==")]
    shared = (repo / "infra/bootstrap/run.sh").resolve()
    for module in ("alpaca_websocket", "trading_server"):
        assert (repo / "infra/modules" / module / "run.sh").resolve() == shared
    script = shared.read_text()
    assert re.search(rf'^BOTO3_VERSION="{re.escape(pin)}"', script, re.MULTILINE)
    assert 'node "$role"' in script and "grep -q '^model_prefix='" in script


def test_node_state_defaults_match_run_sh() -> None:
    layout = node.NodeLayout()
    script = (
        Path(__file__).resolve().parents[3] / "infra/modules/trading_server/run.sh"
    ).read_text()
    assert f'APP_DIR="${{ALGOSTACK_APP_DIR:-{layout.app_dir}}}"' in script
    assert 'VENV="$APP_DIR/venv"' in script and layout.venv_bin == layout.app_dir / "venv/bin"
