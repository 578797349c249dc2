"""A model's trading config: ``<model prefix>/trading.json`` beside its folds in the bucket.

One small JSON object per model (docs/models.md, "Trading config")::

    {"fixed_shares": 7, "max_position_shares": 50, "daily_loss_limit": 500.0}

It sets the sizing (``fixed_shares``, ``fixed_notional`` in dollars, or
``allocation_fraction`` of an ``allocation``; none of them: the largest position the caps
allow, as before), the limits of ``core.risk.RiskLimits`` under the same names, and two
fields the multi-day models read: ``flatten_before_close`` and ``features``. Every field is
optional; a model without the file trades on ``RiskLimits()`` exactly as before.

The file sits in a folder under the model prefix, like the live outputs, so it can never
match the artifact grammar and Terraform (which lists three levels) never sees it.
Parsing is pure: ``parse_trading_config(key, data)``; ``services.catalog`` reads it from
the store. Any problem is one ``TradingConfigError`` line naming the key and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Literal

import msgspec

from algostack.core.risk import RiskLimits, Sizing
from algostack.errors import ConfigError

TRADING_CONFIG_NAME = "trading.json"
"""The file's name under the model prefix: ``models/<type>/<symbol>/<model_id>/trading.json``."""

FEATURES_MODES = ("session", "continuous")
_DEFAULT_LIMITS = RiskLimits()
LIMIT_FIELDS = tuple(f.name for f in fields(RiskLimits))
"""The limits a ``trading.json`` may set: every ``RiskLimits`` field, under its own name."""
_AT_RE = re.compile(r" - at `\$\.([^`]+)`$")
_UNKNOWN_RE = re.compile(r"unknown field `([^`]+)`")


class TradingConfigError(ConfigError):
    """A model's trading config cannot be used; one line naming the key and the field."""


class _TradingFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The wire schema of ``trading.json`` (every field optional)."""

    fixed_shares: int | None = None
    fixed_notional: float | None = None
    allocation: float | None = None
    allocation_fraction: float | None = None
    max_position_shares: int = _DEFAULT_LIMITS.max_position_shares
    max_notional: float = _DEFAULT_LIMITS.max_notional
    max_orders_per_minute: int = _DEFAULT_LIMITS.max_orders_per_minute
    daily_loss_limit: float = _DEFAULT_LIMITS.daily_loss_limit
    reduce_fraction: float = _DEFAULT_LIMITS.reduce_fraction
    flatten_before_close_min: int = _DEFAULT_LIMITS.flatten_before_close_min
    flatten_before_close: bool | None = None
    features: Literal["session", "continuous"] = "session"


@dataclass(frozen=True)
class TradingConfig:
    """One model's sizing, limits and session behaviour; ``key`` is the file ('' without)."""

    key: str = ""
    sizing: Sizing = field(default_factory=Sizing)
    limits: RiskLimits = field(default_factory=RiskLimits)
    flatten_before_close: bool | None = None
    """Flatten before the close; ``None``: the default of the model's timeframe (on for
    minute models, the only ones that trade today)."""
    features: str = "session"
    """``session`` (features reset each session) or ``continuous``."""

    @property
    def sizing_text(self) -> str:
        """The sizing in a few words (``models list``)."""
        return self.sizing.describe()

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view (``models list --json``)."""
        s, lim = self.sizing, self.limits
        return {
            "key": self.key or None,
            "sizing": s.describe(),
            "fixed_shares": s.shares or None,
            "fixed_notional": s.notional if s.field == "fixed_notional" else None,
            "allocation": s.allocation or None,
            "allocation_fraction": s.fraction or None,
            **{name: getattr(lim, name) for name in LIMIT_FIELDS},
            "flatten_before_close": self.flatten_before_close,
            "features": self.features,
        }


DEFAULT_TRADING = TradingConfig()
"""What a model without ``trading.json`` trades on: ``RiskLimits()`` and the caps."""


def trading_config_key(prefix: str) -> str:
    """The key of a model's trading config: ``<prefix>/trading.json``."""
    return f"{prefix}/{TRADING_CONFIG_NAME}"


