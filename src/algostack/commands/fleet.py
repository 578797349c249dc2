"""``algostack fleet status|start|stop``: the Lambda controllers, run from a workstation.

Uses the default AWS credential chain (``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` for moto).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from algostack.commands.error_line import print_error
from algostack.commands.output import print_whole

ENV_HELP = "Environment: dev, qa or prod."


class Env(StrEnum):
    """The deployable environments."""

    dev = "dev"
    qa = "qa"
    prod = "prod"


def _fail(exc: Exception) -> None:
    """One line for ``exc`` and the exit code: 2 for bad input or no usable AWS credentials or
    region (nothing was asked of AWS), 1 for a failure, an AWS refusal included."""
    from botocore.exceptions import BotoCoreError, ClientError

    from algostack.adapters.storage import aws_setup_problem
    from algostack.control.ec2 import error_message
    from algostack.errors import EXIT_BAD_INPUT, EXIT_FAILED, exit_code

    problem = aws_setup_problem(exc)
    if problem is not None:
        message, code = problem, EXIT_BAD_INPUT
    elif isinstance(exc, BotoCoreError | ClientError):
        message, code = f"AWS: {error_message(exc)}", EXIT_FAILED
    else:
        message, code = str(exc), exit_code(exc)
    print_error(message)
    raise typer.Exit(code=code)


def _table(title: str, rows: list[dict[str, Any]], *, broker: bool = False) -> None:
    from rich.table import Table

    table = Table(title=title)
    cols = ["name", "id", "state", "health", "ssm agent", "last command", "detail"]
    keys = ["name", "id", "state", "health", "agent", "command", "detail"]
    if broker:
        cols.insert(3, "broker")
        keys.insert(3, "broker")
    for col in cols:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*(str(r.get(k, "")) for k in keys))
    print_whole(table)


def _units_cell(row: dict[str, Any]) -> str:
    """A host's units in one cell: ``units ok (4)``, the failing ones, or why none were read."""
    if "units_error" in row:
        return str(row["units_error"])
    found = row.get("units")
    if found is None:
        return "units: -"
    if row["failing_units"]:
        return "FAILING " + "; ".join(row["failing_units"])
    return f"units ok ({len(found)})" if found else "no algostack units"


def broker_tags(ec2: Any, instance_ids: list[str]) -> dict[str, str]:
    """Each instance's ``Broker`` tag (set by Terraform on the ingest host, whose gateway
    holds the account: alpaca, sim, live)."""
    out: dict[str, str] = {}
    for i in range(0, len(instance_ids), 200):
        pages = ec2.get_paginator("describe_tags").paginate(
            Filters=[
                {"Name": "resource-id", "Values": instance_ids[i : i + 200]},
                {"Name": "key", "Values": ["Broker"]},
            ]
        )
        for page in pages:
            for tag in page.get("Tags", []):
                out[tag["ResourceId"]] = tag.get("Value", "")
    return out


