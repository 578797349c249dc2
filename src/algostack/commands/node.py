"""``algostack node ingest|trader``: this host's secrets, files and systemd units, started and
waited for (the I/O around ``services/node/``).

run.sh execs it as root. It reads ``deployment_config.txt``, fetches the secrets it names from
Secrets Manager (boto3's default chain; region ``aws_region=``), writes one root-only
EnvironmentFile per unit, the units and the nats-server config, creates the service user when
missing, restarts the units and waits (``--wait-s``) until each is active and ready. A unit that
fails makes it exit 1 with one line naming the unit and its state, then the unit's last
journal lines, so the SSM command fails and the controller raises. Secrets are never printed.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from algostack.errors import AlgostackError, ConfigError, FatalError, exit_code

if TYPE_CHECKING:
    from algostack.services import node as node_types

node_app = typer.Typer(
    name="node",
    help="Bootstrap an AWS host: secrets, systemd units from deployment_config.txt, started "
    "and waited for.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[
    Path, typer.Option("--config", help="deployment_config.txt written by EC2 user data.")
]
UnitsDirOpt = Annotated[Path, typer.Option("--units-dir", help="Where unit files go.")]
DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", help="Print the units (no secrets); fetch, write and run nothing."),
]
AppDirOpt = Annotated[
    Path, typer.Option("--app-dir", help="Install directory (venv, secrets, state, NATS data).")
]
UserOpt = Annotated[str, typer.Option("--user", help="Account the services run as.")]
WaitOpt = Annotated[
    float,
    typer.Option("--wait-s", help="Seconds to wait for every unit to be active and ready."),
]
JOURNAL_LINES = 20

ClientFactory = Callable[[str, str | None], Any]
"""``(service name, region) -> boto3 client``."""


def _run_argv(argv: Sequence[str]) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FatalError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _boto_client(service: str, region: str | None) -> Any:
    import boto3

    return boto3.client(service, region_name=region) if region else boto3.client(service)


def _gid(name: str | None) -> int:
    if name is None:
        return 0
    try:
        return pwd.getpwnam(name).pw_gid  # a user: its primary group
    except KeyError:
        return grp.getgrnam(name).gr_gid


def _chown(path: Path, user: str | None, group: str | None) -> None:
    uid = pwd.getpwnam(user).pw_uid if user is not None else 0
    os.chown(path, uid, _gid(group))


def _probe(url: str) -> bool:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2.0) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


def ensure_user(user: str, home: Path, runner: Callable[[Sequence[str]], str]) -> bool:
    """Create ``user`` as a system user (own group, no login) when missing; True if created."""
    try:
        pwd.getpwnam(user)
        return False
    except KeyError:
        pass
    shell = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
    runner(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            str(home),
            "--shell",
            shell,
            user,
        ]
    )
    return True


def fetch_secret(client: Any, name: str, key: str) -> str:
    """The SecretString of ``name``; errors name the config key and the secret, never a value."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        resp = client.get_secret_value(SecretId=name)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise ConfigError(
                f"secret {name!r} ({key}=) does not exist in Secrets Manager"
            ) from None
        raise ConfigError(f"cannot read secret {name!r} ({key}=): {code or exc}") from None
    except BotoCoreError as exc:
        raise FatalError(f"cannot reach Secrets Manager for {name!r} ({key}=): {exc}") from None
    text = resp.get("SecretString")
    if not text:
        raise ConfigError(f"secret {name!r} ({key}=) has no SecretString")
    return str(text)


