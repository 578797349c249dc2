"""What the dashboard renders: the Streamlit calls, fed only by a ``Snapshot``.

``app.py`` (the script Streamlit runs) calls ``main()``. Live panels refresh inside an
``st.fragment(run_every=...)`` so a refresh never re-runs the login or the kill switch.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import altair as alt
import pandas as pd
import streamlit as st

from algostack.config import load_settings
from algostack.core import sessions
from algostack.core.market import NS_PER_S
from algostack.errors import AlgostackError
from algostack.services.dashboard.account import AccountView
from algostack.services.dashboard.aggregate import (
    DashboardState,
    FleetRow,
    HealthPolicy,
    ModelDetail,
    Snapshot,
    pnl_curve,
)
from algostack.services.dashboard.auth import gate
from algostack.services.dashboard.feed import KILL_ALL, DashboardFeed, FeedConfig
from algostack.services.dashboard.settings import DashboardSettings

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

ALERT_STYLE = "background-color: #b71c1c; color: white; font-weight: bold"
OK_STYLE = "background-color: #1b5e20; color: white"
FOREIGN_STYLE = "background-color: #e65100; color: white"
KILL_TARGET_KEY = "kill_target"
KILL_REASON_KEY = "kill_reason"
KILL_CONFIRM_KEY = "kill_confirm"
KILL_RESULT_KEY = "kill_result"


def _ts(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / NS_PER_S, UTC)


def _ny(ns: int) -> datetime:
    """New York wall time without a zone: Vega renders naive times as they are, so the
    charts read in exchange time whatever the browser's time zone."""
    return datetime.fromtimestamp(ns / NS_PER_S, sessions.NEW_YORK).replace(tzinfo=None)


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:,.1f} s"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f} ms"  # not "-": st.table renders markdown


def fleet_frame(rows: tuple[FleetRow, ...]) -> pd.DataFrame:
    """The fleet table as a DataFrame, one row per model, ``Health`` last."""
    return pd.DataFrame(
        [
            {
                "Model": r.model,
                "Symbol": r.symbol,
                "State": r.state,
                "Position": r.position,
                "Realised": round(r.realised, 2),
                "Unrealised": round(r.unrealised, 2),
                "Heartbeat age": _age(r.heartbeat_age_s),
                "Latency p50": _ms(r.latency_p50_ms),
                "Latency p99": _ms(r.latency_p99_ms),
                "Last bar age": _age(r.last_bar_age_s),
                "Trades": r.trades,
                "Health": r.health,
            }
            for r in rows
        ],
        columns=[
            "Model",
            "Symbol",
            "State",
            "Position",
            "Realised",
            "Unrealised",
            "Heartbeat age",
            "Latency p50",
            "Latency p99",
            "Last bar age",
            "Trades",
            "Health",
        ],
    )


def style_fleet(frame: pd.DataFrame) -> Styler:
    """Colour unhealthy rows red and the ``Health`` cell of healthy ones green."""

    def row_style(row: pd.Series) -> list[str]:
        if row["Health"] != "OK":
            return [ALERT_STYLE] * len(row)
        return ["" if col != "Health" else OK_STYLE for col in row.index]

    return frame.style.apply(row_style, axis=1).format(precision=2)


def day_trades_text(left: int | None) -> str:
    """Day trades left, or ``not limited`` when the pattern-day-trader rule does not bind."""
    return "not limited" if left is None else str(left)


def kill_loss_text(view: AccountView) -> str:
    """``KILLED``, ``LOSS LIMIT``, both, or ``off``."""
    on = [
        name for name, flag in (("KILLED", view.killed), ("LOSS LIMIT", view.loss_breached)) if flag
    ]
    return ", ".join(on) if on else "off"


def account_frame(view: AccountView) -> pd.DataFrame:
    """One row per symbol: account net shares, one column of shares per model book, and the
    reconciliation (``HALTED: <why>``, ``FOREIGN: <what>``, ``ok`` or ``not checked``)."""
    columns = ["Symbol", "Account", *view.models, "Reconciliation"]
    return pd.DataFrame(
        [
            {
                "Symbol": r.symbol,
                "Account": r.account,
                **{m: r.books.get(m, 0) for m in view.models},
                "Reconciliation": r.state,
            }
            for r in view.rows
        ],
        columns=columns,
    )


