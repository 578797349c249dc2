"""``algostack fleet status`` shows each trading host's broker (its ``Broker`` EC2 tag)."""

from __future__ import annotations

import typer
from control_fakes import Aws
from typer.testing import CliRunner

from algostack.commands import fleet


def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def _root() -> None:
        """root"""

    fleet.register(a)
    return a


def test_fleet_status_shows_the_broker_tag_and_a_dash_without_one(aws: Aws) -> None:
    aws.launch("alpaca-websocket-ingest-dev", role="ingest")
    (paper,) = aws.launch("trading-server-dev-AAPL-xgb-1", tags={"Broker": "alpaca"})
    (sim,) = aws.launch("trading-server-dev-MSFT-xgb-2", tags={"Broker": "sim"})
    res = CliRunner().invoke(app(), ["fleet", "status", "--env", "dev"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "broker" in res.output
    rows = {line.split("│")[1].strip(): line for line in res.output.splitlines() if "│" in line}
    assert "alpaca" in rows["trading-server-dev-AAPL-xgb-1"]
    assert "sim" in rows["trading-server-dev-MSFT-xgb-2"]
    cells = [c.strip() for c in rows["alpaca-websocket-ingest-dev"].split("│")]
    assert cells[4] == "-"  # name, id, state, broker
    assert paper != sim