def _rows_from_result(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    items = dict(result.get("instances", {}))
    if isinstance(result.get("ingest"), dict) and "id" in result["ingest"]:
        items = {result["ingest"]["id"]: result["ingest"], **items}
    if isinstance(result.get("instance"), dict):
        items = {result["instance"]["id"]: {**result["instance"], **result}}
    for iid, item in items.items():
        health = item.get("health", {})
        cmd = item.get("command") or item.get("sync") or {}
        rows.append(
            {
                "name": item.get("name", ""),
                "id": iid,
                "state": item.get("state", ""),
                "health": health.get("status_checks", "") if health else "",
                "agent": health.get("ssm_agent", "") if health else "",
                "command": f"{cmd.get('status', '')} {cmd.get('exit_code', '')}".strip(),
                "detail": item.get("error") or ("" if item.get("ok", True) else "failed"),
            }
        )
    return rows


def register(app: typer.Typer) -> None:
    """Add the ``fleet`` command group to the app."""
    fleet = typer.Typer(
        help="Start, stop and inspect an AWS environment's EC2 fleet.", no_args_is_help=True
    )
    app.add_typer(fleet, name="fleet")

    def setup(env: Env, region: str | None, **overrides: Any) -> tuple[Any, Any]:
        from algostack.control.config import ControlConfig
        from algostack.control.runtime import Clients

        cfg = ControlConfig(environment=env.value, **{k: v for k, v in overrides.items() if v})
        return Clients.from_boto3(region=region), cfg

    @fleet.command("status")
    def status(
        env: Annotated[Env, typer.Option("--env", help=ENV_HELP)],
        region: Annotated[str | None, typer.Option("--region", help="AWS region.")] = None,
        units: Annotated[
            bool,
            typer.Option(
                "--units/--no-units",
                help="Also read each running host's algostack units (one read-only SSM command).",
            ),
        ] = True,
    ) -> None:
        """Every instance of the environment: state, health, SSM, last command, its units.

        Exits 1 when an algostack unit on a host failed or restarted."""
        from botocore.exceptions import BotoCoreError, ClientError

        from algostack.control.status import fleet_status
        from algostack.core.sessions import new_york_date
        from algostack.errors import AlgostackError

        try:
            clients, cfg = setup(env, region)
            out = fleet_status(clients, cfg, new_york_date(datetime.now(UTC)), units=units)
        except (AlgostackError, BotoCoreError, ClientError) as exc:
            _fail(exc)
            return
        ids = [r["id"] for r in out["instances"]]
        brokers = broker_tags(clients.ec2, ids) if ids else {}
        rows = [
            {
                "name": r["name"],
                "id": r["id"],
                "state": r["state"],
                "broker": brokers.get(r["id"]) or "-",
                "health": r["status_checks"],
                "agent": r["ssm_agent"],
                "command": (
                    f"{r['last_command']['status']} {r['last_command']['comment']}"
                    if r["last_command"]
                    else "-"
                ),
                "detail": f"{r['role']}; {_units_cell(r)}" if units else r["role"],
            }
            for r in out["instances"]
        ]
        _table(f"algostack {env.value} fleet ({out['trading_day']})", rows, broker=True)
        for comp, rec in out["runs"].items():
            typer.echo(f"{comp} run: {rec['status'] + ' ' + rec['updated_at'] if rec else 'none'}")
        if out["failing_units"]:
            from rich.console import Console

            err = Console(stderr=True)
            for line in out["failing_units"]:
                err.print(f"[bold red]failing unit:[/] {line}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1)

    @fleet.command("start")
    def start(
        env: Annotated[Env, typer.Option("--env", help=ENV_HELP)],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, change nothing.")] = False,
        region: Annotated[str | None, typer.Option("--region", help="AWS region.")] = None,
        force: Annotated[bool, typer.Option("--force", help="Ignore today's run records.")] = False,
        ignore_calendar: Annotated[
            bool, typer.Option("--ignore-calendar", help="Run on a non-session day too.")
        ] = False,
        ingest_script: Annotated[Path, typer.Option(help="The ingest module's run.sh.")] = Path(
            "infra/modules/alpaca_websocket/run.sh"
        ),
        trading_script: Annotated[Path, typer.Option(help="The trading module's run.sh.")] = Path(
            "infra/modules/trading_server/run.sh"
        ),
        only: Annotated[str, typer.Option(help="all, ingest or trading.")] = "all",
        timeout: Annotated[
            float, typer.Option(help="Seconds allowed for each controller.")
        ] = 900.0,
    ) -> None:
        """Run the ingest controller, then the trading controller (like the Lambda chain)."""
        from botocore.exceptions import BotoCoreError, ClientError

        from algostack.control.controllers import run_ingest, run_trading
        from algostack.errors import AlgostackError, ConfigError

        steps = {"all": ("ingest", "trading"), "ingest": ("ingest",), "trading": ("trading",)}.get(
            only
        )
        if steps is None:
            _fail(ConfigError(f"--only must be all, ingest or trading, got {only!r}"))
            return
        try:
            for step in steps:
                script = ingest_script if step == "ingest" else trading_script
                clients, cfg = setup(env, region, run_script=script)
                fn = run_ingest if step == "ingest" else run_trading
                out = _run(fn, clients, cfg, dry_run, force, ignore_calendar, timeout)
                _report(step, out)
                if out["status"] in ("skipped", "duplicate"):
                    break
        except (AlgostackError, BotoCoreError, ClientError) as exc:
            report = getattr(exc, "report", None)
            if report:
                _table(f"{env.value}: failed", _rows_from_result(report))
            _fail(exc)

    @fleet.command("stop")
    def stop(
        env: Annotated[Env, typer.Option("--env", help=ENV_HELP)],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, change nothing.")] = False,
        region: Annotated[str | None, typer.Option("--region", help="AWS region.")] = None,
        timeout: Annotated[float, typer.Option(help="Seconds allowed for sync + stop.")] = 300.0,
    ) -> None:
        """Run the final sync on every trader, then stop every instance (the shutdown Lambda)."""
        from botocore.exceptions import BotoCoreError, ClientError

        from algostack.control.controllers import run_shutdown
        from algostack.errors import AlgostackError

        try:
            clients, cfg = setup(env, region)
            _report("shutdown", _run(run_shutdown, clients, cfg, dry_run, False, True, timeout))
        except (AlgostackError, BotoCoreError, ClientError) as exc:
            report = getattr(exc, "report", None)
            if report:
                _table(f"{env.value}: shutdown", _rows_from_result(report))
            _fail(exc)


def _run(
    fn: Any,
    clients: Any,
    cfg: Any,
    dry_run: bool,
    force: bool,
    ignore_calendar: bool,
    timeout: float,
) -> dict[str, Any]:
    from algostack.control.requests import Request
    from algostack.control.runtime import Deadline, Runtime
    from algostack.core.sessions import new_york_date

    now = datetime.now(UTC)
    req = Request(
        request_id=f"cli-{uuid.uuid4()}",
        at=now,
        day=new_york_date(now),
        source="cli",
        dry_run=dry_run,
        force=force,
        ignore_calendar=ignore_calendar,
    )
    return fn(clients, cfg, req, Deadline.after(timeout), Runtime())  # type: ignore[no-any-return]


def _report(step: str, out: dict[str, Any]) -> None:
    import json

    from rich.console import Console

    console = Console()
    console.print(
        f"[bold]{step}[/]: {out['status']}" + (f" — {out['reason']}" if out.get("reason") else "")
    )
    if out["status"] == "dry_run":
        console.print_json(json.dumps(out["would"]))
    rows = _rows_from_result(out)
    if rows:
        _table(f"{step} ({out['environment']}, {out['trading_day']})", rows)