def fetch_symbols(client: Any, parameter: str) -> str:
    """The ingest host's symbols from SSM Parameter Store (``symbols_parameter=``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        resp = client.get_parameter(Name=parameter, WithDecryption=True)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise ConfigError(
            f"cannot read symbols from SSM parameter {parameter!r} (symbols_parameter=): "
            f"{code or exc}"
        ) from None
    except BotoCoreError as exc:
        raise FatalError(f"cannot reach SSM for {parameter!r}: {exc}") from None
    return str(resp["Parameter"]["Value"])


def load_secrets(
    role: str, cfg: node_types.DeploymentConfig, client: Any | None
) -> node_types.IngestSecrets | node_types.TraderSecrets:
    """Fetch and parse this host's secrets; with ``client=None`` (dry run), placeholders."""
    from algostack.services import node

    names = node.secret_names(cfg, role)

    def text(key: str) -> str:
        if client is None:
            fake = {
                "alpaca_secret": '{"APCA_API_KEY_ID": "<from %s>", "APCA_API_SECRET_KEY": "-"}',
                "dashboard_secret": '{"password": "<from %s>"}',
            }.get(key, '{"user": "from-secret", "password": "<from %s>"}')
            return fake % names[key]
        return fetch_secret(client, names[key], key)

    if role == "ingest":
        return node.IngestSecrets(
            alpaca=node.parse_alpaca_secret(text("alpaca_secret"), names["alpaca_secret"]),
            nats={
                r: node.parse_nats_secret(text(f"nats_secret_{r}"), names[f"nats_secret_{r}"])
                for r in node.NATS_ROLES
            },
            dashboard_password=(
                node.parse_dashboard_secret(text("dashboard_secret"), names["dashboard_secret"])
                if "dashboard_secret" in names
                else None
            ),
        )
    return node.TraderSecrets(
        nats=node.parse_nats_secret(text("nats_secret"), names["nats_secret"])
    )


@dataclass
class Seams:
    """Everything ``run_node`` touches outside Python: tests replace each."""

    runner: Callable[[Sequence[str]], str] = _run_argv
    client_factory: ClientFactory = _boto_client
    chown: Callable[[Path, str | None, str | None], None] | None = _chown
    probe: Callable[[str], bool] = _probe
    ensure_user: Callable[[str, Path, Callable[[Sequence[str]], str]], bool] = ensure_user
    sleep: Callable[[float], None] | None = None
    clock: Callable[[], float] | None = None
    root: Path | None = None


def _fail(units: Sequence[node_types.UnitFailure], runner: Callable[[Sequence[str]], str]) -> None:
    for failure in units:
        sys.stderr.write(f"error: unit {failure.unit} {failure.state}\n")
        try:
            tail = runner(
                ["journalctl", "-u", failure.unit, "-n", str(JOURNAL_LINES), "--no-pager"]
            )
        except AlgostackError as exc:
            tail = f"(no journal: {exc})\n"
        sys.stderr.write(tail if tail.endswith("\n") else tail + "\n")
    sys.stderr.flush()


