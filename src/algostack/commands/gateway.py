"""``algostack gateway``: the execution gateway of one broker account (docs/gateway.md)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from algostack.commands.error_line import print_error
from algostack.commands.options import NatsUrl, SlippageBps, SubjectEnv

if TYPE_CHECKING:
    from algostack.config import Settings
    from algostack.core.desk_risk import DeskLimits
    from algostack.services.gateway.venue import BarHistory, Venue


class VenueName(str, Enum):  # noqa: UP042 - Typer renders str enums as choices
    """The account behind the gateway."""

    sim = "sim"
    alpaca = "alpaca"


def build_venue(
    settings: Settings,
    venue: VenueName,
    history: BarHistory,
    *,
    slippage_bps: float,
    equity: float,
) -> Venue:
    """The venue; Alpaca keys and the live interlock are checked here, before connecting."""
    from algostack.services.gateway.venue import SimVenue

    if venue is VenueName.sim:
        return SimVenue(history, slippage_bps=slippage_bps, equity=equity)
    from algostack.services.gateway.alpaca_venue import AlpacaVenue

    alpaca: Venue = AlpacaVenue.from_settings(settings.alpaca)
    return alpaca


async def _serve(
    settings: Settings,
    venue: Venue,
    history: BarHistory,
    *,
    nats_url: str,
    state_dir: Path,
    limits: DeskLimits,
    batch_window_s: float,
    reconcile_every_s: float,
    status_every_s: float,
) -> dict[str, int]:
    from algostack.adapters.nats.bus import NatsBus
    from algostack.services import serve_until_signalled
    from algostack.services.gateway.service import GatewayService

    bus = await NatsBus.from_settings(settings.nats, nats_url, "algostack-gateway")
    service = GatewayService(
        bus,
        venue,
        history,
        state_dir=state_dir,
        env=settings.env,
        limits=limits,
        batch_window_s=batch_window_s,
        reconcile_every_s=reconcile_every_s,
        status_every_s=status_every_s,
    )
    await serve_until_signalled(service, bus)
    if service.failure is not None:
        raise service.failure
    return dict(service.counters)


def gateway(
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="Directory of the gateway's restart state")
    ],
    broker: Annotated[
        VenueName, typer.Option("--broker", help="sim (simulated account) or alpaca (paper)")
    ] = VenueName.sim,
    nats_url: NatsUrl = None,
    env: SubjectEnv = None,
    slippage_bps: SlippageBps = 1.0,
    equity: Annotated[
        float, typer.Option("--equity", help="Equity of the simulated account (sim only)")
    ] = 1_000_000.0,
    batch_window_ms: Annotated[
        float,
        typer.Option("--batch-window-ms", help="How long a bar's batch waits for more models"),
    ] = 2.0,
    reconcile_every_s: Annotated[
        float, typer.Option("--reconcile-every-s", help="Account vs model books, every N s")
    ] = 5.0,
    status_every_s: Annotated[
        float, typer.Option("--status-every-s", help="Desk status for the dashboard, every N s")
    ] = 1.0,
    max_gross: Annotated[
        float, typer.Option("--max-gross", help="Desk gross exposure cap, in dollars")
    ] = 2_000_000.0,
    max_net: Annotated[
        float, typer.Option("--max-net", help="Desk net exposure cap, in dollars")
    ] = 1_000_000.0,
    max_symbol_shares: Annotated[
        int, typer.Option("--max-symbol-shares", help="Account shares per symbol, all models")
    ] = 20_000,
    daily_loss_limit: Annotated[
        float,
        typer.Option("--daily-loss-limit", help="Desk loss of the day that flattens everything"),
    ] = 25_000.0,
) -> None:
    """Net the models' intents, send them to the broker, attribute fills back (docs/gateway.md)."""
    from rich.console import Console

    from algostack.config import load_settings
    from algostack.errors import AlgostackError, ConfigError, service_exit_code
    from algostack.logs import setup_logging

    err = Console(stderr=True)
    try:
        from algostack.core.desk_risk import DeskLimits
        from algostack.services.gateway.venue import BarHistory

        if not 0 <= batch_window_ms <= 1_000:
            raise ConfigError(f"--batch-window-ms must be 0..1000, got {batch_window_ms}")
        for flag, value in (
            ("--reconcile-every-s", reconcile_every_s),
            ("--status-every-s", status_every_s),
        ):
            if not value > 0:
                raise ConfigError(f"{flag} must be > 0, got {value}")
        if slippage_bps < 0:
            raise ConfigError(f"--slippage-bps must be >= 0, got {slippage_bps}")
        limits = DeskLimits(
            max_gross_notional=max_gross,
            max_net_notional=max_net,
            max_symbol_shares=max_symbol_shares,
            daily_loss_limit=daily_loss_limit,
        )
        settings = load_settings()
        if env is not None:
            settings = settings.model_copy(update={"env": env})
        setup_logging(settings.log_level)
        history = BarHistory()
        venue = build_venue(settings, broker, history, slippage_bps=slippage_bps, equity=equity)
        import uvloop

        counters = uvloop.run(
            _serve(
                settings,
                venue,
                history,
                nats_url=nats_url or settings.nats.url,
                state_dir=state_dir,
                limits=limits,
                batch_window_s=batch_window_ms / 1000.0,
                reconcile_every_s=reconcile_every_s,
                status_every_s=status_every_s,
            )
        )
    except (AlgostackError, ValueError, OSError) as exc:
        # One line, secrets masked as in the logs; a state file it cannot write (a full
        # disk) is a FileWriteError naming the file: exit 3, not restarted. OSError: a write
        # no adapter wrapped.
        print_error(f"gateway failed: {exc}", err)
        raise typer.Exit(2 if isinstance(exc, ValueError) else service_exit_code(exc)) from None
    Console().print(" ".join(f"{k}={v}" for k, v in counters.items()), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``gateway`` to the CLI."""
    app.command("gateway")(gateway)
