"""Read the day's journals (and the list of models) for the dashboard.

Two sources, same result (a ``JournalScan``):

- the bucket (DESIGN.md 3.1): ``models/<type>/<symbol>/<model_id>/live/<YYYY-MM-DD>/``
  holding ``trades_<day>.csv`` and ``live_trader.log``; its artifact keys list the models;
- a live journal root (``algostack run``: ``<home>/journals/<run id>``): one directory per
  model key, as ``algostack trade --journal-dir`` writes it, with ``trades_<day>.csv`` files
  and ``live_trader.log``. It is read while the traders write it, so the dashboard shows every
  trade of the session before the final sync, even those made before it connected to NATS.
 Columns are read by name and unknown ones ignored, so the
journal can grow columns without breaking the dashboard; a row without a usable time,
quantity or price is counted as skipped, never fatal.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from algostack.adapters.storage import BucketStore
from algostack.core.naming import group_models, model_key
from algostack.errors import DataError
from algostack.services.dashboard.aggregate import DashboardState, TradeRow, normalize_trade

_LIVE_RE = re.compile(
    r"^models/([^/]+)/([^/]+)/([^/]+)/live/(\d{4}-\d{2}-\d{2})/"
    r"(trades_\d{4}-\d{2}-\d{2}\.csv|live_trader\.log)$"
)
_MODEL_DIR_RE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_TRADES_RE = re.compile(r"^trades_\d{4}-\d{2}-\d{2}\.csv$")
LOG_TAIL_LINES = 50
LOG_TAIL_BYTES = 64 * 1024
"""Read at most this much of the end of a local ``live_trader.log`` per scan."""


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


def _read_tail(path: Path, max_bytes: int = LOG_TAIL_BYTES) -> list[str]:
    """The last ``LOG_TAIL_LINES`` complete lines of a text file (at most ``max_bytes`` read)."""
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - max_bytes))
        data = f.read(max_bytes)
    lines = data.decode("utf-8", "replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line was cut by the seek
    return lines[-LOG_TAIL_LINES:]


def scan_journal_dir(root: Path) -> JournalScan:
    """Read every model's journals under a live journal root (``<root>/<model key>/``).

    Every ``trades_<day>.csv`` of a model is read (a run's root holds one session); a model's
    symbol comes from its rows (the trader's heartbeats fill it in otherwise). A missing root
    is an empty scan: the traders create it when they start.
    """
    scan = JournalScan()
    try:
        mdirs = sorted(p for p in root.iterdir() if p.is_dir())
    except FileNotFoundError:
        return scan
    except OSError as exc:
        scan.errors.append(f"cannot list {root}: {exc}")
        return scan
    for mdir in mdirs:
        if not _MODEL_DIR_RE.match(mdir.name):
            scan.errors.append(f"ignored journal directory {mdir.name!r}: not a model key")
            continue
        journal = ModelJournal(mdir.name, "")
        try:
            for csv_path in sorted(p for p in mdir.iterdir() if _TRADES_RE.match(p.name)):
                rows, skipped = parse_trades_csv(csv_path.read_bytes(), "")
                journal.trades.extend(rows)
                journal.skipped_rows += skipped
            log_path = mdir / "live_trader.log"
            if log_path.is_file():
                journal.log_tail = _read_tail(log_path)
        except OSError as exc:  # a file rotated away between listing and reading
            scan.errors.append(f"{mdir.name}: {exc}")
            continue
        journal.symbol = next((t.symbol for t in journal.trades if t.symbol), "")
        scan.journals[mdir.name] = journal
    return scan


def apply_scan(state: DashboardState, scan: JournalScan) -> None:
    """Register every model and merge every journal into ``state``."""
    for key, symbol in scan.models.items():
        state.register_model(key, symbol)
    for j in scan.journals.values():
        state.load_journal(j.key, j.symbol, j.trades, j.log_tail)
        if j.skipped_rows:
            state.count_ignored(j.skipped_rows)
