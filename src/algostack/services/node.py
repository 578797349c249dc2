"""Node bootstrap: render the systemd units of an ingest or trading host.

``run.sh`` (infra/modules/*/run.sh) installs algostack and calls ``algostack node ingest|trader``,
which parses ``deployment_config.txt`` (DESIGN.md 3.2), renders the units here (pure functions,
tested without systemd) and installs them through :func:`install_plan`, whose ``systemctl``
is a seam. Running it twice converges to the same files.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from algostack.core.naming import ENVIRONMENTS, model_key
from algostack.errors import ConfigError

REQUIRED_KEYS = ("environment", "bucket", "git_branch")
TRADER_KEYS = ("model_prefix", "model_type", "symbol", "model_id", "model_number")
NATS_PORT = 4222
DASHBOARD_PORT = 8501
SYNC_ON_CALENDAR = "*:0/15"
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9.\-/]+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:]+$")
_UNIT_HEADER = "# Written by `algostack node`; edits are overwritten on the next bootstrap.\n"

Runner = Callable[[Sequence[str]], None]


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
    def env_file(self) -> Path:
        """Root-only EnvironmentFile with Alpaca keys and NATS credentials (run.sh writes it)."""
        return self.app_dir / "secrets.env"

    @property
    def nats_dir(self) -> Path:
        """NATS configuration and JetStream storage."""
        return self.app_dir / "nats"

    @property
    def nats_conf(self) -> Path:
        """The nats-server configuration file."""
        return self.nats_dir / "nats-server.conf"


@dataclass(frozen=True)
class NodePlan:
    """What a host runs: unit files (by name), other files (by path), units to (re)start."""

    role: str
    units: dict[str, str]
    files: dict[Path, str]
    restart: tuple[str, ...]
    enable: tuple[str, ...]


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
        raise ConfigError("no symbols for the ingest host: pass --symbols or set symbols=")
    bad = [s for s in symbols if not _SYMBOL_RE.match(s)]
    if bad:
        raise ConfigError(f"invalid symbol(s) {', '.join(map(repr, bad))}")
    return symbols


def trader_spec(cfg: DeploymentConfig) -> TraderSpec:
    """Read the trader's model and NATS address; raise ConfigError when inconsistent."""
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
    return TraderSpec(prefix, model_type, symbol, model_id, model_number, address)


def _cmd(*parts: str | Path) -> str:
    return " ".join(shlex.quote(str(p)) for p in parts)


