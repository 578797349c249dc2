"""Node bootstrap: render what an ingest or trading host runs, and judge whether it came up.

``run.sh`` (infra/modules/*/run.sh) installs algostack and execs ``algostack node
ingest|trader`` (``commands/node.py``, the I/O: secrets from Secrets Manager, files, ``systemctl``).
This module is the pure part, tested without systemd or AWS:

- parse ``deployment_config.txt`` (DESIGN.md 3.2) and the secrets' JSON;
- render the units, the nats-server config (one NATS user per role), one root-only
  ``EnvironmentFile`` per unit holding only what that unit needs, and the directories with
  their modes and owners (:class:`NodePlan`);
- write it (:func:`install_plan`, only files that differ; ``chown`` and ``systemctl`` are seams);
- judge readiness (:func:`wait_ready`): each unit restarted, active, not restarting, and its
  health check passing (systemd's own readiness: the Python services are ``Type=notify`` and
  send ``READY=1`` through :func:`notify_ready`; nats-server answers ``/healthz``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from algostack.core.naming import ENVIRONMENTS, kill_subject, model_key
from algostack.errors import ConfigError
from algostack.services.dashboard.launch import is_loopback

REQUIRED_KEYS = ("environment", "bucket", "git_branch")
TRADER_KEYS = ("model_prefix", "model_type", "symbol", "model_id", "model_number")
NATS_PORT = 4222
NATS_MONITOR = "127.0.0.1:8222"
DASHBOARD_PORT = 8501
SYNC_ON_CALENDAR = "*:0/15"
_CALENDAR_RE = re.compile(r"^[-0-9A-Za-z*/:,. ]+$")
START_TIMEOUT_S = 300
"""systemd's own bound on a Type=notify start (loading models, warm-up); run.sh waits less."""
NATS_ROLES = ("ingest", "trader", "dashboard")
BROKERS = ("alpaca", "sim")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9.\-/]+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:]+$")
_UNIT_HEADER = "# Written by `algostack node`; edits are overwritten on the next bootstrap.\n"

Runner = Callable[[Sequence[str]], str]
"""Runs one argv (``systemctl ...``, ``journalctl ...``), returns its stdout, raises on failure."""


# -- deployment_config.txt ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentConfig:
    """The parsed ``deployment_config.txt`` of one host."""

    environment: str
    bucket: str
    git_branch: str
    values: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str | None = None) -> str | None:
        """Return the value of ``key`` (the last line wins), or ``default``."""
        return self.values.get(key, default)

    def require(self, key: str) -> str:
        """Return the value of ``key``; raise ConfigError naming the key when absent or empty."""
        value = self.values.get(key, "")
        if not value:
            raise ConfigError(f"deployment_config.txt has no {key}= line (DESIGN.md 3.2)")
        return value


@dataclass(frozen=True)
class TraderSpec:
    """The model a trading host runs, as written by Terraform's user data."""

    model_prefix: str
    model_type: str
    symbol: str
    model_id: str
    model_number: int
    nats_address: str
    broker: str = "alpaca"
    alpaca_live: bool = False


