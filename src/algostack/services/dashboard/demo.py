"""A tiny desk for the dashboard's tests, screenshot and demos: bars, trader events, journals.

``seed_bucket`` writes model artifacts (names only), a trades journal and a trader log into a
directory laid out like the bucket; ``DemoDesk`` publishes minute bars to JetStream and
heartbeats, decisions, PnL, risk and fills on the trader subjects, one step at a time, and
the execution gateway's ``DeskStatus``. It stands in for the ingest, the traders and the
gateway.
Deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from algostack.core import naming
from algostack.core.events import (
    FILL_KIND,
    Decision,
    DeskStatus,
    Heartbeat,
    PnlUpdate,
    RiskUpdate,
    encode_event,
    event_kind,
)
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts
from algostack.core.orders import Fill, Side, client_order_id
from algostack.services.gateway.service import status_subject


@dataclass(frozen=True)
class DemoModel:
    """A model of the demo desk; ``halted`` ones report HALTED, ``silent`` ones never speak."""

    model_type: str
    symbol: str
    model_id: str
    halted: bool = False
    silent: bool = False

    @property
    def key(self) -> str:
        """The subject-safe model key."""
        return naming.model_key(self.model_type, self.symbol, self.model_id)

    @property
    def prefix(self) -> str:
        """The model prefix in the bucket."""
        return f"models/{self.model_type}/{self.symbol}/{self.model_id}"


DEFAULT_MODELS = (
    DemoModel("onnx", "AAPL", "model_1"),
    DemoModel("linear", "MSFT", "model_2"),
    DemoModel("onnx", "MSFT", "model_3", halted=True),
    DemoModel("linear", "SPY", "model_9", silent=True),
)
JOURNAL_HEADER = "ts,model,symbol,side,qty,price,client_order_id,commission,extra_column\n"


def seed_bucket(
    root: Path,
    day: date,
    models: tuple[DemoModel, ...] = DEFAULT_MODELS,
    *,
    first_ts: int | None = None,
) -> None:
    """Write artifacts, ``day``'s trades journal and a log for every model under ``root``.

    Journal trades start at ``first_ts`` (UTC ns; default 14:00 UTC of ``day``).
    """
    open_ts = first_ts or datetime_to_ts(datetime.combine(day, time(14, 0), UTC))
    for i, m in enumerate(models):
        art = root / f"{m.prefix}-outer_0_inner_0.json"
        art.parent.mkdir(parents=True, exist_ok=True)
        art.write_text("{}")
        if m.silent:
            continue
        live = root / m.prefix / "live" / day.isoformat()
        live.mkdir(parents=True, exist_ok=True)
        rows = [JOURNAL_HEADER]
        for j in range(2):
            ts = open_ts + (i * 10 + j) * NS_PER_MIN
            side = Side.BUY if j == 0 else Side.SELL
            coid = client_order_id(m.key, m.symbol, ts, side)
            rows.append(f"{ts},{m.key},{m.symbol},{side},{10},{100.0 + j},{coid},0.01,x\n")
        (live / f"trades_{day.isoformat()}.csv").write_text("".join(rows))
        (live / "live_trader.log").write_text(
            "".join(f'{{"msg": "journal line {k} of {m.key}"}}\n' for k in range(3))
        )


@dataclass
class DemoDesk:
    """Publish one step of a fake trading session per ``step()`` call through a ``NatsBus``."""

    bus: Any
    env: str = "local"
    symbols: tuple[str, ...] = ("AAPL", "MSFT", "SPY")
    models: tuple[DemoModel, ...] = DEFAULT_MODELS
    start_ts: int = 0
    seed: int = 7
    bars: int = 0
    prices: dict[str, float] = field(default_factory=dict)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.prices = {s: 100.0 + 50 * i for i, s in enumerate(self.symbols)}

    async def publish_bars(self, n: int) -> None:
        """Publish ``n`` minute bars per symbol to JetStream (the stream must exist)."""
        events = []
        for _ in range(n):
            ts = self.start_ts + self.bars * NS_PER_MIN
            for s in self.symbols:
                o = self.prices[s]
                c = max(1.0, o * (1 + self._rng.gauss(0, 0.002)))
                self.prices[s] = c
                hi, lo = max(o, c) * 1.0005, min(o, c) * 0.9995
                events.append(
                    Bar(symbol=s, ts=ts, open=o, high=hi, low=lo, close=c, volume=1_000.0)
                )
            self.bars += 1
        await self.bus.publish_events(events)
        await self.bus.flush_acks(10.0)

    async def publish_trader_events(self, now_ns: int, *, fill: bool = False) -> None:
        """Publish a heartbeat, decision and PnL per speaking model (+ a fill when asked)."""
        for i, m in enumerate(self.models):
            if m.silent:
                continue
            state = "HALTED" if m.halted else "ACTIVE"
            pos = 0 if m.halted else 10 * (1 + i)
            mark = self.prices.get(m.symbol, 100.0)
            events: list[Any] = [
                Heartbeat(
                    model=m.key,
                    ts=now_ns,
                    symbol=m.symbol,
                    state=state,
                    position=pos,
                    last_bar_ts=self.start_ts + self.bars * NS_PER_MIN,
                    bars=self.bars,
                    decisions=self.bars,
                    orders=2,
                    latency_p50_us=180.0 + 10 * i,
                    latency_p99_us=420.0 + 10 * i,
                    warmed_up=True,
                ),
                Decision(
                    model=m.key,
                    ts=now_ns,
                    symbol=m.symbol,
                    bar_ts=self.start_ts + self.bars * NS_PER_MIN,
                    score=0.6,
                    direction=1,
                    target_qty=pos,
                    order_qty=0,
                    latency_us=200.0,
                ),
                PnlUpdate(
                    model=m.key,
                    ts=now_ns,
                    symbol=m.symbol,
                    position=pos,
                    realised=12.5 * (i + 1),
                    unrealised=(mark - 100.0) * pos / 10,
                    equity=100_000.0,
                    mark=mark,
                ),
            ]
            if m.halted:
                events.append(
                    RiskUpdate(
                        model=m.key,
                        ts=now_ns,
                        state="HALTED",
                        previous="ACTIVE",
                        reason="daily loss limit",
                        daily_pnl=-900.0,
                    )
                )
            for ev in events:
                subject = naming.trader_subject(self.env, m.key, event_kind(ev))
                await self.bus.publish(subject, encode_event(ev))
            if fill and not m.halted:
                bar_ts = self.start_ts + self.bars * NS_PER_MIN
                f = Fill(
                    client_order_id=client_order_id(m.key, m.symbol, bar_ts, Side.BUY),
                    broker_order_id=f"sim-{self.bars}-{i}",
                    model=m.key,
                    symbol=m.symbol,
                    side=Side.BUY,
                    qty=5,
                    price=mark,
                    ts=now_ns,
                )
                subject = naming.trader_subject(self.env, m.key, FILL_KIND)
                await self.bus.publish(subject, encode_event(f))
        await self.bus.flush()

    def desk_status(self, now_ns: int) -> DeskStatus:
        """The gateway's view of the demo desk: the speaking models' positions in their books,
        the first halted model's symbol off by 5 shares (halted), and a foreign ``TSLA``."""
        books: dict[str, dict[str, int]] = {}
        for i, m in enumerate(self.models):
            if not m.silent:
                books[m.key] = {} if m.halted else {m.symbol: 10 * (1 + i)}
        account: dict[str, int] = {}
        for held in books.values():
            for sym, qty in held.items():
                account[sym] = account.get(sym, 0) + qty
        reconciliation = dict.fromkeys(account, "ok")
        halted: dict[str, str] = {}
        off = next((m.symbol for m in self.models if m.halted and not m.silent), None)
        if off is not None:
            why = f"account holds {account.get(off, 0) + 5}, the model books sum to "
            why += f"{account.get(off, 0)}"
            reconciliation[off], halted[off] = f"halted: {why}", f"reconciliation: {why}"
        reconciliation["TSLA"] = "foreign: 3 shares the desk did not trade"
        return DeskStatus(
            ts=now_ns,
            venue="simulator",
            venue_ready=True,
            account=account,
            books=books,
            reconciliation=reconciliation,
            halted=halted,
            killed=False,
            loss_breached=False,
            desk_pnl=sum(12.5 * (i + 1) for i, m in enumerate(self.models) if not m.silent),
            day_trades_left=None,
            working=0,
            counters={"intents": 2 * self.bars, "refused": 1, "venue_orders": self.bars,
                      "crossed_shares": 10 * self.bars, "fills": self.bars},
        )  # fmt: skip

    async def publish_desk_status(self, now_ns: int) -> None:
        """Publish ``desk_status(now_ns)`` on the gateway's status subject (core NATS)."""
        await self.bus.publish(status_subject(self.env), encode_event(self.desk_status(now_ns)))
        await self.bus.flush()
