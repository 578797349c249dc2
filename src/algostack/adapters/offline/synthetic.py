"""A deterministic synthetic market: minute bars and trades over one NYSE session.

Per symbol a geometric random walk whose per-minute volatility follows an intraday smile
(high at the open and the close, low at midday) and whose volume follows the usual U shape.
Each minute's trades are drawn first (a Brownian bridge from the minute's open to its close,
round-lot sizes) and the bar is built from them, so bars and trades always agree: high/low
bound every trade, volume is the sum of sizes, vwap and trade_count match. Everything comes
from ``random.Random`` seeded by (seed, symbol), so a seed gives the same day on every machine.

``stream()`` yields one batch per session minute (that minute's trades in time order, then
its bars), from the open to the close (390 minutes on a regular day, fewer on early closes).
``speed=None`` runs as fast as possible; ``speed=N`` paces one session minute per ``60/N`` s.
Before each batch, ``last_recv_ns`` is set to the wall time (UTC ns) the batch was produced:
the ingest's receive time for an offline source.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import date

from algostack.adapters.offline.pacing import Pacer
from algostack.core.market import NS_PER_MIN, NS_PER_S, Bar, MarketEvent, Trade
from algostack.core.sessions import OutsideCalendarError, Session, session
from algostack.core.source import SourceStats
from algostack.core.symbols import unique_symbols
from algostack.errors import ConfigError

DAILY_VOL = 0.02
"""Daily log-return volatility of the walk (2 %, a typical large-cap)."""
BASE_TRADES_PER_MIN = 8
"""Trades emitted per symbol in a midday minute; the U shape multiplies it up to ~3x."""
EXCHANGES = ("V", "Q", "P", "N", "K", "Z")


def _seed_for(seed: int, symbol: str) -> int:
    # zlib.crc32, not hash(): str hashes are randomised per process.
    return (seed * 1_000_003) ^ zlib.crc32(symbol.encode())


def _default_price(symbol: str) -> float:
    return 20.0 + zlib.crc32(symbol.encode()) % 480


def validate_symbols(symbols: Sequence[str]) -> list[str]:
    """Check symbols (core.market rules), drop repeats; ``ConfigError`` names a bad one."""
    if not symbols:
        raise ConfigError("no symbols given: pass at least one, e.g. --symbols AAPL,MSFT")
    try:
        return unique_symbols(symbols)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def check_speed(speed: float | None) -> float | None:
    """Accept ``None`` (as fast as possible) or a positive finite multiple of real time."""
    if speed is not None and not (math.isfinite(speed) and speed > 0):
        raise ConfigError(f"--speed must be a positive number of times real time, got {speed}")
    return speed


class _Walk:
    """The state of one symbol's random walk."""

    def __init__(self, symbol: str, seed: int, price: float) -> None:
        self.symbol = symbol
        self.rng = random.Random(_seed_for(seed, symbol))
        self.price = price
        self.trade_id = 0