def parse_deployment_config(
    text: str, *, source: str = "deployment_config.txt"
) -> DeploymentConfig:
    """Parse ``key=value`` lines (blank lines and ``#`` comments allowed; the last line wins)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY_RE.match(key):
            raise ConfigError(f"{source}:{number}: expected key=value, got {raw!r}")
        values[key] = value.strip()
    missing = [k for k in REQUIRED_KEYS if not values.get(k)]
    if missing:
        raise ConfigError(f"{source}: missing {', '.join(missing)} (DESIGN.md 3.2)")
    if values["environment"] not in ENVIRONMENTS:
        raise ConfigError(
            f"{source}: environment={values['environment']!r} is not one of "
            f"{', '.join(ENVIRONMENTS)}"
        )
    return DeploymentConfig(values["environment"], values["bucket"], values["git_branch"], values)


def parse_symbols(raw: str) -> tuple[str, ...]:
    """Split ``SPY,QQQ`` (commas or spaces) into symbols; raise on an empty or odd list."""
    symbols = tuple(dict.fromkeys(s for s in re.split(r"[,\s]+", raw.strip()) if s))
    if not symbols:
        raise ConfigError(
            "no symbols for the ingest host: pass --symbols, set symbols= or symbols_parameter="
        )
    bad = [s for s in symbols if not _SYMBOL_RE.match(s)]
    if bad:
        raise ConfigError(f"invalid symbol(s) {', '.join(map(repr, bad))}")
    return symbols


def _flag(cfg: DeploymentConfig, key: str) -> bool:
    raw = (cfg.get(key) or "false").lower()
    if raw not in ("true", "false"):
        raise ConfigError(f"{key}={cfg.get(key)!r} must be true or false")
    return raw == "true"


def trader_spec(cfg: DeploymentConfig) -> TraderSpec:
    """Read the trader's model, NATS address and broker; raise ConfigError when inconsistent."""
    prefix, model_type, symbol, model_id, number = (cfg.require(k) for k in TRADER_KEYS)
    expected = f"models/{model_type}/{symbol}/{model_id}"
    if prefix != expected:
        raise ConfigError(
            f"model_prefix={prefix!r} disagrees with model_type/symbol/model_id ({expected!r})"
        )
    try:
        model_number = int(number)
    except ValueError:
        raise ConfigError(f"model_number={number!r} is not an integer") from None
    address = cfg.require("nats_public_ip")
    if not _HOST_RE.match(address):
        raise ConfigError(f"nats_public_ip={address!r} is not a host address")
    broker = (cfg.get("broker") or "alpaca").lower()
    if broker not in BROKERS:
        raise ConfigError(f"broker={cfg.get('broker')!r} must be alpaca (paper by default) or sim")
    live = _flag(cfg, "alpaca_live")
    if live and broker != "alpaca":
        raise ConfigError("alpaca_live=true needs broker=alpaca (DESIGN.md 3.5)")
    return TraderSpec(
        prefix, model_type, symbol, model_id, model_number, address, broker, alpaca_live=live
    )


def dashboard_host(cfg: DeploymentConfig) -> str:
    """The dashboard's bind address (``127.0.0.1`` unless ``dashboard_host=`` says otherwise)."""
    host = cfg.get("dashboard_host") or "127.0.0.1"
    if not _HOST_RE.match(host):
        raise ConfigError(f"dashboard_host={host!r} is not a host address")
    if not is_loopback(host) and not cfg.get("dashboard_secret"):
        raise ConfigError(
            f"dashboard_host={host} serves the dashboard beyond this host: set dashboard_secret= "
            'to a Secrets Manager secret holding {"password": ...}'
        )
    return host


# -- secrets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NatsCredential:
    """One NATS user (DESIGN.md 3.3: one user per role)."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class AlpacaKeys:
    """An Alpaca key pair (DESIGN.md 3.5)."""

    key_id: str = field(repr=False)
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class IngestSecrets:
    """What the ingest host's units need from Secrets Manager."""

    alpaca: AlpacaKeys
    nats: Mapping[str, NatsCredential]
    """By role: ingest, trader, dashboard."""
    dashboard_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TraderSecrets:
    """What a trading host's units need: its NATS user, and Alpaca keys for broker=alpaca."""

    nats: NatsCredential
    alpaca: AlpacaKeys | None = None


def secret_names(cfg: DeploymentConfig, role: str) -> dict[str, str]:
    """The Secrets Manager names this host reads, by ``deployment_config.txt`` key.

    Ingest: ``alpaca_secret``, ``nats_secret_<role>`` for each role, ``dashboard_secret``
    when set. Trader: ``nats_secret``, and ``alpaca_secret`` unless ``broker=sim``.
    """
    if role == "ingest":
        keys = ["alpaca_secret", *(f"nats_secret_{r}" for r in NATS_ROLES)]
        names = {k: cfg.require(k) for k in keys}
        if cfg.get("dashboard_secret"):
            names["dashboard_secret"] = cfg.require("dashboard_secret")
        return names
    names = {"nats_secret": cfg.require("nats_secret")}
    if trader_spec(cfg).broker == "alpaca":
        names["alpaca_secret"] = cfg.require("alpaca_secret")
    return names


