"""Model keys and resource names: the contracts of the spec and DESIGN.md 3.1. Stdlib only.

The key grammar exists once here and once in Terraform (``infra/modules/trading_server``);
a test holds the two equal on the same key list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from algostack.errors import DataError

if TYPE_CHECKING:  # stdlib only at run time (the Lambda zip imports this module)
    from algostack.core.trading_config import TradingConfig

# models/<model_type>/<symbol>/<model_id>-outer_<X>_inner_<Y><rest>; no '/' inside a part.
# The same pattern (RE2-compatible) is used by Terraform's regex().
MODEL_KEY_PATTERN = r"^models/([^/]+)/([^/]+)/([^/]+?)-outer_([0-9]+)_inner_([0-9]+)([^/]*)$"
_MODEL_KEY_RE = re.compile(MODEL_KEY_PATTERN)
_TRAILING_INT_RE = re.compile(r"([0-9]+)$")
# <model prefix>/trading.json: a model's trading config (core.trading_config), in a folder
# under the prefix like the live outputs, so neither grammar nor Terraform ever sees it.
_TRADING_KEY_RE = re.compile(r"^(models/[^/]+/[^/]+/[^/]+)/trading\.json$")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_-]")

INGEST_NAME_FMT = "alpaca-websocket-ingest-{environment}"
TRADER_NAME_FMT = "trading-server-{environment}-{symbol}-{model_type}-{model_number}"
ENVIRONMENTS = ("dev", "qa", "prod")


class ModelKeyError(DataError, ValueError):
    """A key looked like a model artifact but cannot be used; the message says why."""


@dataclass(frozen=True)
class ArtifactKey:
    """One parsed artifact key (one fold of one model)."""

    key: str
    model_type: str
    symbol: str
    model_id: str
    outer: int
    inner: int
    rest: str

    @property
    def prefix(self) -> str:
        """``models/<model_type>/<symbol>/<model_id>``: what the folds of one model share."""
        return f"models/{self.model_type}/{self.symbol}/{self.model_id}"


@dataclass(frozen=True)
class ModelSpec:
    """One model: every fold under one prefix."""

    model_type: str
    symbol: str
    model_id: str
    model_number: int
    folds: tuple[ArtifactKey, ...] = field(default=())
    trading_key: str = field(default="", compare=False)
    """``<prefix>/trading.json`` when the store holds one ('' otherwise)."""
    trading: TradingConfig | None = field(default=None, compare=False)
    """The parsed trading config (``services.catalog.with_trading``); ``None``: not loaded
    or no file, so the defaults."""

    @property
    def prefix(self) -> str:
        """The model prefix in the bucket."""
        return f"models/{self.model_type}/{self.symbol}/{self.model_id}"

    @property
    def key(self) -> str:
        """A subject- and file-safe identifier of the model (NATS tokens, durable names)."""
        return model_key(self.model_type, self.symbol, self.model_id)

    def instance_name(self, environment: str) -> str:
        """The trading instance's Name tag (spec: Naming & Tagging Reference)."""
        return trader_instance_name(environment, self.symbol, self.model_type, self.model_number)

    def live_prefix(self, day: str) -> str:
        """Where the trader's outputs for ``day`` (YYYY-MM-DD) go; never matches the grammar."""
        return f"{self.prefix}/live/{day}"


def parse_artifact_key(key: str) -> ArtifactKey | None:
    """Parse ``key``; ``None`` when it does not match the grammar (ignored, reported)."""
    m = _MODEL_KEY_RE.match(key)
    if m is None:
        return None
    model_type, symbol, model_id, outer, inner, rest = m.groups()
    return ArtifactKey(key, model_type, symbol, model_id, int(outer), int(inner), rest)


def model_number(model_id: str) -> int:
    """The trailing integer of a model id (``model_7`` -> 7); raise when there is none."""
    m = _TRAILING_INT_RE.search(model_id)
    if m is None:
        raise ModelKeyError(
            f"model id {model_id!r} has no trailing number: name it like 'model_7' so the "
            "trading instance can be named trading-server-<env>-<symbol>-<type>-<number>"
        )
    return int(m.group(1))


def group_models(keys: list[str]) -> tuple[list[ModelSpec], dict[str, str]]:
    """Group artifact keys into models.

    Returns the models (sorted by prefix) and every ignored key with the reason. A
    ``<prefix>/trading.json`` belongs to the model of that prefix (``ModelSpec.trading_key``).
    """
    folds: dict[str, list[ArtifactKey]] = {}
    configs: dict[str, str] = {}
    ignored: dict[str, str] = {}
    for key in keys:
        if key.endswith("/"):
            ignored[key] = "folder marker"
            continue
        cfg = _TRADING_KEY_RE.match(key)
        if cfg is not None:
            configs[cfg.group(1)] = key
            continue
        art = parse_artifact_key(key)
        if art is None:
            ignored[key] = (
                "does not match models/<model_type>/<symbol>/<model_id>-outer_<X>_inner_<Y><rest>"
            )
            continue
        folds.setdefault(art.prefix, []).append(art)
    models: list[ModelSpec] = []
    for prefix in sorted(folds):
        arts = sorted(folds[prefix], key=lambda a: (a.outer, a.inner, a.rest))
        first = arts[0]
        try:
            number = model_number(first.model_id)
        except ModelKeyError as exc:
            for a in arts:
                ignored[a.key] = str(exc)
            continue
        models.append(
            ModelSpec(
                first.model_type,
                first.symbol,
                first.model_id,
                number,
                tuple(arts),
                trading_key=configs.pop(prefix, ""),
            )
        )
    for prefix, key in configs.items():
        why = ignored.get(next((a.key for a in folds.get(prefix, ())), ""), "")
        ignored[key] = f"trading config of no model: {why or f'no artifacts under {prefix}'}"
    return models, ignored


def model_key(model_type: str, symbol: str, model_id: str) -> str:
    """Subject-safe model key: ``<type>-<symbol>-<model_id>`` with unsafe characters as '_'."""
    return _UNSAFE_RE.sub("_", f"{model_type}-{symbol}-{model_id}")


def ingest_instance_name(environment: str) -> str:
    """``alpaca-websocket-ingest-<environment>``."""
    return INGEST_NAME_FMT.format(environment=environment)


def trader_instance_name(environment: str, symbol: str, model_type: str, number: int) -> str:
    """``trading-server-<environment>-<symbol>-<model_type>-<model_number>``."""
    return TRADER_NAME_FMT.format(
        environment=environment, symbol=symbol, model_type=model_type, model_number=number
    )


def trader_name_pattern(environment: str) -> str:
    """The EC2 Name tag wildcard that matches every trading instance of an environment."""
    return f"trading-server-{environment}-*"


def lambda_names(environment: str) -> dict[str, str]:
    """The three controller Lambda names of an environment."""
    return {
        "ingest": f"AlpacaWebsocketLambda_{environment}",
        "trading": f"TradingServerLambda_{environment}",
        "shutdown": f"TradingServerShutdownLambda_{environment}",
    }


def safe_token(name: str) -> str:
    """``name`` as one NATS subject token (and consumer name): unsafe characters as '_'."""
    return _UNSAFE_RE.sub("_", name)


def trader_subject(environment: str, model: str, event: str) -> str:
    """``algostack.<env>.trader.<model key>.<event>`` (fills, heartbeat, risk, intents)."""
    return f"algostack.{environment}.trader.{safe_token(model)}.{event}"


def kill_subject(environment: str) -> str:
    """The kill-switch subject of an environment."""
    return f"algostack.{environment}.control.kill"
