"""``algostack fleet`` against moto in-process: status table, dry-run stop, clear errors."""

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


def test_fleet_status_lists_every_instance(aws: Aws) -> None:
    (ingest,) = aws.launch("alpaca-websocket-ingest-dev", role="ingest")
    (trader,) = aws.launch("trading-server-dev-AAPL-xgb-1", state="stopped")
    res = CliRunner().invoke(app(), ["fleet", "status", "--env", "dev"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert ingest in res.output and trader in res.output and "stopped" in res.output
    assert "ingest run: none" in res.output


def test_fleet_stop_dry_run_changes_nothing(aws: Aws) -> None:
    (ingest,) = aws.launch("alpaca-websocket-ingest-dev", role="ingest")
    res = CliRunner().invoke(
        app(), ["fleet", "stop", "--env", "dev", "--dry-run"], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.output
    assert "dry_run" in res.output and ingest in res.output
    assert aws.state(ingest) == "running"


def test_fleet_start_missing_script_one_line_error(aws: Aws) -> None:
    res = CliRunner().invoke(
        app(),
        [
            "fleet",
            "start",
            "--env",
            "dev",
            "--ingest-script",
            "/nonexistent/run.sh",
            "--ignore-calendar",
        ],
    )
    assert res.exit_code == 1
    assert "error:" in res.output and "cannot read run script" in res.output
    assert "Traceback" not in res.output


def test_fleet_bad_env_rejected() -> None:
    res = CliRunner().invoke(app(), ["fleet", "status", "--env", "staging"])
    assert res.exit_code == 2
