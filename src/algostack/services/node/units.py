"""The systemd units of an ingest or a trading host, with the files and directories they need
(:class:`NodePlan`), rendered from ``deployment_config.txt`` and the host's secrets."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from algostack.core.naming import model_key
from algostack.errors import EXIT_BAD_INPUT, EXIT_NO_RESTART, ConfigError
from algostack.services.dashboard.launch import is_loopback
from algostack.services.node.config import (
    NATS_ROLES,
    DeploymentConfig,
    NodeLayout,
    dashboard_host,
    gateway_spec,
    parse_symbols,
    trader_spec,
)
from algostack.services.node.nats import NATS_MONITOR, NATS_PORT, nats_env_values, render_nats_conf
from algostack.services.node.secrets import IngestSecrets, TraderSecrets, env_file_text

DASHBOARD_PORT = 8501
SYNC_ON_CALENDAR = "*:0/15"
_CALENDAR_RE = re.compile(r"^[-0-9A-Za-z*/:,. ]+$")
START_TIMEOUT_S = 300
"""systemd's own bound on a Type=notify start (loading models, warm-up); run.sh waits less."""
RESTART_SEC = 5
WATCHDOG_S = 30
"""A Python service that stops feeding systemd's watchdog (its event loop hung) for this long
is aborted and restarted (``Restart=on-failure``); the abort dumps its threads' stacks to
the journal (``PYTHONFAULTHANDLER``)."""
ABORT_TIMEOUT_S = 10
"""A service the watchdog's ``SIGABRT`` does not end this soon (stuck in the kernel, say) is
killed with ``SIGKILL``. systemd sends ``SIGCONT`` with the abort, so a stopped one dies."""
START_LIMIT_BURST = 5
START_LIMIT_INTERVAL_S = 300
"""Past ``START_LIMIT_BURST`` starts in this many seconds systemd leaves a unit ``failed``
(``Result=start-limit-hit``), which ``algostack fleet status`` and the dashboard show."""
_UNIT_HEADER = "# Written by `algostack node`; edits are overwritten on the next bootstrap.\n"


@dataclass(frozen=True)
class FileSpec:
    """A file owned by root: its content, mode and group (``None``: root's group)."""

    content: str = field(repr=False)
    mode: int = 0o644
    group: str | None = None


@dataclass(frozen=True)
class DirSpec:
    """A directory: its mode and owner (``None``: root)."""

    mode: int = 0o755
    owner: str | None = None


@dataclass(frozen=True)
class NodePlan:
    """What a host runs: directories, files, unit files (by name), units to (re)start.

    ``checks`` maps a unit to the URL that must answer 200 before it counts as ready.
    """

    role: str
    units: dict[str, str]
    files: dict[Path, FileSpec]
    restart: tuple[str, ...]
    enable: tuple[str, ...]
    dirs: dict[Path, DirSpec] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)


def _base_dirs(layout: NodeLayout) -> dict[Path, DirSpec]:
    return {
        layout.app_dir: DirSpec(0o755),
        layout.secrets_dir: DirSpec(0o700),
        layout.state_dir: DirSpec(0o750, layout.user),
    }


def _cmd(*parts: str | Path) -> str:
    return " ".join(shlex.quote(str(p)) for p in parts)