class SyntheticSource:
    """Offline ``MarketSource``: one seeded synthetic session of bars (and trades)."""

    name = "synthetic"

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        day: date,
        seed: int = 7,
        speed: float | None = None,
        include_trades: bool = True,
        start_prices: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.symbols = validate_symbols(symbols)
        try:
            sess = session(day)
        except OutsideCalendarError as exc:
            raise ConfigError(str(exc)) from exc
        if sess is None:
            raise ConfigError(
                f"{day.isoformat()} is not an NYSE session (weekend or holiday): pick a trading day"
            )
        self.session: Session = sess
        self.day = day
        self.seed = seed
        self.speed = check_speed(speed)
        self.include_trades = include_trades
        prices = start_prices or {}
        for sym, px in prices.items():
            if not (math.isfinite(px) and px > 0):
                raise ConfigError(f"start price of {sym} must be positive, got {px}")
        self._walks = [_Walk(s, seed, prices.get(s, _default_price(s))) for s in self.symbols]
        self.stats = SourceStats()
        self._clock = clock
        self._pacer = Pacer(sleep)
        self._wall_ns = wall_ns
        self.last_recv_ns = 0
        """Wall time (UTC ns) the batch just yielded was produced."""
        self._resume_after = -1

    def resume_after(self, ts_ns: int) -> None:
        """Skip the minutes starting at or before ``ts_ns`` (already on the bus)."""
        self._resume_after = ts_ns

    @property
    def minutes(self) -> int:
        """Minutes in the session (bars per symbol)."""
        return self.session.minutes

    async def aclose(self) -> None:
        """Stop: ``stream()`` ends before its next batch (a paced wait is cut short)."""
        self._pacer.close()

    async def stream(self) -> AsyncIterator[Sequence[MarketEvent]]:
        """Yield one batch per session minute until the close (or ``aclose()``)."""
        open_ts = int(self.session.open.timestamp()) * NS_PER_S
        n = self.minutes
        first = max(0, (self._resume_after - open_ts) // NS_PER_MIN + 1)
        started = self._clock() - first * 60.0 / self.speed if self.speed else self._clock()
        for minute in range(n):
            if self._pacer.closed.is_set():
                return
            batch = self.minute_batch(open_ts + minute * NS_PER_MIN, minute / max(n - 1, 1))
            if minute < first:
                continue  # built all the same: the random walk must reach the same prices
            if self.speed is not None:
                # A bar is published after its minute ends: minute m is due at (m+1) * 60/N.
                await self._pacer.pause(started + (minute + 1) * 60.0 / self.speed - self._clock())
                if self._pacer.closed.is_set():
                    return
            elif minute % 16 == 15:
                await asyncio.sleep(0)  # let the loop breathe when running flat out
            self.stats.received += len(batch)
            for w in self._walks:
                self.stats.last_bar_ts[w.symbol] = open_ts + minute * NS_PER_MIN
            self.last_recv_ns = self._wall_ns()
            yield batch

    def minute_batch(self, ts: int, x: float) -> list[MarketEvent]:
        """Build every symbol's trades and bar for the minute starting at ``ts``.

        ``x`` in [0, 1] is the position in the session (0 open, 1 close).
        """
        smile = 0.6 + 2.4 * (2 * x - 1) ** 4 + 0.6 * math.exp(-x * 30)
        u_shape = 0.5 + 2.5 * (2 * x - 1) ** 2
        sigma = DAILY_VOL / math.sqrt(self.minutes) * smile
        trades: list[Trade] = []
        bars: list[MarketEvent] = []
        for w in self._walks:
            rng = w.rng
            open_px = w.price
            close_px = open_px * math.exp(rng.gauss(-0.5 * sigma * sigma, sigma))
            count = max(1, int(BASE_TRADES_PER_MIN * u_shape * rng.uniform(0.6, 1.4)))
            offsets = sorted(rng.randrange(1, NS_PER_MIN) for _ in range(count))
            prices: list[float] = []
            sizes: list[float] = []
            for i, off in enumerate(offsets):
                frac = off / NS_PER_MIN
                mid = open_px + (close_px - open_px) * frac
                wiggle = open_px * sigma * math.sqrt(frac * (1 - frac)) * rng.gauss(0, 1)
                px = round(max(0.01, mid + wiggle), 2)
                if i == count - 1:
                    px = round(close_px, 2)
                size = (
                    float(100 * rng.choice((1, 1, 1, 2, 3, 5)))
                    if rng.random() < 0.8
                    else (float(rng.randint(1, 99)))
                )
                prices.append(px)
                sizes.append(size)
                w.trade_id += 1
                if self.include_trades:
                    trades.append(
                        Trade(
                            symbol=w.symbol,
                            ts=ts + off,
                            price=px,
                            size=size,
                            exchange=EXCHANGES[rng.randrange(len(EXCHANGES))],
                            trade_id=w.trade_id,
                            tape="C",
                        )
                    )
            o = round(open_px, 2)
            c = prices[-1]
            volume = sum(sizes)
            vwap = sum(p * s for p, s in zip(prices, sizes, strict=True)) / volume
            bars.append(
                Bar(
                    symbol=w.symbol,
                    ts=ts,
                    open=o,
                    high=max(o, *prices),
                    low=min(o, *prices),
                    close=c,
                    volume=volume,
                    trade_count=count,
                    vwap=round(vwap, 4),
                )
            )
            w.price = close_px
        trades.sort(key=lambda t: t.ts)
        return [*trades, *bars]
