"""Launching the dashboard: loopback by default, no keys in its environment, kill payloads."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from algostack.cli import app
from algostack.errors import ConfigError
from algostack.services.dashboard.auth import check_password
from algostack.services.dashboard.feed import day_start, kill_payload
from algostack.services.dashboard.launch import (
    APP_PATH,
    DashboardLaunch,
    check_bind,
    child_env,
    is_loopback,
    streamlit_argv,
)
from algostack.services.dashboard.settings import DashboardSettings


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("10.0.0.5", False), ("::", False), ("example.com", False)],
)  # fmt: skip
def test_is_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_check_bind_remote_without_flag_is_refused() -> None:
    with pytest.raises(ConfigError, match="--allow-remote"):
        check_bind("0.0.0.0", 8501, allow_remote=False)
    check_bind("0.0.0.0", 8501, allow_remote=True)


def test_check_bind_bad_port_is_refused() -> None:
    with pytest.raises(ConfigError, match="port"):
        check_bind("127.0.0.1", 0, allow_remote=False)


def test_streamlit_argv_binds_given_host_headless_without_telemetry() -> None:
    argv = streamlit_argv(DashboardLaunch(port=9999, nats_password="s3cret"))
    assert argv[1:5] == ["-m", "streamlit", "run", str(APP_PATH)]
    opts = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert opts["--server.address"] == "127.0.0.1"
    assert opts["--server.port"] == "9999"
    assert opts["--server.headless"] == "true"
    assert opts["--browser.gatherUsageStats"] == "false"
    assert "s3cret" not in " ".join(argv)


def test_child_env_strips_alpaca_keys_and_passes_settings() -> None:
    base = {"APCA_API_KEY_ID": "PKXXXX", "APCA_API_SECRET_KEY": "sec", "PATH": "/bin"}
    launch = DashboardLaunch(
        env="dev", nats_url="nats://127.0.0.1:1", nats_user="u", nats_password="p", bucket="/b"
    )
    env = child_env(launch, base)
    assert not any(k in env for k in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"))
    assert env["PATH"] == "/bin" and env["ALGOSTACK_ENV"] == "dev"
    assert env["ALGOSTACK_NATS_URL"] == "nats://127.0.0.1:1"
    assert env["ALGOSTACK_NATS_PASSWORD"] == "p"
    assert env["ALGOSTACK_DASHBOARD_BUCKET"] == "/b"
    assert base["APCA_API_KEY_ID"] == "PKXXXX"  # the caller's env is not modified


def test_cli_dashboard_remote_host_without_flag_exits_with_one_line_error() -> None:
    result = CliRunner().invoke(app, ["dashboard", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "refusing to serve the dashboard on 0.0.0.0" in result.output
    assert "Traceback" not in result.output


def test_kill_payload_is_json_with_model_reason_and_author() -> None:
    body = orjson.loads(kill_payload("onnx-AAPL-model_1", "  runaway  ", ts=5))
    assert body == {"model": "onnx-AAPL-model_1", "reason": "runaway", "by": "dashboard", "ts": 5}
    assert orjson.loads(kill_payload("*", "all out"))["model"] == "*"


@pytest.mark.parametrize(("model", "reason"), [("a.b", "x"), ("", "x"), ("m", " "), ("a b", "x")])
def test_kill_payload_bad_model_or_empty_reason_is_refused(model: str, reason: str) -> None:
    with pytest.raises(ConfigError):
        kill_payload(model, reason)


def test_day_start_is_new_york_midnight_in_utc() -> None:
    # 02:00 UTC on June 17 is still June 16 in New York (EDT, UTC-4).
    assert day_start(datetime(2025, 6, 17, 2, 0, tzinfo=UTC)) == datetime(
        2025, 6, 16, 4, 0, tzinfo=UTC
    )


def test_check_password_compares_exactly() -> None:
    assert check_password("hunter2", SecretStr("hunter2"))
    assert not check_password("hunter", SecretStr("hunter2"))
    assert not check_password("", SecretStr("hunter2"))


def test_dashboard_settings_market_hours_auto_depends_on_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ALGOSTACK_DASHBOARD_MARKET_HOURS", raising=False)
    s = DashboardSettings()
    assert s.hours_always("local") and not s.hours_always("prod")
    monkeypatch.setenv("ALGOSTACK_DASHBOARD_MARKET_HOURS", "nyse")
    assert not DashboardSettings().hours_always("local")