def _service(
    description: str,
    exec_start: str,
    layout: NodeLayout,
    cfg: DeploymentConfig,
    *,
    env_file: Path | None,
    notify: bool = False,
    after: Sequence[str] = (),
    requires: Sequence[str] = (),
    environment: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> str:
    deps = " ".join(["network-online.target", *after])
    kind = (
        [
            "Type=notify",
            "NotifyAccess=main",
            f"TimeoutStartSec={START_TIMEOUT_S}",
            f"WatchdogSec={WATCHDOG_S}",
            f"TimeoutAbortSec={ABORT_TIMEOUT_S}",
        ]
        if notify
        else ["Type=simple"]
    )
    lines = [
        _UNIT_HEADER.rstrip("\n"),
        "[Unit]",
        f"Description={description}",
        "Wants=network-online.target",
        f"After={deps}",
        *([f"Requires={' '.join(requires)}"] if requires else []),
        # a unit that keeps failing stops being restarted and shows as failed
        f"StartLimitIntervalSec={START_LIMIT_INTERVAL_S}",
        f"StartLimitBurst={START_LIMIT_BURST}",
        "",
        "[Service]",
        *kind,
        f"User={layout.user}",
        f"WorkingDirectory={layout.state_dir}",
        *([f"EnvironmentFile={env_file}"] if env_file is not None else []),
        f"Environment=ALGOSTACK_ENV={cfg.environment}",
        f"Environment=ALGOSTACK_DEPLOYMENT_CONFIG={layout.config_path}",
        f"Environment=ALGOSTACK_HOME={layout.state_dir}",
        "Environment=PYTHONUNBUFFERED=1",
        "Environment=PYTHONFAULTHANDLER=1",
        *(f"Environment={e}" for e in environment),
        f"ExecStart={exec_start}",
        *extra,
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        # bad input (2), a full disk or store (3): a restart cannot help (service_exit_code)
        f"RestartPreventExitStatus={EXIT_BAD_INPUT} {EXIT_NO_RESTART}",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def _secret_file(values: Mapping[str, str]) -> FileSpec:
    return FileSpec(env_file_text(values), 0o600)


def render_ingest(
    cfg: DeploymentConfig,
    symbols: Sequence[str],
    secrets: IngestSecrets,
    layout: NodeLayout | None = None,
) -> NodePlan:
    """Units of the ingest host: nats-server, Alpaca ingest, the execution gateway (the only
    holder of the broker keys: ``broker=``, ``alpaca_live=``), Streamlit dashboard."""
    layout = layout or NodeLayout()
    gateway = gateway_spec(cfg)
    syms = parse_symbols(",".join(symbols))
    algostack = layout.venv_bin / "algostack"
    host = dashboard_host(cfg)
    remote = not is_loopback(host)
    if remote and not secrets.dashboard_password:
        raise ConfigError(f"dashboard_host={host} needs a dashboard password (dashboard_secret=)")
    missing = [r for r in NATS_ROLES if r not in secrets.nats]
    if missing:
        raise ConfigError(f"no NATS credentials for role(s) {', '.join(missing)}")
    nats_unit, ingest_unit, gateway_unit, dash_unit = (
        "algostack-nats.service",
        "algostack-ingest.service",
        "algostack-gateway.service",
        "algostack-dashboard.service",
    )
    gateway_state = layout.state_dir / "gateway"
    nats_url = f"nats://127.0.0.1:{NATS_PORT}"
    dashboard_args: list[str | Path] = [
        algostack,
        "dashboard",
        "--host",
        host,
        "--port",
        str(DASHBOARD_PORT),
        "--bucket",
        f"s3://{cfg.bucket}",
        "--env",
        cfg.environment,
    ]
    if remote:
        dashboard_args.append("--allow-remote")
    units = {
        nats_unit: _service(
            "algostack NATS server (JetStream, one user per role)",
            _cmd(layout.venv_bin / "nats-server", "-c", layout.nats_conf),
            layout,
            cfg,
            env_file=layout.env_file(nats_unit),
        ),
        ingest_unit: _service(
            "algostack Alpaca market data -> NATS",
            _cmd(
                algostack,
                "ingest",
                "--source",
                "alpaca",
                "--symbols",
                ",".join(syms),
                "--nats-url",
                nats_url,
            ),
            layout,
            cfg,
            env_file=layout.env_file(ingest_unit),
            notify=True,
            after=[nats_unit],
            requires=[nats_unit],
            environment=[f"ALGOSTACK_ARCHIVE=s3://{cfg.bucket}"],  # docs/data.md
        ),
        gateway_unit: _service(
            f"algostack execution gateway ({gateway.broker}"
            + (", LIVE" if gateway.alpaca_live else "")
            + ")",
            _cmd(
                algostack,
                "gateway",
                "--broker",
                gateway.broker,
                "--state-dir",
                gateway_state,
                "--nats-url",
                nats_url,
                "--env",
                cfg.environment,
            ),
            layout,
            cfg,
            env_file=layout.env_file(gateway_unit),
            notify=True,
            # After the ingest: it creates the MARKET stream whose bars the gateway follows.
            after=[nats_unit, ingest_unit],
            requires=[nats_unit],
            environment=["ALGOSTACK_ALPACA_LIVE=true"] if gateway.alpaca_live else [],
        ),
        dash_unit: _service(
            "algostack Streamlit dashboard",
            _cmd(*dashboard_args),
            layout,
            cfg,
            env_file=layout.env_file(dash_unit),
            after=[nats_unit],
        ),
    }
    dash_env = {
        "ALGOSTACK_NATS_URL": nats_url,
        "ALGOSTACK_NATS_USER": secrets.nats["dashboard"].user,
        "ALGOSTACK_NATS_PASSWORD": secrets.nats["dashboard"].password,
    }
    if secrets.dashboard_password:
        dash_env["ALGOSTACK_DASHBOARD_PASSWORD"] = secrets.dashboard_password
    gateway_env = {
        "ALGOSTACK_NATS_USER": secrets.nats["gateway"].user,
        "ALGOSTACK_NATS_PASSWORD": secrets.nats["gateway"].password,
    }
    if gateway.broker == "alpaca":
        gateway_env["APCA_API_KEY_ID"] = secrets.alpaca.key_id
        gateway_env["APCA_API_SECRET_KEY"] = secrets.alpaca.secret_key
    files = {
        layout.nats_conf: FileSpec(render_nats_conf(layout, cfg.environment), 0o640, layout.user),
        layout.env_file(nats_unit): _secret_file(nats_env_values(secrets.nats)),
        layout.env_file(ingest_unit): _secret_file(
            {
                "APCA_API_KEY_ID": secrets.alpaca.key_id,
                "APCA_API_SECRET_KEY": secrets.alpaca.secret_key,
                "ALGOSTACK_NATS_USER": secrets.nats["ingest"].user,
                "ALGOSTACK_NATS_PASSWORD": secrets.nats["ingest"].password,
            }
        ),
        layout.env_file(gateway_unit): _secret_file(gateway_env),
        layout.env_file(dash_unit): _secret_file(dash_env),
    }
    dirs = {
        **_base_dirs(layout),
        layout.etc_dir: DirSpec(0o755),
        layout.nats_dir: DirSpec(0o750, layout.user),
        gateway_state: DirSpec(0o750, layout.user),
    }
    wildcard = host in ("0.0.0.0", "::")  # noqa: S104 - probing, not binding
    probe_host = "127.0.0.1" if wildcard or is_loopback(host) else host
    if ":" in probe_host:
        probe_host = f"[{probe_host}]"
    services = tuple(units)
    return NodePlan(
        role="ingest",
        units=units,
        files=files,
        restart=services,
        enable=services,
        dirs=dirs,
        checks={
            nats_unit: f"http://{NATS_MONITOR}/healthz",
            dash_unit: f"http://{probe_host}:{DASHBOARD_PORT}/_stcore/health",
        },
    )


def render_trader(
    cfg: DeploymentConfig, secrets: TraderSecrets, layout: NodeLayout | None = None
) -> NodePlan:
    """Units of a trading host: the trader (its orders go to the ingest host's gateway; no
    broker keys here), a sync timer (``sync_schedule``, every 15 minutes by default), a final
    sync on stop."""
    layout = layout or NodeLayout()
    spec = trader_spec(cfg)
    schedule = cfg.get("sync_schedule") or SYNC_ON_CALENDAR
    if not _CALENDAR_RE.match(schedule):
        raise ConfigError(f"sync_schedule={schedule!r} is not a systemd OnCalendar expression")
    algostack = layout.venv_bin / "algostack"
    bucket_url = f"s3://{cfg.bucket}"
    journals = layout.state_dir / "journals"
    # The trader writes each model's journal into <journal root>/<model key> (trader service).
    model_journal = journals / model_key(spec.model_type, spec.symbol, spec.model_id)
    sync = _cmd(
        algostack,
        "sync",
        "--bucket",
        bucket_url,
        "--model",
        spec.model_prefix,
        "--journal-dir",
        model_journal,
    )
    trader_unit = "algostack-trader.service"
    trader = _service(
        f"algostack trader {spec.model_prefix} (orders through the gateway)",
        _cmd(
            algostack,
            "trade",
            "--model",
            spec.model_prefix,
            "--bucket",
            bucket_url,
            "--journal-dir",
            journals,
            "--env",
            cfg.environment,
            "--nats-url",
            f"nats://{spec.nats_address}:{NATS_PORT}",
            "--broker",
            "gateway",
        ),
        layout,
        cfg,
        env_file=layout.env_file(trader_unit),
        notify=True,
        # models whose features run across sessions warm up from the archived sessions
        environment=[f"ALGOSTACK_ARCHIVE={bucket_url}"],
        # The final sync runs whenever the trader stops, including at instance shutdown.
        extra=[f"ExecStopPost={sync} --final", "TimeoutStopSec=120"],
    )
    sync_service = "\n".join(
        [
            _UNIT_HEADER.rstrip("\n"),
            "[Unit]",
            f"Description=algostack sync of {spec.model_prefix} to s3://{cfg.bucket}",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"User={layout.user}",
            f"WorkingDirectory={layout.state_dir}",
            f"Environment=ALGOSTACK_ENV={cfg.environment}",
            f"Environment=ALGOSTACK_DEPLOYMENT_CONFIG={layout.config_path}",
            f"Environment=ALGOSTACK_HOME={layout.state_dir}",
            f"ExecStart={sync}",
            "",
        ]
    )
    timer = "\n".join(
        [
            _UNIT_HEADER.rstrip("\n"),
            "[Unit]",
            f"Description=algostack journal sync ({schedule})",
            "",
            "[Timer]",
            f"OnCalendar={schedule}",
            "Persistent=true",
            # systemd coalesces timers within a minute by default: sync on the schedule itself.
            "AccuracySec=1s",
            "Unit=algostack-sync.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    units = {
        trader_unit: trader,
        "algostack-sync.service": sync_service,
        "algostack-sync.timer": timer,
    }
    env = {
        "ALGOSTACK_NATS_USER": secrets.nats.user,
        "ALGOSTACK_NATS_PASSWORD": secrets.nats.password,
    }
    return NodePlan(
        role="trader",
        units=units,
        files={layout.env_file(trader_unit): _secret_file(env)},
        restart=(trader_unit, "algostack-sync.timer"),
        enable=(trader_unit, "algostack-sync.timer"),
        dirs={**_base_dirs(layout), journals: DirSpec(0o750, layout.user)},
    )
