"""`algostack gateway` refuses bad desk limits before it connects: one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from algostack.cli import app


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max-gross", "0", "max_gross_notional=0.0 (must be > 0, finite)"),
        ("--max-net", "nan", "max_net_notional=nan (must be > 0, finite)"),
        ("--max-symbol-shares", "0", "max_symbol_shares=0 (must be >= 1)"),
        ("--daily-loss-limit", "inf", "daily_loss_limit=inf (must be > 0, finite)"),
    ],
)
def test_gateway_bad_desk_limit_is_one_line_exit_2(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    # Port 1 refuses: had the limits passed, the gateway would fail to connect instead.
    args = ["gateway", "--broker", "sim", "--state-dir", str(tmp_path / "gw"),
            "--nats-url", "nats://127.0.0.1:1", flag, value]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: gateway failed: invalid desk limits: {message}"]
    assert not (tmp_path / "gw").exists(), "nothing is created on bad input"