def _describe(exc: msgspec.ValidationError) -> str:
    msg = str(exc)
    unknown = _UNKNOWN_RE.search(msg)
    if unknown is not None:
        known = ", ".join(_TradingFile.__struct_fields__)
        return f"field {unknown.group(1)!r} does not exist (known: {known})"
    at = _AT_RE.search(msg)
    if at is not None:
        return f"field {at.group(1)!r}: {msg[: at.start()].replace('`', '')}"
    return msg.replace("`", "")


def parse_trading_config(key: str, data: bytes) -> TradingConfig:
    """Parse and check one ``trading.json``; ``TradingConfigError`` (one line naming ``key``
    and the field) on an unknown field, a wrong type, a negative number, contradictory
    limits or a sizing the caps always clip."""
    try:
        doc = msgspec.json.decode(data, type=_TradingFile)
    except msgspec.ValidationError as exc:
        raise TradingConfigError(f"{key}: {_describe(exc)}") from None
    except msgspec.DecodeError as exc:
        raise TradingConfigError(f"{key}: not valid JSON ({exc})") from None
    try:
        limits = RiskLimits(**{name: getattr(doc, name) for name in LIMIT_FIELDS})
    except ConfigError as exc:
        raise TradingConfigError(f"{key}: {exc}") from None
    _refuse_contradictions(key, doc, data)
    sizing = _sizing(key, doc, limits)
    return TradingConfig(key, sizing, limits, doc.flatten_before_close, doc.features)


def _refuse_contradictions(key: str, doc: _TradingFile, data: bytes) -> None:
    """Limits that leave a model no trade, or a field the rest of the file turns off: each a
    model that would sit in the fleet doing nothing, or not what its author meant."""
    for name in ("max_position_shares", "max_notional"):
        if getattr(doc, name) == 0:
            raise TradingConfigError(
                f"{key}: field {name!r}: 0 lets the model hold nothing (take the model out of "
                "the bucket to stop it trading)"
            )
    if doc.flatten_before_close is False and b"flatten_before_close_min" in data:
        given = msgspec.json.decode(data)
        if "flatten_before_close_min" in given:
            raise TradingConfigError(
                f"{key}: field 'flatten_before_close_min': set while flatten_before_close is "
                "false (the model never flattens before the close)"
            )


def _sizing(key: str, doc: _TradingFile, limits: RiskLimits) -> Sizing:
    def fail(name: str, why: str) -> TradingConfigError:
        return TradingConfigError(f"{key}: field {name!r}: {why}")

    def within(name: str, what: str, amount: float, cap_name: str) -> None:
        cap = getattr(limits, cap_name)
        if amount > cap:
            raise fail(name, f"{what} is above {cap_name} {cap:g} (every order would be clipped)")

    given = [
        n
        for n in ("fixed_shares", "fixed_notional", "allocation_fraction")
        if getattr(doc, n) is not None
    ]
    if len(given) > 1:
        raise fail(given[1], f"give one sizing, not {' and '.join(given)}")
    if doc.allocation is not None and doc.allocation_fraction is None:
        raise fail("allocation", "needs allocation_fraction (the share of it one position uses)")
    if doc.fixed_shares is not None:
        n = doc.fixed_shares
        if n < 1:
            raise fail("fixed_shares", f"{n} (must be >= 1)")
        within("fixed_shares", str(n), n, "max_position_shares")
        return Sizing(shares=n, field="fixed_shares", source=key)
    if doc.fixed_notional is not None:
        v = doc.fixed_notional
        if not v > 0:
            raise fail("fixed_notional", f"{v:g} (must be > 0 dollars)")
        within("fixed_notional", f"{v:g}", v, "max_notional")
        return Sizing(notional=v, field="fixed_notional", source=key)
    if doc.allocation_fraction is not None:
        f = doc.allocation_fraction
        if doc.allocation is None:
            raise fail("allocation_fraction", "needs allocation (dollars)")
        a = doc.allocation
        if not a > 0:
            raise fail("allocation", f"{a:g} (must be > 0 dollars)")
        if not 0 < f <= 1:
            raise fail("allocation_fraction", f"{f:g} (must be in (0, 1])")
        within(
            "allocation_fraction", f"{f:g} of allocation {a:g} ({a * f:g})", a * f, "max_notional"
        )
        return Sizing(
            notional=a * f, allocation=a, fraction=f, field="allocation_fraction", source=key
        )
    return Sizing()