def _service(
    description: str,
    exec_start: str,
    layout: NodeLayout,
    cfg: DeploymentConfig,
    *,
    after: Sequence[str] = (),
    requires: Sequence[str] = (),
    extra: Sequence[str] = (),
    user: str | None = None,
) -> str:
    deps = " ".join(["network-online.target", *after])
    lines = [
        _UNIT_HEADER.rstrip("\n"),
        "[Unit]",
        f"Description={description}",
        "Wants=network-online.target",
        f"After={deps}",
        *([f"Requires={' '.join(requires)}"] if requires else []),
        "",
        "[Service]",
        "Type=simple",
        f"User={user or layout.user}",
        f"WorkingDirectory={layout.app_dir}",
        f"EnvironmentFile={layout.env_file}",
        f"Environment=ALGOSTACK_ENV={cfg.environment}",
        f"Environment=ALGOSTACK_DEPLOYMENT_CONFIG={layout.config_path}",
        f"Environment=ALGOSTACK_HOME={layout.app_dir}/state",
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


def render_nats_conf(layout: NodeLayout) -> str:
    """nats-server config: JetStream on disk, user/password from the unit's environment."""
    # nats-server resolves $NAME from the process environment when the file does not define
    # it, so the password stays in the root-only EnvironmentFile, never in this file.
    return (
        "# Written by `algostack node ingest`; edits are overwritten on the next bootstrap.\n"
        f"listen: 0.0.0.0:{NATS_PORT}\n"
        "http: 127.0.0.1:8222\n"
        "max_payload: 1MB\n"
        "jetstream {\n"
        f'  store_dir: "{layout.nats_dir}/jetstream"\n'
        "  max_file_store: 8GB\n"
        "}\n"
        "authorization {\n"
        "  user: $ALGOSTACK_NATS_USER\n"
        "  password: $ALGOSTACK_NATS_PASSWORD\n"
        "}\n"
    )


def render_ingest(
    cfg: DeploymentConfig, symbols: Sequence[str], layout: NodeLayout | None = None
) -> NodePlan:
    """Units of the ingest host: nats-server, Alpaca ingest, Streamlit dashboard."""
    layout = layout or NodeLayout()
    syms = parse_symbols(",".join(symbols))
    algostack = layout.venv_bin / "algostack"
    dashboard_host = cfg.get("dashboard_host") or "127.0.0.1"
    if not _HOST_RE.match(dashboard_host):
        raise ConfigError(f"dashboard_host={dashboard_host!r} is not a host address")
    units = {
        "algostack-nats.service": _service(
            "algostack NATS server (JetStream, auth)",
            _cmd(layout.venv_bin / "nats-server", "-c", layout.nats_conf),
            layout,
            cfg,
        ),
        "algostack-ingest.service": _service(
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
            after=["algostack-nats.service"],
            requires=["algostack-nats.service"],
        ),
        "algostack-dashboard.service": _service(
            "algostack Streamlit dashboard",
            _cmd(
                algostack,
                "dashboard",
                "--host",
                dashboard_host,
                "--port",
                str(DASHBOARD_PORT),
                "--bucket",
                f"s3://{cfg.bucket}",
                "--env",
                cfg.environment,
            ),
            layout,
            cfg,
            after=["algostack-nats.service"],
        ),
    }
    services = tuple(units)
    return NodePlan(
        role="ingest",
        units=units,
        files={layout.nats_conf: render_nats_conf(layout)},
        restart=services,
        enable=services,
    )


def render_trader(cfg: DeploymentConfig, layout: NodeLayout | None = None) -> NodePlan:
    """Units of a trading host: the trader, a 15-minute sync timer, a final sync on stop."""
    layout = layout or NodeLayout()
    spec = trader_spec(cfg)
    algostack = layout.venv_bin / "algostack"
    bucket_url = f"s3://{cfg.bucket}"
    journals = layout.app_dir / "state" / "journals"
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
    trader = _service(
        f"algostack trader {spec.model_prefix}",
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
        ),
        layout,
        cfg,
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
            f"WorkingDirectory={layout.app_dir}",
            f"EnvironmentFile={layout.env_file}",
            f"Environment=ALGOSTACK_ENV={cfg.environment}",
            f"Environment=ALGOSTACK_DEPLOYMENT_CONFIG={layout.config_path}",
            f"Environment=ALGOSTACK_HOME={layout.app_dir}/state",
            f"ExecStart={sync}",
            "",
        ]
    )
    timer = "\n".join(
        [
            _UNIT_HEADER.rstrip("\n"),
            "[Unit]",
            "Description=algostack sync every 15 minutes",
            "",
            "[Timer]",
            f"OnCalendar={SYNC_ON_CALENDAR}",
            "Persistent=true",
            "Unit=algostack-sync.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )
    units = {
        "algostack-trader.service": trader,
        "algostack-sync.service": sync_service,
        "algostack-sync.timer": timer,
    }
    return NodePlan(
        role="trader",
        units=units,
        files={},
        restart=("algostack-trader.service", "algostack-sync.timer"),
        enable=("algostack-trader.service", "algostack-sync.timer"),
    )


@dataclass(frozen=True)
class InstallResult:
    """What :func:`install_plan` changed and ran."""

    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    commands: tuple[tuple[str, ...], ...]


def _write_if_changed(path: Path, content: str, mode: int) -> bool:
    if path.exists() and path.read_text() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content)
    tmp.chmod(mode)
    tmp.replace(path)
    return True


def install_plan(
    plan: NodePlan,
    units_dir: Path,
    runner: Runner,
    *,
    root: Path | None = None,
) -> InstallResult:
    """Write the plan's files (only those that differ), then daemon-reload, enable, restart.

    ``runner`` runs one ``systemctl`` argv (the seam tests replace). ``root`` re-roots the
    absolute non-unit paths (tests render into a temporary directory).
    """
    written: list[Path] = []
    unchanged: list[Path] = []
    targets: list[tuple[Path, str, int]] = [
        (units_dir / name, content, 0o644) for name, content in plan.units.items()
    ]
    for path, content in plan.files.items():
        real = root / path.relative_to(path.anchor) if root is not None else path
        targets.append((real, content, 0o640))
    for path, content, mode in targets:
        (written if _write_if_changed(path, content, mode) else unchanged).append(path)
    commands: list[tuple[str, ...]] = [
        ("systemctl", "daemon-reload"),
        ("systemctl", "enable", *plan.enable),
        ("systemctl", "restart", *plan.restart),
    ]
    for argv in commands:
        runner(argv)
    return InstallResult(tuple(written), tuple(unchanged), tuple(commands))
