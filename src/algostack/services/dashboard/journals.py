"""Read the day's journals (and the list of models) from the bucket for the dashboard.

Layout (DESIGN.md 3.1): ``models/<type>/<symbol>/<model_id>/live/<YYYY-MM-DD>/trades_<day>.csv``
and ``live_trader.log`` beside it. Columns are read by name and unknown ones ignored, so the
journal can grow columns without breaking the dashboard; a row without a usable time,
quantity or price is counted as skipped, never fatal.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from algostack.adapters.storage import BucketStore
from algostack.core.naming import group_models, model_key
from algostack.errors import DataError
from algostack.services.dashboard.state import DashboardState, TradeRow, normalize_trade

_LIVE_RE = re.compile(
    r"^models/([^/]+)/([^/]+)/([^/]+)/live/(\d{4}-\d{2}-\d{2})/"
    r"(trades_\d{4}-\d{2}-\d{2}\.csv|live_trader\.log)$"
)
LOG_TAIL_LINES = 50


@dataclass
class ModelJournal:
    """One model's journal for one day."""

    key: str
    symbol: str
    trades: list[TradeRow] = field(default_factory=list)
    skipped_rows: int = 0
    log_tail: list[str] = field(default_factory=list)


@dataclass
class JournalScan:
    """What one pass over the bucket found."""

    models: dict[str, str] = field(default_factory=dict)
    """Every model in the bucket (artifact grammar), key -> symbol."""
    journals: dict[str, ModelJournal] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def parse_trades_csv(data: bytes, symbol: str) -> tuple[list[TradeRow], int]:
    """Parse a trades CSV; return the rows and how many were skipped as unusable."""
    text = data.decode("utf-8", "replace")
    rows: list[TradeRow] = []
    skipped = 0
    for rec in csv.DictReader(io.StringIO(text)):
        fields = {str(k).strip().lower(): v for k, v in rec.items() if k is not None}
        fields.setdefault("symbol", symbol)
        if not fields.get("symbol"):
            fields["symbol"] = symbol
        row = normalize_trade(fields, source="journal")
        if row is None:
            skipped += 1
        else:
            rows.append(row)
    return rows, skipped


def scan_bucket(store: BucketStore, day: str) -> JournalScan:
    """List models and read every journal of ``day`` (YYYY-MM-DD) in ``store``."""
    scan = JournalScan()
    keys = list(store.list_keys("models/"))
    models, _ignored = group_models(keys)
    for spec in models:
        scan.models[spec.key] = spec.symbol
    for key in keys:
        m = _LIVE_RE.match(key)
        if m is None or m.group(4) != day:
            continue
        mtype, symbol, model_id, _day, name = m.groups()
        mkey = model_key(mtype, symbol, model_id)
        journal = scan.journals.setdefault(mkey, ModelJournal(mkey, symbol))
        try:
            data = store.get_bytes(key)
        except DataError as exc:  # deleted between list and get: report, keep going
            scan.errors.append(str(exc))
            continue
        if name.endswith(".csv"):
            journal.trades, journal.skipped_rows = parse_trades_csv(data, symbol)
        else:
            lines = data.decode("utf-8", "replace").splitlines()
            journal.log_tail = lines[-LOG_TAIL_LINES:]
    return scan


def apply_scan(state: DashboardState, scan: JournalScan) -> None:
    """Register every model and merge every journal into ``state``."""
    for key, symbol in scan.models.items():
        state.register_model(key, symbol)
    for j in scan.journals.values():
        state.load_journal(j.key, j.symbol, j.trades, j.log_tail)
        if j.skipped_rows:
            state.count_ignored(j.skipped_rows)