def account_row_style(row: pd.Series) -> list[str]:
    """A halted row red, a foreign one orange, an ``ok`` reconciliation cell green."""
    state = str(row["Reconciliation"])
    if state.startswith("HALTED"):
        return [ALERT_STYLE] * len(row)
    if state.startswith("FOREIGN"):
        return [FOREIGN_STYLE] * len(row)
    return [OK_STYLE if col == "Reconciliation" and state == "ok" else "" for col in row.index]


def style_account(frame: pd.DataFrame) -> Styler:
    """The account table styled row by row (``account_row_style``)."""
    return frame.style.apply(account_row_style, axis=1)


def price_frame(points: tuple[tuple[int, float], ...]) -> pd.DataFrame:
    """Closes indexed by bar start (New York time)."""
    return pd.DataFrame(
        {"close": [p for _, p in points]},
        index=pd.DatetimeIndex([_ny(t) for t, _ in points], name="time"),
    )


def price_chart(points: tuple[tuple[int, float], ...]) -> alt.Chart:
    """A line of closes whose y axis fits the prices (st.line_chart starts at zero)."""
    frame = price_frame(points).reset_index()
    chart: alt.Chart = (
        alt.Chart(frame, height=220)
        .mark_line()
        .encode(
            x=alt.X("time:T", title=None, axis=alt.Axis(format="%H:%M")),
            y=alt.Y("close:Q", scale=alt.Scale(zero=False), title="close"),
            tooltip=[alt.Tooltip("time:T", format="%H:%M"), alt.Tooltip("close:Q", format=",.2f")],
        )
    )
    return chart


def pnl_frame(detail: ModelDetail, closes: tuple[tuple[int, float], ...] = ()) -> pd.DataFrame:
    """Realised and unrealised PnL over session time (New York), as the price charts: at each
    PnL update and re-marked at every later close of the model's symbol."""
    curve = pnl_curve(detail.pnl, closes)
    return pd.DataFrame(
        {"realised": [c[1] for c in curve], "unrealised": [c[2] for c in curve]},
        index=pd.DatetimeIndex([_ny(c[0]) for c in curve], name="time"),
    )


def pnl_chart(detail: ModelDetail, closes: tuple[tuple[int, float], ...] = ()) -> alt.Chart:
    """Realised and unrealised PnL as two step lines over session time."""
    frame = pnl_frame(detail, closes).reset_index()
    frame = frame.melt("time", var_name="pnl", value_name="value")
    chart: alt.Chart = (
        alt.Chart(frame, height=240)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("time:T", title=None, axis=alt.Axis(format="%H:%M")),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("pnl:N", title=None, legend=alt.Legend(orient="bottom")),
        )
    )
    return chart


def trades_frame(detail: ModelDetail) -> pd.DataFrame:
    """Today's trades of a model, oldest first (times in New York)."""
    return pd.DataFrame(
        [
            {
                "Time": _ny(t.ts).strftime("%H:%M:%S"),
                "Side": t.side,
                "Qty": t.qty,
                "Price": t.price,
                "Source": t.source,
                "Order id": t.order_id,
            }
            for t in detail.trades
        ],
        columns=["Time", "Side", "Qty", "Price", "Source", "Order id"],
    )


def _load() -> tuple[str, FeedConfig, DashboardSettings]:
    settings = load_settings()
    dash = DashboardSettings()
    password = settings.nats.password.get_secret_value() if settings.nats.password else None
    cfg = FeedConfig(
        nats_url=settings.nats.url,
        env=settings.env,
        user=settings.nats.user,
        password=password,
        bucket=dash.bucket,
        journal_dir=dash.journals,
        history=dash.history,
        journal_every_s=dash.journal_every_s,
    )
    return settings.env, cfg, dash


def _release(feed: DashboardFeed) -> None:
    feed.stop()


@st.cache_resource(show_spinner=False, on_release=_release)
def _feed(
    url: str,
    env: str,
    user: str,
    password: str,
    bucket: str,
    journal_dir: str,
    history: str,
    journal_every_s: float,
    stale_after_s: float,
    silent_after_s: float,
    hours_always: bool,
) -> DashboardFeed:
    """One feed per Streamlit server process and configuration."""
    cfg = FeedConfig(
        nats_url=url,
        env=env,
        user=user or None,
        password=password or None,
        bucket=bucket or None,
        journal_dir=journal_dir or None,
        history="all" if history == "all" else "today",
        journal_every_s=journal_every_s,
    )
    policy = HealthPolicy(
        stale_after_s=stale_after_s,
        silent_after_s=silent_after_s,
        market_open=(lambda _at: True) if hours_always else sessions.is_open,
    )
    return DashboardFeed(cfg, DashboardState(policy)).start()


