"""The model catalog: list a store into models (the fleet Terraform creates) and validate them.

Listing uses the one key parser (``core.naming``); every key that is not used is reported
with its reason. Listing also reads each model's trading config (``<prefix>/trading.json``,
``core.trading_config``): ``with_trading`` is the one loader that ``trade``, ``run`` and
``replay`` use. Validation loads every model and scores a zero vector without trading.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from algostack.adapters.artifacts.loader import artifact_format, load_model
from algostack.adapters.artifacts.model import ArtifactError
from algostack.adapters.storage import BucketStore
from algostack.core.market import validate_symbol
from algostack.core.naming import ModelSpec, group_models
from algostack.core.trading_config import (
    DEFAULT_TRADING,
    TradingConfig,
    TradingConfigError,
    parse_trading_config,
)

MODELS_PREFIX = "models/"


@dataclass(frozen=True)
class CatalogEntry:
    """One model of the fleet: its spec, instance Name tag, formats and any problems."""

    spec: ModelSpec
    instance_name: str
    formats: tuple[str, ...]
    problems: tuple[str, ...] = ()
    config_error: str = ""
    """The trading config's error line (also in ``problems``); '' when it is usable."""

    @property
    def trading(self) -> TradingConfig:
        """The model's trading config (the defaults without a file or before loading)."""
        return self.spec.trading or DEFAULT_TRADING

    @property
    def ok(self) -> bool:
        """True when listing found nothing wrong (validation may still fail)."""
        return not self.problems


@dataclass(frozen=True)
class Catalog:
    """A store's models and the keys that were ignored, with reasons."""

    store_url: str
    environment: str
    entries: tuple[CatalogEntry, ...]
    ignored: dict[str, str] = field(default_factory=dict)
    live_outputs: int = 0
    """Keys under a listed model's ``<prefix>/live/``: the desk's own journals, counted, not
    listed as ignored (they grow every day and would drown the keys a user got wrong)."""

    @property
    def specs(self) -> list[ModelSpec]:
        """The model specs in prefix order."""
        return [e.spec for e in self.entries]

    def ignored_lines(self) -> list[str]:
        """``ignored <key>: <reason>``, one line per ignored key, sorted: what every command
        that reads the store says about them (never silently: the user put them there)."""
        return [f"ignored {key}: {why}" for key, why in sorted(self.ignored.items())]

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view (``algostack models list --json``)."""
        return {
            "store": self.store_url,
            "environment": self.environment,
            "models": [
                {
                    "prefix": e.spec.prefix,
                    "model_type": e.spec.model_type,
                    "symbol": e.spec.symbol,
                    "model_id": e.spec.model_id,
                    "model_number": e.spec.model_number,
                    "instance_name": e.instance_name,
                    "folds": [a.key for a in e.spec.folds],
                    "formats": list(e.formats),
                    "trading": e.trading.to_dict(),
                    "problems": list(e.problems),
                }
                for e in self.entries
            ],
            "ignored": [{"key": k, "reason": v} for k, v in sorted(self.ignored.items())],
            "live_outputs": self.live_outputs,
        }


def _live_output(key: str, prefixes: set[str]) -> bool:
    head, sep, _ = key.partition("/live/")
    return bool(sep) and head in prefixes


def build_catalog(keys: list[str], *, environment: str, store_url: str = "") -> Catalog:
    """Group keys into a catalog (pure; ``list_catalog`` lists a store first)."""
    specs, ignored = group_models(keys)
    prefixes = {s.prefix for s in specs}
    live = [k for k in ignored if _live_output(k, prefixes)]
    for k in live:  # the desk's journals under a model's prefix: expected, only counted
        del ignored[k]
    by_name: dict[str, list[str]] = {}
    for s in specs:
        by_name.setdefault(s.instance_name(environment), []).append(s.prefix)
    entries = []
    for s in specs:
        problems = []
        name = s.instance_name(environment)
        if len(by_name[name]) > 1:
            others = [p for p in by_name[name] if p != s.prefix]
            problems.append(f"instance name {name} also used by {', '.join(others)}")
        try:
            validate_symbol(s.symbol)
        except ValueError as exc:
            problems.append(str(exc))
        formats = []
        for art in s.folds:
            fmt = artifact_format(art.key)
            if fmt is None:
                problems.append(f"{art.key}: unknown artifact extension {art.rest!r}")
            elif fmt not in formats:
                formats.append(fmt)
        entries.append(CatalogEntry(s, name, tuple(formats), tuple(problems)))
    return Catalog(store_url, environment, tuple(entries), ignored, len(live))


def list_catalog(store: BucketStore, *, environment: str = "dev") -> Catalog:
    """List ``models/`` in ``store`` (paginated on S3) into a catalog, each model with its
    trading config; a config that cannot be used is the entry's ``config_error``."""
    keys = list(store.list_keys(MODELS_PREFIX))
    catalog = build_catalog(keys, environment=environment, store_url=store.url)
    entries = []
    for e in catalog.entries:
        try:
            entries.append(replace(e, spec=with_trading(store, e.spec)))
        except TradingConfigError as exc:
            entries.append(replace(e, problems=(*e.problems, str(exc)), config_error=str(exc)))
    return replace(catalog, entries=tuple(entries))


def load_trading_config(store: BucketStore, spec: ModelSpec) -> TradingConfig:
    """The trading config of ``spec`` (``DEFAULT_TRADING`` when it has no ``trading.json``);
    ``TradingConfigError`` naming the key and the field when the file cannot be used."""
    if not spec.trading_key:
        return DEFAULT_TRADING
    return parse_trading_config(spec.trading_key, store.get_bytes(spec.trading_key))


def with_trading(store: BucketStore, spec: ModelSpec) -> ModelSpec:
    """``spec`` carrying its trading config (what ``ModelRunner`` sizes and limits by)."""
    return replace(spec, trading=load_trading_config(store, spec))


@dataclass(frozen=True)
class Validation:
    """The outcome of loading and scoring one model."""

    prefix: str
    ok: bool
    message: str
    folds: int
    formats: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    score: float | None = None
    load_ms: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view."""
        return {
            "prefix": self.prefix,
            "ok": self.ok,
            "message": self.message,
            "folds": self.folds,
            "formats": list(self.formats),
            "features": list(self.features),
            "score": self.score,
            "load_ms": round(self.load_ms, 2),
        }


def validate_catalog(
    store: BucketStore,
    catalog: Catalog,
    *,
    trust_pickle: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Validation]:
    """Load every model of ``catalog`` and score a zero vector; never raises on a bad model."""
    out: list[Validation] = []
    for entry in catalog.entries:
        spec = entry.spec
        if entry.problems:
            out.append(Validation(spec.prefix, False, "; ".join(entry.problems), len(spec.folds)))
            continue
        t0 = clock()
        try:
            model = load_model(store, spec, trust_pickle=trust_pickle)
            score = model.score(np.zeros(len(model.features)))
        except (ArtifactError, ValueError) as exc:
            out.append(Validation(spec.prefix, False, str(exc), len(spec.folds)))
            continue
        ms = (clock() - t0) * 1000.0
        if not math.isfinite(score):
            out.append(
                Validation(
                    spec.prefix, False, f"score of a zero vector is {score}", len(spec.folds)
                )
            )
            continue
        out.append(
            Validation(
                spec.prefix,
                True,
                "OK",
                len(spec.folds),
                model.formats,
                model.features,
                score,
                ms,
            )
        )
    return out