def _json_fields(text: str, name: str, fields: Sequence[str]) -> dict[str, str]:
    """Read string ``fields`` from a secret's JSON; errors name the secret, never a value."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(
            f"secret {name!r} is not JSON (expected keys {', '.join(fields)})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"secret {name!r} is not a JSON object with {', '.join(fields)}")
    missing = [f for f in fields if not isinstance(data.get(f), str) or not data.get(f)]
    if missing:
        raise ConfigError(f"secret {name!r} has no {', '.join(missing)} (a non-empty string)")
    out = {f: str(data[f]) for f in fields}
    for f, value in out.items():
        if any(ord(c) < 32 or c == "\x7f" for c in value):
            raise ConfigError(f"secret {name!r}: {f} holds a control character")
    return out


def parse_alpaca_secret(text: str, name: str) -> AlpacaKeys:
    """``{"APCA_API_KEY_ID": ..., "APCA_API_SECRET_KEY": ...}``."""
    f = _json_fields(text, name, ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"))
    return AlpacaKeys(f["APCA_API_KEY_ID"], f["APCA_API_SECRET_KEY"])


def parse_nats_secret(text: str, name: str) -> NatsCredential:
    """``{"user": ..., "password": ...}``."""
    f = _json_fields(text, name, ("user", "password"))
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", f["user"]):
        raise ConfigError(f"secret {name!r}: user must be letters, digits, '_', '.' or '-'")
    return NatsCredential(f["user"], f["password"])


def parse_dashboard_secret(text: str, name: str) -> str:
    """``{"password": ...}``."""
    return _json_fields(text, name, ("password",))["password"]


def env_file_text(values: Mapping[str, str]) -> str:
    """An ``EnvironmentFile``: ``KEY="value"`` lines, quoted the way systemd reads them."""
    lines = ["# Written by `algostack node`; root-only, read by systemd before User= applies."]
    for key, value in values.items():
        if not _KEY_RE.match(key):
            raise ValueError(f"bad environment variable name {key!r}")
        escaped = re.sub(r'(["\\$`])', r"\\\1", value)
        lines.append(f'{key}="{escaped}"')
    return "\n".join(lines) + "\n"


# -- layout and plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeLayout:
    """Where things live on a host (the defaults match run.sh)."""

    app_dir: Path = Path("/opt/algostack")
    user: str = "ec2-user"

    @property
    def venv_bin(self) -> Path:
        """Directory of the installed console scripts (algostack, nats-server)."""
        return self.app_dir / "venv" / "bin"

    @property
    def config_path(self) -> Path:
        """deployment_config.txt."""
        return self.app_dir / "deployment_config.txt"

    @property
    def secrets_dir(self) -> Path:
        """Root-only directory of the units' EnvironmentFiles."""
        return self.app_dir / "secrets"

    def env_file(self, unit: str) -> Path:
        """The EnvironmentFile of ``unit`` (``algostack-trader.service`` -> ``.../trader.env``)."""
        stem = unit.split(".", 1)[0].removeprefix("algostack-")
        return self.secrets_dir / f"{stem}.env"

    @property
    def state_dir(self) -> Path:
        """``ALGOSTACK_HOME`` of the services: journals, resume state (the service user's)."""
        return self.app_dir / "state"

    @property
    def etc_dir(self) -> Path:
        """Root-owned configuration the services read."""
        return self.app_dir / "etc"

    @property
    def nats_dir(self) -> Path:
        """nats-server's data (the JetStream store), owned by the service user."""
        return self.app_dir / "nats"

    @property
    def nats_conf(self) -> Path:
        """The nats-server configuration file (root:<service group> 0640)."""
        return self.etc_dir / "nats-server.conf"


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
        ["Type=notify", "NotifyAccess=main", f"TimeoutStartSec={START_TIMEOUT_S}"]
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
        *(f"Environment={e}" for e in environment),
        f"ExecStart={exec_start}",
        *extra,
        "Restart=on-failure",
        "RestartSec=5",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def nats_permissions(role: str, environment: str) -> dict[str, dict[str, list[str]]]:
    """The publish/subscribe allow lists of one NATS role (DESIGN.md 3.3).

    ingest: publish market data and manage the MARKET stream. trader: read market data
    (core and its durable consumer on MARKET), publish its own events, hold its consumer's
    owner subject; never publish market data. dashboard: read, and publish the kill switch.
    """
    stream = "MARKET"
    js_read = [
        "$JS.API.INFO",
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.*.{stream}",
        f"$JS.API.CONSUMER.*.{stream}.>",
        f"$JS.API.CONSUMER.*.*.{stream}.>",  # DURABLE.CREATE, MSG.NEXT
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]
    if role == "ingest":
        return {
            "publish": {
                "allow": [
                    "market.>",
                    "$JS.API.INFO",
                    f"$JS.API.STREAM.CREATE.{stream}",
                    f"$JS.API.STREAM.UPDATE.{stream}",
                    f"$JS.API.STREAM.INFO.{stream}",
                ]
            },
            "subscribe": {"allow": ["_INBOX.>"]},
        }
    if role == "trader":
        return {
            "publish": {
                "allow": [
                    f"algostack.{environment}.trader.>",
                    "algostack.consumer.*.owner",
                    *js_read,
                ]
            },
            "subscribe": {
                "allow": [
                    "market.>",
                    "_INBOX.>",
                    kill_subject(environment),
                    "algostack.consumer.*.owner",
                ]
            },
        }
    if role == "dashboard":
        return {
            "publish": {"allow": [kill_subject(environment), *js_read]},
            "subscribe": {"allow": ["market.>", f"algostack.{environment}.trader.>", "_INBOX.>"]},
        }
    raise ValueError(f"unknown NATS role {role!r}")


