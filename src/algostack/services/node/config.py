"""``deployment_config.txt`` (DESIGN.md 3.2) parsed and checked: the host's settings, the
model a trading host runs, the broker behind the ingest host's execution gateway, the
dashboard's bind address; and where things live on a host."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from algostack.core.naming import ENVIRONMENTS
from algostack.errors import ConfigError
from algostack.services.dashboard.launch import is_loopback

REQUIRED_KEYS = ("environment", "bucket", "git_branch")
TRADER_KEYS = ("model_prefix", "model_type", "symbol", "model_id", "model_number")
NATS_ROLES = ("ingest", "trader", "dashboard", "gateway")
BROKERS = ("alpaca", "sim")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9.\-/]+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-:]+$")


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


@dataclass(frozen=True)
class GatewaySpec:
    """The account behind the ingest host's execution gateway (``broker=``, ``alpaca_live=``).

    The gateway is the only process that holds broker keys; traders send it their intents.
    """

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
    """Read the trader's model and NATS address; raise ConfigError when inconsistent.

    A trader has no broker of its own: its orders go to the gateway (``broker=`` lines of an
    older user data are ignored here).
    """
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


def gateway_spec(cfg: DeploymentConfig) -> GatewaySpec:
    """Read the gateway's broker (alpaca, paper unless ``alpaca_live=true``, or sim)."""
    broker = (cfg.get("broker") or "alpaca").lower()
    if broker not in BROKERS:
        raise ConfigError(f"broker={cfg.get('broker')!r} must be alpaca (paper by default) or sim")
    live = _flag(cfg, "alpaca_live")
    if live and broker != "alpaca":
        raise ConfigError("alpaca_live=true needs broker=alpaca (DESIGN.md 3.5)")
    return GatewaySpec(broker, alpaca_live=live)


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


# -- layout ----------------------------------------------------------------------------------


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