def _start_feed(cfg: FeedConfig, dash: DashboardSettings) -> DashboardFeed:
    return _feed(
        cfg.nats_url,
        cfg.env,
        cfg.user or "",
        cfg.password or "",
        cfg.bucket or "",
        cfg.journal_dir or "",
        cfg.history,
        cfg.journal_every_s,
        dash.stale_after_s,
        dash.silent_after_s,
        dash.hours_always(cfg.env),
    )


def main() -> None:
    """Render the whole dashboard (the body of ``app.py``)."""
    st.set_page_config(page_title="algostack desk", page_icon=":chart:", layout="wide")
    env, cfg, dash = _load()
    if not gate(dash.password):
        return
    feed = _start_feed(cfg, dash)

    @st.fragment(run_every=dash.refresh_s)
    def live() -> None:
        render_live(feed.state.snapshot(time.time_ns()), env)

    live()
    render_kill_switch(feed, feed.state.snapshot(time.time_ns()))


def render_live(snap: Snapshot, env: str) -> None:
    """Header, fleet health, market data, prices and the per-model panel."""
    st.title(f"algostack desk · {env}")
    status = snap.feed_status + (f": {snap.feed_error}" if snap.feed_error else "")
    market = "open" if snap.market_open else "closed"
    st.caption(
        f"NATS feed: {status} · market {market} · updated "
        f"{_ts(snap.now_ns).strftime('%H:%M:%S')} UTC · skipped payloads: {snap.ignored}"
    )
    if snap.feed_status == "error":
        st.error(f"Not connected to NATS: {snap.feed_error}")

    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Models", len(snap.fleet))
    c2.metric("Alerts", snap.alerts)
    c3.metric("Symbols", len(snap.symbols))
    c4.metric("Halted", sum(1 for r in snap.fleet if r.halted))

    st.subheader("Fleet health")
    if snap.fleet:
        st.table(style_fleet(fleet_frame(snap.fleet)))
    else:
        st.info("No models yet: waiting for trader heartbeats or journals.")

    render_account(snap.account)

    st.subheader("Prices")
    if not snap.prices:
        st.info("No market data yet: waiting for bars on NATS.")
    symbols = list(snap.prices)
    for i in range(0, len(symbols), 2):
        cols = st.columns(2)
        for col, symbol in zip(cols, symbols[i : i + 2], strict=False):
            row = next((s for s in snap.symbols if s.symbol == symbol), None)
            with col:
                flag = ""
                if row is not None and (row.stale or row.halted):
                    flag = " :red[STALE]" if row.stale else " :red[HALTED]"
                last = f" · last {row.last_close:,.2f}" if row and row.last_close else ""
                st.markdown(f"**{symbol}**{last} · {row.bars if row else 0} bars{flag}")
                st.altair_chart(price_chart(snap.prices[symbol]), width="stretch")

    render_models(snap)


def render_account(view: AccountView | None) -> None:
    """The execution gateway's account: health, counters, positions against the model books."""
    st.subheader("Account")
    if view is None:
        st.info("No account yet: waiting for the execution gateway's status.")
        return
    c = [*st.columns(4), *st.columns(4)]
    c[0].metric("Gateway", f"{view.stream} · {view.venue}")
    c[1].metric("Desk PnL", f"{view.desk_pnl:,.2f}")
    c[2].metric("Day trades left", day_trades_text(view.day_trades_left))
    c[3].metric("Kill / loss", kill_loss_text(view))
    c[4].metric("Crossed shares", f"{view.crossed_shares:,}")
    c[5].metric("Venue orders", f"{view.venue_orders:,}")
    c[6].metric("Refused intents", f"{view.refused:,}")
    c[7].metric("Working orders", f"{view.working:,}")
    if view.silent:
        st.error(f"Gateway SILENT: last status {_age(view.age_s)} ago; figures are its last word.")
    elif not view.venue_ready:
        st.error(f"Gateway: the {view.venue} order-update stream is DOWN.")
    if view.killed or view.loss_breached:
        st.error(f"Desk {kill_loss_text(view)}: the gateway refuses opening orders.")
    for r in view.rows:
        if r.halted:
            st.error(f"{r.symbol} halted: {r.halt_reason}")
    if view.rows:
        st.table(style_account(account_frame(view)))
    else:
        st.caption("The account is flat and nothing is reconciled yet.")