def nats_env_names(role: str) -> tuple[str, str]:
    """The nats unit's environment variables holding a role's (JSON-quoted) user and password."""
    return f"NATS_{role.upper()}_USER", f"NATS_{role.upper()}_PASSWORD"


def nats_env_values(creds: Mapping[str, NatsCredential]) -> dict[str, str]:
    """The nats unit's EnvironmentFile values: each user and password as a JSON string.

    nats-server parses a ``$VAR`` taken from the environment as a config value, so a bare
    password with ``#``, spaces or quotes would be misread; a JSON string is read verbatim.
    """
    out: dict[str, str] = {}
    for role in NATS_ROLES:
        user_var, password_var = nats_env_names(role)
        out[user_var] = json.dumps(creds[role].user, ensure_ascii=False)
        out[password_var] = json.dumps(creds[role].password, ensure_ascii=False)
    return out


def render_nats_conf(layout: NodeLayout, environment: str = "dev") -> str:
    """nats-server config: JetStream on disk, one user per role with least permissions.

    Users and passwords are ``$NATS_<ROLE>_USER`` / ``$NATS_<ROLE>_PASSWORD``, resolved by
    nats-server from its unit's root-only EnvironmentFile: no secret is in this file.
    """
    users = []
    for role in NATS_ROLES:
        user_var, password_var = nats_env_names(role)
        perms = json.dumps(nats_permissions(role, environment))
        users.append(f"    {{user: ${user_var}, password: ${password_var}, permissions: {perms}}}")
    return (
        "# Written by `algostack node ingest`; edits are overwritten on the next bootstrap.\n"
        f"listen: 0.0.0.0:{NATS_PORT}\n"
        f"http: {NATS_MONITOR}\n"
        "max_payload: 1MB\n"
        "jetstream {\n"
        f'  store_dir: "{layout.nats_dir}/jetstream"\n'
        "  max_file_store: 8GB\n"
        "}\n"
        "authorization {\n"
        "  users: [\n" + ",\n".join(users) + "\n  ]\n"
        "}\n"
    )


def _secret_file(values: Mapping[str, str]) -> FileSpec:
    return FileSpec(env_file_text(values), 0o600)


