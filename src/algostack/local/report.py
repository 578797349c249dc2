"""The one-page run report: PNG charts (matplotlib, Agg) embedded in a single HTML file.

Charts: equity (PnL) per model with its trades marked, price per symbol with every fill,
and the decision-latency histogram. The HTML holds the summary tables too, so the file can
be mailed or opened offline; nothing is fetched from the network.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from algostack.core.market import NS_PER_S
from algostack.core.orders import Side
from algostack.core.sessions import NEW_YORK
from algostack.local.summary import ModelCurve, PricePoint, RunSummary

_DPI = 80


def _times(ts: Sequence[int]) -> list[datetime]:
    return [datetime.fromtimestamp(t / NS_PER_S, NEW_YORK).replace(tzinfo=None) for t in ts]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _figures(
    curves: Sequence[ModelCurve], prices: Mapping[str, Sequence[PricePoint]]
) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    fmt = mdates.DateFormatter("%H:%M")  # type: ignore[no-untyped-call]

    n = max(1, len(curves))
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.2 * n), squeeze=False, sharex=True)
    for ax, c in zip(axes[:, 0], curves, strict=False):
        if c.equity:
            ts, eq = zip(*c.equity, strict=True)
            ax.plot(_times(ts), eq, lw=1.0, color="#1f77b4")
            eq_at = dict(c.equity)
            for side, marker, color in ((Side.BUY, "^", "green"), (Side.SELL, "v", "red")):
                pts = [f for f in c.fills if f.side is side]
                if pts:
                    ax.scatter(
                        _times([f.ts for f in pts]),
                        [eq_at.get(f.ts, 0.0) for f in pts],
                        marker=marker,
                        color=color,
                        s=22,
                        zorder=3,
                        label=side.value,
                    )
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_title(f"{c.key}: PnL", fontsize=9, loc="left")
        ax.xaxis.set_major_formatter(fmt)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    out.append(("Equity per model (▲ buy, ▼ sell)", _png(fig)))
    plt.close(fig)

    syms = sorted(prices)
    if syms:
        fig, axes = plt.subplots(len(syms), 1, figsize=(9, 2.4 * len(syms)), squeeze=False)
        for ax, sym in zip(axes[:, 0], syms, strict=True):
            series = prices[sym]
            ax.plot(_times([p[0] for p in series]), [p[2] for p in series], lw=0.9, color="black")
            for c in curves:
                if c.symbol != sym:
                    continue
                for side, marker in ((Side.BUY, "^"), (Side.SELL, "v")):
                    pts = [f for f in c.fills if f.side is side]
                    if pts:
                        ax.scatter(
                            _times([f.ts for f in pts]),
                            [f.price for f in pts],
                            marker=marker,
                            s=20,
                            zorder=3,
                            label=f"{c.key} {side.value}",
                        )
            ax.set_title(f"{sym}: close and fills", fontsize=9, loc="left")
            ax.xaxis.set_major_formatter(fmt)
            ax.tick_params(labelsize=8)
            if any(c.symbol == sym and c.fills for c in curves):
                ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        out.append(("Price with fills", _png(fig)))
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 2.6))
    drawn = False
    for c in curves:
        if c.latencies_us:
            ax.hist(c.latencies_us, bins=40, alpha=0.5, label=c.key)
            drawn = True
    ax.set_xlabel("decision latency (µs)", fontsize=8)
    ax.tick_params(labelsize=8)
    if drawn:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no latency samples", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    out.append(("Decision latency", _png(fig)))
    plt.close(fig)
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r[c]))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1 else f"{v:,.2f}"
    return "-" if v is None else str(v)


def write_report(
    path: Path,
    summary: RunSummary,
    curves: Sequence[ModelCurve],
    prices: Mapping[str, Sequence[PricePoint]],
) -> Path:
    """Render the charts and write the one-page HTML report to ``path``; return it."""
    figures = _figures(curves, prices)
    data = summary.to_dict()
    imgs = "".join(
        f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
        f"src='data:image/png;base64,{b64}'/>"
        for title, b64 in figures
    )
    title = f"algostack {summary.mode} {summary.day} ({summary.run_id})"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:1em auto}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:2px 6px}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>source {html.escape(summary.source)}, {summary.bars:,} bars, {summary.wall_s:.1f} s wall,
{"<b>FAILED</b>" if summary.failed else "ok"}</p>
<h2>Models</h2>{_table(data["models"])}
<h2>Components</h2>{_table(data["components"])}
{imgs}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
