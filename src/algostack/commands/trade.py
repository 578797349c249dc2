"""``algostack trade``: run one model (or several in one process) from NATS to a broker."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from algostack.commands.error_line import print_error
from algostack.commands.options import Bucket, NatsUrl, SlippageBps, SubjectEnv, TrustPickle
from algostack.commands.output import print_whole

if TYPE_CHECKING:
    from collections.abc import Callable

    from algostack.adapters.broker import Broker
    from algostack.adapters.nats.bus import NatsBus
    from algostack.adapters.storage import BucketStore
    from algostack.config import Settings
    from algostack.core.naming import ModelSpec

_PREFIX_RE = re.compile(r"^models/[^/]+/[^/]+/[^/]+$")


class BrokerName(str, Enum):  # noqa: UP042 - Typer renders str enums as choices
    """Where orders go."""

    gateway = "gateway"
    sim = "sim"


def parse_prefixes(model: str | None, models: str | None) -> list[str]:
    """The model prefixes from ``--model`` / ``--models``; ``ConfigError`` when malformed."""
    from algostack.errors import ConfigError

    if (model is None) == (models is None):
        raise ConfigError("give exactly one of --model PREFIX or --models P1,P2,...")
    raw = [model] if model is not None else (models or "").split(",")
    prefixes = [p.strip().strip("/") for p in raw if p.strip()]
    if not prefixes:
        raise ConfigError("--models is empty: expected models/<type>/<symbol>/<id>,...")
    for p in prefixes:
        if not _PREFIX_RE.match(p):
            raise ConfigError(
                f"{p!r} is not a model prefix: expected models/<model_type>/<symbol>/<model_id>"
            )
    if len(set(prefixes)) != len(prefixes):
        raise ConfigError(f"a model is listed twice in {prefixes}")
    return prefixes


def find_specs(store: BucketStore, prefixes: list[str]) -> list[ModelSpec]:
    """The ``ModelSpec`` (with its folds) of every prefix; ``ConfigError`` naming a missing one."""
    from algostack.core.naming import group_models
    from algostack.errors import ConfigError

    specs = []
    for prefix in prefixes:
        found, ignored = group_models(list(store.list_keys(prefix)))
        match = [s for s in found if s.prefix == prefix]
        if not match:
            why = "; ".join(f"{k}: {v}" for k, v in list(ignored.items())[:3])
            raise ConfigError(
                f"no model artifacts under {prefix} in {store.url}"
                + (f" (ignored: {why})" if why else "")
            )
        specs.append(match[0])
    return specs


def build_broker_factory(
    bus: NatsBus, broker: BrokerName, slippage_bps: float
) -> Callable[[ModelSpec], Broker]:
    """A function ``spec -> Broker``: the execution gateway over ``bus`` (the desk's one
    path to the account), or a ``SimBroker`` per model in this process (no gateway)."""
    from algostack.adapters.broker import SimBroker
    from algostack.adapters.nats.order_channel import GatewayBroker

    if broker is BrokerName.sim:
        return lambda spec: SimBroker(slippage_bps, model=spec.key)
    return lambda spec: GatewayBroker(bus, spec.key)


async def _serve(
    settings: Settings,
    specs: list[ModelSpec],
    store: BucketStore,
    *,
    journal_dir: Path,
    nats_url: str,
    broker: BrokerName,
    slippage_bps: float,
    warmup: bool,
    trust_pickle: bool,
    ack_wait_s: float,
    archive: BucketStore | None = None,
    day: str | None = None,
) -> dict[str, dict[str, int]]:
    from algostack.adapters.artifacts.loader import load_model
    from algostack.adapters.nats.bus import NatsBus
    from algostack.services import serve_until_signalled
    from algostack.services.trader.service import TraderService

    models = [(spec, load_model(store, spec, trust_pickle=trust_pickle)) for spec in specs]
    bus = await NatsBus.from_settings(settings.nats, nats_url, "algostack-trade")
    service = TraderService(
        bus,
        models,
        journal_root=journal_dir,
        broker_factory=build_broker_factory(bus, broker, slippage_bps),
        env=settings.env,
        warmup=warmup,
        ack_wait_s=ack_wait_s,
        archive=archive,
        session_day=day,
    )
    await serve_until_signalled(service, bus)
    return {
        key: {
            "bars": s.runner.stats.bars,
            "decisions": s.runner.stats.decisions,
            "orders": s.runner.stats.orders,
            "fills": s.runner.stats.fills,
            "refused": s.runner.stats.bad_bars
            + s.runner.stats.skipped_bars
            + s.runner.stats.wrong_bars,
            "position": s.runner.position,
        }
        for key, s in service.slots.items()
    }


def trade(
    bucket: Bucket,
    journal_dir: Annotated[
        Path,
        typer.Option("--journal-dir", help="Journal root; each model writes <root>/<model key>/"),
    ],
    model: Annotated[
        str | None, typer.Option("--model", help="One model prefix models/<type>/<symbol>/<id>")
    ] = None,
    models: Annotated[
        str | None, typer.Option("--models", help="Several model prefixes, comma-separated")
    ] = None,
    nats_url: NatsUrl = None,
    broker: Annotated[
        BrokerName,
        typer.Option(
            "--broker",
            help="gateway (orders through `algostack gateway`) or sim (a simulated broker "
            "per model in this process)",
        ),
    ] = BrokerName.gateway,
    env: SubjectEnv = None,
    warmup: Annotated[
        bool, typer.Option("--warmup/--no-warmup", help="Warm features from the day's stream")
    ] = True,
    trust_pickle: TrustPickle = False,
    slippage_bps: SlippageBps = 1.0,
    ack_wait_s: Annotated[
        float, typer.Option("--ack-wait-s", help="JetStream redelivery wait for unacked bars")
    ] = 30.0,
    archive: Annotated[
        str | None,
        typer.Option(
            "--archive",
            help="Market-data archive (s3://<bucket> or a directory; default ALGOSTACK_ARCHIVE): "
            "models whose features run across sessions warm up from the sessions before today.",
        ),
    ] = None,
    day: Annotated[
        str | None,
        typer.Option("--day", help="The session traded, YYYY-MM-DD (default: today in New York)."),
    ] = None,
) -> None:
    """Trade models from NATS: features -> ensemble -> thresholds -> risk -> broker."""
    from rich.console import Console
    from rich.table import Table

    from algostack.config import load_settings
    from algostack.errors import AlgostackError, service_exit_code
    from algostack.logs import setup_logging

    err = Console(stderr=True)
    try:
        settings = load_settings()
        if env is not None:
            settings = settings.model_copy(update={"env": env})
        setup_logging(settings.log_level)
        prefixes = parse_prefixes(model, models)
        from algostack.adapters.storage import open_store
        from algostack.local.session import parse_day
        from algostack.services.catalog import with_trading

        store = open_store(bucket)
        # each model with its trading config, checked before anything connects
        specs = [with_trading(store, s) for s in find_specs(store, prefixes)]
        import uvloop

        summary = uvloop.run(
            _serve(
                settings,
                specs,
                store,
                journal_dir=journal_dir,
                nats_url=nats_url or settings.nats.url,
                broker=broker,
                slippage_bps=slippage_bps,
                warmup=warmup,
                trust_pickle=trust_pickle,
                ack_wait_s=ack_wait_s,
                archive=open_store(where) if (where := archive or settings.archive) else None,
                day=str(parse_day(day)) if day else None,  # YYYY-MM-DD, checked
            )
        )
    except (AlgostackError, ValueError, OSError) as exc:
        # ValueError: bad risk limits, thresholds, ... from core; OSError: a write no
        # adapter wrapped. One line (a journal it cannot write: FileWriteError names it).
        print_error(f"trade failed: {exc}", err)
        raise typer.Exit(service_exit_code(exc)) from None
    table = Table(title="algostack trade")
    for col in ("model", "bars", "decisions", "orders", "fills", "refused", "position"):
        table.add_column(col)
    for key, row in summary.items():
        table.add_row(key, *(str(v) for v in row.values()))
    print_whole(table)


def register(app: typer.Typer) -> None:
    """Add ``trade`` to the CLI."""
    app.command("trade")(trade)