def render_ingest(
    cfg: DeploymentConfig,
    symbols: Sequence[str],
    secrets: IngestSecrets,
    layout: NodeLayout | None = None,
) -> NodePlan:
    """Units of the ingest host: nats-server, Alpaca ingest, Streamlit dashboard."""
    layout = layout or NodeLayout()
    syms = parse_symbols(",".join(symbols))
    algostack = layout.venv_bin / "algostack"
    host = dashboard_host(cfg)
    remote = not is_loopback(host)
    if remote and not secrets.dashboard_password:
        raise ConfigError(f"dashboard_host={host} needs a dashboard password (dashboard_secret=)")
    missing = [r for r in NATS_ROLES if r not in secrets.nats]
    if missing:
        raise ConfigError(f"no NATS credentials for role(s) {', '.join(missing)}")
    nats_unit, ingest_unit, dash_unit = (
        "algostack-nats.service",
        "algostack-ingest.service",
        "algostack-dashboard.service",
    )
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
                f"nats://127.0.0.1:{NATS_PORT}",
            ),
            layout,
            cfg,
            env_file=layout.env_file(ingest_unit),
            notify=True,
            after=[nats_unit],
            requires=[nats_unit],
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
        "ALGOSTACK_NATS_URL": f"nats://127.0.0.1:{NATS_PORT}",
        "ALGOSTACK_NATS_USER": secrets.nats["dashboard"].user,
        "ALGOSTACK_NATS_PASSWORD": secrets.nats["dashboard"].password,
    }
    if secrets.dashboard_password:
        dash_env["ALGOSTACK_DASHBOARD_PASSWORD"] = secrets.dashboard_password
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
        layout.env_file(dash_unit): _secret_file(dash_env),
    }
    dirs = {
        **_base_dirs(layout),
        layout.etc_dir: DirSpec(0o755),
        layout.nats_dir: DirSpec(0o750, layout.user),
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
    """Units of a trading host: the trader, a sync timer (``sync_schedule``, every 15 minutes
    by default), a final sync on stop."""
    layout = layout or NodeLayout()
    spec = trader_spec(cfg)
    schedule = cfg.get("sync_schedule") or SYNC_ON_CALENDAR
    if not _CALENDAR_RE.match(schedule):
        raise ConfigError(f"sync_schedule={schedule!r} is not a systemd OnCalendar expression")
    if spec.broker == "alpaca" and secrets.alpaca is None:
        raise ConfigError("broker=alpaca needs the Alpaca keys (alpaca_secret=)")
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
        f"algostack trader {spec.model_prefix} ({spec.broker}"
        + (", LIVE" if spec.alpaca_live else "")
        + ")",
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
            spec.broker,
        ),
        layout,
        cfg,
        env_file=layout.env_file(trader_unit),
        notify=True,
        environment=["ALGOSTACK_ALPACA_LIVE=true"] if spec.alpaca_live else [],
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
    if spec.broker == "alpaca" and secrets.alpaca is not None:
        env["APCA_API_KEY_ID"] = secrets.alpaca.key_id
        env["APCA_API_SECRET_KEY"] = secrets.alpaca.secret_key
    return NodePlan(
        role="trader",
        units=units,
        files={layout.env_file(trader_unit): _secret_file(env)},
        restart=(trader_unit, "algostack-sync.timer"),
        enable=(trader_unit, "algostack-sync.timer"),
        dirs={**_base_dirs(layout), journals: DirSpec(0o750, layout.user)},
    )


# -- install -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallResult:
    """What :func:`install_plan` changed and ran."""

    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    commands: tuple[tuple[str, ...], ...]


Chown = Callable[[Path, str | None, str | None], None]
"""``chown(path, user, group)``; ``None`` means root."""


def _write_if_changed(path: Path, content: str, mode: int) -> bool:
    """Write atomically through a file created with ``mode`` (never briefly world-readable)."""
    if path.exists() and path.read_text() == content:
        path.chmod(mode)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    tmp.chmod(mode)  # os.open's mode is filtered by the umask
    tmp.replace(path)
    return True


def install_plan(
    plan: NodePlan,
    units_dir: Path,
    runner: Runner,
    *,
    root: Path | None = None,
    chown: Chown | None = None,
) -> InstallResult:
    """Make directories, write the plan's files (only those that differ), daemon-reload, enable.

    Modes and owners are (re)applied every time, so a host bootstrapped by an older run.sh
    converges. ``runner`` runs ``systemctl`` (the seam tests replace); ``chown`` too (root
    only). ``root`` re-roots the absolute non-unit paths (tests render into a temporary
    directory). Restarting and waiting are :func:`restart_and_wait`'s.
    """

    def real(path: Path) -> Path:
        return root / path.relative_to(path.anchor) if root is not None else path

    for path, d in sorted(plan.dirs.items()):
        target = real(path)
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(d.mode)
        if chown is not None:
            chown(target, d.owner, d.owner)
    written: list[Path] = []
    unchanged: list[Path] = []
    targets: list[tuple[Path, str, int, str | None]] = [
        (units_dir / name, content, 0o644, None) for name, content in plan.units.items()
    ]
    for path, spec in plan.files.items():
        targets.append((real(path), spec.content, spec.mode, spec.group))
    for path, content, mode, group in targets:
        (written if _write_if_changed(path, content, mode) else unchanged).append(path)
        if chown is not None:
            chown(path, None, group)
    commands: list[tuple[str, ...]] = [
        ("systemctl", "daemon-reload"),
        ("systemctl", "enable", *plan.enable),
    ]
    for argv in commands:
        runner(argv)
    return InstallResult(tuple(written), tuple(unchanged), tuple(commands))


