"""``algostack node ingest|trader``: write this host's systemd units and (re)start them."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from algostack.errors import AlgostackError, ConfigError, FatalError

node_app = typer.Typer(
    name="node",
    help="Bootstrap an AWS host: render systemd units from deployment_config.txt and start them.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path, typer.Option("--config", help="deployment_config.txt written by EC2 user data.")
]
UnitsDirOpt = Annotated[Path, typer.Option("--units-dir", help="Where unit files go.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print the units; write nothing, run nothing.")
]
AppDirOpt = Annotated[
    Path, typer.Option("--app-dir", help="Install directory (venv, secrets.env, NATS data).")
]
UserOpt = Annotated[str, typer.Option("--user", help="Account the services run as.")]


def _systemctl(argv: Sequence[str]) -> None:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FatalError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")


def _run(
    role: str,
    config: Path,
    units_dir: Path,
    dry_run: bool,
    app_dir: Path,
    user: str,
    symbols: str | None,
) -> None:
    from rich.console import Console

    from algostack.services import node

    console = Console()
    err = Console(stderr=True)
    try:
        try:
            text = config.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read {config}: {exc.strerror}") from None
        cfg = node.parse_deployment_config(text, source=str(config))
        layout = node.NodeLayout(app_dir=app_dir, user=user)
        if role == "ingest":
            raw = symbols if symbols is not None else (cfg.get("symbols") or "")
            plan = node.render_ingest(cfg, node.parse_symbols(raw), layout)
        else:
            plan = node.render_trader(cfg, layout)
        if dry_run:
            for name, content in {
                **plan.units,
                **{str(p): c for p, c in plan.files.items()},
            }.items():
                console.rule(name)
                typer.echo(content)
            return
        result = node.install_plan(plan, units_dir, _systemctl)
    except AlgostackError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    console.print(
        f"{role}: wrote {len(result.written)} file(s), {len(result.unchanged)} unchanged; "
        f"restarted {', '.join(plan.restart)}",
        highlight=False,
    )


@node_app.command("ingest")
def ingest(
    config: ConfigOpt = Path("/opt/algostack/deployment_config.txt"),
    units_dir: UnitsDirOpt = Path("/etc/systemd/system"),
    dry_run: DryRunOpt = False,
    app_dir: AppDirOpt = Path("/opt/algostack"),
    user: UserOpt = "ec2-user",
    symbols: Annotated[
        str | None, typer.Option("--symbols", help="Comma-separated symbols (else symbols=).")
    ] = None,
) -> None:
    """Write and (re)start the ingest host's units: nats-server, ingest, dashboard."""
    _run("ingest", config, units_dir, dry_run, app_dir, user, symbols)


@node_app.command("trader")
def trader(
    config: ConfigOpt = Path("/opt/algostack/deployment_config.txt"),
    units_dir: UnitsDirOpt = Path("/etc/systemd/system"),
    dry_run: DryRunOpt = False,
    app_dir: AppDirOpt = Path("/opt/algostack"),
    user: UserOpt = "ec2-user",
) -> None:
    """Write and (re)start a trading host's units: trader, 15-minute sync timer."""
    _run("trader", config, units_dir, dry_run, app_dir, user, None)


def register(app: typer.Typer) -> None:
    """Add ``algostack node`` to the one Typer app."""
    app.add_typer(node_app, name="node")
