"""The one-page HTML report: three charts embedded as PNG, tables escaped, no network."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from algostack.core.market import NS_PER_MIN
from algostack.core.orders import Fill, Side
from algostack.local.report import write_report
from algostack.local.summary import ComponentSummary, RunSummary, summarize_model

T0 = 1_710_509_400 * 1_000_000_000


def test_write_report_embeds_three_pngs_and_escapes(tmp_path: Path) -> None:
    prices = [(T0 + i * NS_PER_MIN, 100.0 + i, 100.5 + i) for i in range(30)]
    fills = [
        Fill(client_order_id="a", broker_order_id="1", model="m", symbol="AAPL", side=Side.BUY,
             qty=5, price=101.0, ts=T0 + NS_PER_MIN),
        Fill(client_order_id="b", broker_order_id="2", model="m", symbol="AAPL", side=Side.SELL,
             qty=5, price=110.0, ts=T0 + 10 * NS_PER_MIN),
    ]  # fmt: skip
    s, curve = summarize_model("<m>", "models/x/AAPL/m_1", "AAPL", fills, prices, [10.0, 20.0])
    summary = RunSummary(
        mode="replay", run_id="r<1>", day="2024-03-15", source="bars.csv", wall_s=0.1,
        bars=30, models=[s], components=[ComponentSummary("ingest", "ingest", "ok", 0, 0, 0)],
    )  # fmt: skip
    path = write_report(tmp_path / "sub" / "report.html", summary, [curve], {"AAPL": prices})
    page = path.read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 3
    assert all(base64.b64decode(b).startswith(b"\x89PNG") for b in images)
    assert "r&lt;1&gt;" in page and "<m>" not in page  # names are escaped
    assert "http://" not in page and "https://" not in page  # nothing fetched


def test_write_report_without_fills_or_latency_still_renders(tmp_path: Path) -> None:
    s, curve = summarize_model("m", "models/x/AAPL/m_1", "AAPL", [], [])
    summary = RunSummary(mode="run", run_id="r", day="2024-03-15", source="synthetic",
                         wall_s=0.0, bars=0, models=[s], interrupted=True)  # fmt: skip
    page = write_report(tmp_path / "r.html", summary, [curve], {}).read_text()
    assert page.count("data:image/png;base64,") == 2  # equity + latency; no prices to draw
    assert "FAILED" in page