# -- readiness ---------------------------------------------------------------------------------

SHOW_PROPERTIES = ("ActiveState", "SubState", "Result", "NRestarts", "Job")


@dataclass(frozen=True)
class UnitState:
    """A unit as ``systemctl show`` reports it."""

    active: str
    sub: str
    result: str = ""
    restarts: int = 0
    job: bool = False
    """A start/restart job is still queued or running."""

    @classmethod
    def parse(cls, text: str) -> UnitState:
        """Parse ``Key=value`` lines of ``systemctl show -p ...``."""
        props = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
        try:
            restarts = int(props.get("NRestarts") or 0)
        except ValueError:
            restarts = 0
        job = props.get("Job", "").strip()
        return cls(
            active=props.get("ActiveState", "unknown"),
            sub=props.get("SubState", "unknown"),
            result=props.get("Result", ""),
            restarts=restarts,
            job=bool(job) and job != "0",
        )

    def __str__(self) -> str:
        text = f"{self.active} ({self.sub})"
        if self.result and self.result != "success":
            text += f", result {self.result}"
        if self.restarts:
            text += f", restarted {self.restarts} time(s)"
        return text


@dataclass(frozen=True)
class UnitFailure:
    """A unit that did not come up: its name and what was seen."""

    unit: str
    state: str


def judge(state: UnitState, restarts_before: int = 0) -> str | None:
    """``"ready"``, ``None`` (keep waiting) or the failure to report, from one observation.

    A unit that failed, is waiting to be restarted after a crash (``auto-restart``), was
    restarted by systemd since run.sh restarted it (``NRestarts`` above ``restarts_before``,
    read before the restart: systemd does not always reset it), or stopped, is a failure:
    systemd would go on restarting it, but run.sh must not report success.
    """
    if state.job:
        return None  # the (re)start has not run yet: earlier states mean nothing
    if state.active == "failed":
        return f"failed: {state}"
    if state.sub == "auto-restart" or state.restarts > restarts_before:
        return f"crashed and is restarting: {state}"
    if state.active in ("activating", "deactivating", "reloading"):
        return None
    if state.active == "active":
        return "ready"
    return f"not running: {state}"


def wait_ready(
    units: Sequence[str],
    show: Callable[[str], UnitState],
    checks: Mapping[str, str],
    probe: Callable[[str], bool],
    *,
    wait_s: float,
    restarts_before: Mapping[str, int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = 1.0,
) -> list[UnitFailure]:
    """Poll every unit until each is ready (active and its check answering) or one fails.

    Returns ``[]`` when all are ready; else the failures (a failure is final at once; the
    units still pending at ``wait_s`` are reported with their last state). ``show`` reads a
    unit's state (``systemctl show``), ``probe`` a check URL; ``restarts_before`` is each
    unit's ``NRestarts`` read before the restart.
    """
    deadline = clock() + wait_s
    pending = list(units)
    last: dict[str, str] = {}
    while True:
        failures: list[UnitFailure] = []
        for unit in list(pending):
            state = show(unit)
            verdict = judge(state, (restarts_before or {}).get(unit, 0))
            last[unit] = str(state)
            if verdict == "ready":
                url = checks.get(unit)
                if url is None or probe(url):
                    pending.remove(unit)
                else:
                    last[unit] = f"{state}, but {url} does not answer"
            elif verdict is not None:
                failures.append(UnitFailure(unit, verdict))
        if failures:
            return failures
        if not pending:
            return []
        if clock() >= deadline:
            return [
                UnitFailure(u, f"not ready after {wait_s:g} s: {last.get(u, 'unknown')}")
                for u in pending
            ]
        sleep(poll_s)


# -- the services' side of readiness -----------------------------------------------------------


def notify_ready(status: str = "", *, environ: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service is ready (``READY=1`` on ``$NOTIFY_SOCKET``); stdlib only.

    Returns False (and does nothing) outside a ``Type=notify`` unit or when the socket is
    gone: readiness is a signal to the bootstrap, never a reason for a service to fail.
    """
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address or not (address.startswith("/") or address.startswith("@")):
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    message = "READY=1" + (f"\nSTATUS={status}" if status else "")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True