def render_models(snap: Snapshot) -> None:
    """One model at a time: metrics, PnL curve, today's trades, log tail."""
    st.subheader("Models")
    if not snap.models:
        return
    key = st.selectbox("Model", list(snap.models), key="model_select")
    detail = snap.models[key]
    r = detail.row
    # two rows of four: seven metrics in one row truncate their values below ~1300 px
    c = [*st.columns(4), *st.columns(4)]
    c[0].metric("Position", r.position)
    c[1].metric("Risk state", r.state)
    c[2].metric("Realised PnL", f"{r.realised:,.2f}")
    c[3].metric("Unrealised PnL", f"{r.unrealised:,.2f}")
    c[4].metric("Heartbeat age", _age(r.heartbeat_age_s))
    c[5].metric("Decisions / orders", f"{detail.decisions:,} / {detail.orders:,}")
    c[6].metric("Decision latency p50", _ms(r.latency_p50_ms))
    c[7].metric("Decision latency p99", _ms(r.latency_p99_ms))
    if not r.healthy:
        why = f" ({detail.risk_reason})" if detail.risk_reason else ""
        st.error(f"{r.model}: {r.health}{why}")
    left, right = st.columns(2)
    with left:
        st.markdown("**PnL**")
        if detail.pnl:
            closes = snap.prices.get(r.symbol, ())
            st.altair_chart(pnl_chart(detail, closes), width="stretch")
        elif detail.trades:
            st.caption(
                "No PnL update since the dashboard started: the curve starts at the next fill."
            )
        else:
            st.caption("No PnL updates yet.")
    with right:
        st.markdown(f"**Today's trades** ({len(detail.trades)})")
        # newest first; the long order id goes last and narrow so it never pushes columns out
        st.dataframe(
            trades_frame(detail).iloc[::-1],
            hide_index=True,
            height=240,
            width="stretch",
            column_config={
                "Time": st.column_config.TextColumn("Time (NY)", width="small"),
                "Side": st.column_config.TextColumn(width="small"),
                "Qty": st.column_config.NumberColumn(width="small", format="%d"),
                "Price": st.column_config.NumberColumn(width="small", format="%.2f"),
                "Source": st.column_config.TextColumn(width="small"),
                "Order id": st.column_config.TextColumn(width="medium"),
            },
        )
    if detail.log_tail:
        with st.expander("live_trader.log (tail)"):
            st.code("\n".join(detail.log_tail), language=None)


def _send_kill(feed: DashboardFeed) -> None:
    target = st.session_state.get(KILL_TARGET_KEY, KILL_ALL)
    model = KILL_ALL if target == _ALL_LABEL else str(target)
    reason = str(st.session_state.get(KILL_REASON_KEY, ""))
    try:
        feed.kill(model, reason)
    except AlgostackError as exc:
        st.session_state[KILL_RESULT_KEY] = ("error", f"Kill switch NOT sent: {exc}")
    else:
        st.session_state[KILL_RESULT_KEY] = ("ok", f"Kill switch sent for {target}: {reason}")
    st.session_state[KILL_CONFIRM_KEY] = False


_ALL_LABEL = "ALL MODELS (*)"


def render_kill_switch(feed: DashboardFeed, snap: Snapshot) -> None:
    """Halt one model or all, behind a reason and an explicit confirmation."""
    with st.expander("Kill switch", expanded=False):
        options: list[Any] = [_ALL_LABEL, *snap.models]
        target = st.selectbox("Halt", options, key=KILL_TARGET_KEY)
        reason = st.text_input("Reason (required)", key=KILL_REASON_KEY)
        confirmed = st.checkbox(f"I confirm: halt {target}", key=KILL_CONFIRM_KEY)
        st.button(
            "Send kill switch",
            type="primary",
            disabled=not (confirmed and reason.strip()),
            on_click=_send_kill,
            args=(feed,),
        )
        result = st.session_state.get(KILL_RESULT_KEY)
        if result:
            (st.success if result[0] == "ok" else st.error)(result[1])
