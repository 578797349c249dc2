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
    assert res.exit_code == 2  # bad input: nothing was asked of AWS
    assert "error:" in res.output and "cannot read run script" in res.output
    assert "Traceback" not in res.output


def test_fleet_bad_env_rejected() -> None:
    res = CliRunner().invoke(app(), ["fleet", "status", "--env", "staging"])
    assert res.exit_code == 2


# No credentials anywhere: no env keys, no files, no instance metadata.
NO_AWS = {
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_DEFAULT_REGION": None,
    "AWS_REGION": None,
}


def test_fleet_without_credentials_region_or_endpoint_is_one_line() -> None:
    cases = [
        (["--region", "us-east-1"], {}, 2, "AWS credentials: Unable to locate credentials"),
        ([], {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, 2, "no AWS region"),
        (
            ["--region", "us-east-1"],
            {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_MAX_ATTEMPTS": "1",
             "AWS_ENDPOINT_URL": "http://127.0.0.1:1"},
            1,
            "AWS: Could not connect to the endpoint URL",
        ),
    ]  # fmt: skip
    for args, env, code, message in cases:
        res = CliRunner().invoke(app(), ["fleet", "status", "--env", "dev", *args],
                                 env={**NO_AWS, **env})  # fmt: skip
        assert res.exit_code == code, res.output
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), res.output
