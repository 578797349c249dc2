"""The secrets a host reads from Secrets Manager: their names in ``deployment_config.txt``,
their JSON, and the root-only ``EnvironmentFile`` text that hands them to a unit."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from algostack.errors import ConfigError
from algostack.services.node.config import _KEY_RE, NATS_ROLES, DeploymentConfig


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
    """What the ingest host's units need from Secrets Manager: the Alpaca keys (market data and
    the execution gateway, the only holders), every role's NATS user, the dashboard password."""

    alpaca: AlpacaKeys
    nats: Mapping[str, NatsCredential]
    """By role: ingest, trader, dashboard, gateway."""
    dashboard_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TraderSecrets:
    """What a trading host's units need: its NATS user only (orders go to the gateway; a
    trading host never holds broker keys)."""

    nats: NatsCredential


def secret_names(cfg: DeploymentConfig, role: str) -> dict[str, str]:
    """The Secrets Manager names this host reads, by ``deployment_config.txt`` key.

    Ingest: ``alpaca_secret``, ``nats_secret_<role>`` for each role, ``dashboard_secret``
    when set. Trader: ``nats_secret`` only.
    """
    if role == "ingest":
        keys = ["alpaca_secret", *(f"nats_secret_{r}" for r in NATS_ROLES)]
        names = {k: cfg.require(k) for k in keys}
        if cfg.get("dashboard_secret"):
            names["dashboard_secret"] = cfg.require("dashboard_secret")
        return names
    return {"nats_secret": cfg.require("nats_secret")}


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