def run_node(
    role: str,
    config: Path,
    *,
    units_dir: Path,
    app_dir: Path,
    user: str,
    symbols: str | None = None,
    dry_run: bool = False,
    wait_s: float = 120.0,
    seams: Seams | None = None,
) -> int:
    """Bootstrap this host as ``role``; return the exit code (0 ok, 1 unit failed, 2 config)."""
    from algostack.services import node

    seams = seams or Seams()
    try:
        try:
            text = config.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read {config}: {exc.strerror}") from None
        cfg = node.parse_deployment_config(text, source=str(config))
        region = cfg.get("aws_region") or None
        layout = node.NodeLayout(app_dir=app_dir, user=user)
        client = None if dry_run else seams.client_factory("secretsmanager", region)
        secrets = load_secrets(role, cfg, client)
        plan: node.NodePlan
        if isinstance(secrets, node.IngestSecrets):
            raw = symbols if symbols is not None else (cfg.get("symbols") or "")
            parameter = cfg.get("symbols_parameter")
            if not raw.strip() and parameter:
                raw = (
                    f"<from {parameter}>"
                    if dry_run
                    else fetch_symbols(seams.client_factory("ssm", region), parameter)
                )
            syms = ("FROM-SSM",) if dry_run and raw.startswith("<") else node.parse_symbols(raw)
            plan = node.render_ingest(cfg, syms, secrets, layout)
        else:
            plan = node.render_trader(cfg, secrets, layout)
        if dry_run:
            for name, content in plan.units.items():
                typer.echo(f"# --- {name}")
                typer.echo(content)
            for path, spec in plan.files.items():
                typer.echo(f"# --- {path} (mode {spec.mode:04o})")
                typer.echo(spec.content if spec.mode & 0o044 else "(secrets: not shown)\n")
            return 0
        seams.ensure_user(user, layout.state_dir, seams.runner)
        result = node.install_plan(
            plan, units_dir, seams.runner, root=seams.root, chown=seams.chown
        )
    except AlgostackError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exit_code(exc)

    def show(unit: str) -> node.UnitState:
        argv = ["systemctl", "show", unit]
        for prop in node.SHOW_PROPERTIES:
            argv += ["-p", prop]
        return node.UnitState.parse(seams.runner(argv))

    try:
        before = {unit: show(unit).restarts for unit in plan.restart}
        seams.runner(["systemctl", "restart", "--no-block", *plan.restart])

        kwargs: dict[str, Any] = {}
        if seams.sleep is not None:
            kwargs["sleep"] = seams.sleep
        if seams.clock is not None:
            kwargs["clock"] = seams.clock
        failures = node.wait_ready(
            plan.restart,
            show,
            plan.checks,
            seams.probe,
            wait_s=wait_s,
            restarts_before=before,
            **kwargs,
        )
    except AlgostackError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    if failures:
        _fail(failures, seams.runner)
        return 1
    typer.echo(
        f"{role}: wrote {len(result.written)} file(s), {len(result.unchanged)} unchanged; "
        f"ready: {', '.join(plan.restart)}"
    )
    return 0


def _main(role: str, **kwargs: Any) -> None:
    code = run_node(role, **kwargs)
    if code:
        raise typer.Exit(code)


@node_app.command("ingest")
def ingest(
    config: ConfigOpt = Path("/opt/algostack/deployment_config.txt"),
    units_dir: UnitsDirOpt = Path("/etc/systemd/system"),
    dry_run: DryRunOpt = False,
    app_dir: AppDirOpt = Path("/opt/algostack"),
    user: UserOpt = "ec2-user",
    symbols: Annotated[
        str | None,
        typer.Option(
            "--symbols",
            help="Comma-separated symbols (else symbols=, else the SSM "
            "parameter symbols_parameter=).",
        ),
    ] = None,
    wait_s: WaitOpt = 120.0,
) -> None:
    """Secrets, units and start of the ingest host: nats-server, ingest, gateway, dashboard."""
    _main(
        "ingest",
        config=config,
        units_dir=units_dir,
        app_dir=app_dir,
        user=user,
        symbols=symbols,
        dry_run=dry_run,
        wait_s=wait_s,
    )


@node_app.command("trader")
def trader(
    config: ConfigOpt = Path("/opt/algostack/deployment_config.txt"),
    units_dir: UnitsDirOpt = Path("/etc/systemd/system"),
    dry_run: DryRunOpt = False,
    app_dir: AppDirOpt = Path("/opt/algostack"),
    user: UserOpt = "ec2-user",
    wait_s: WaitOpt = 120.0,
) -> None:
    """Secrets, units and start of a trading host: trader, 15-minute sync timer."""
    _main(
        "trader",
        config=config,
        units_dir=units_dir,
        app_dir=app_dir,
        user=user,
        dry_run=dry_run,
        wait_s=wait_s,
    )


def register(app: typer.Typer) -> None:
    """Add ``algostack node`` to the one Typer app."""
    app.add_typer(node_app, name="node")


__all__ = ["Seams", "ensure_user", "fetch_secret", "load_secrets", "register", "run_node"]
