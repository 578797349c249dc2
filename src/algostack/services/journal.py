"""Crash-safe journals: ``trades_<YYYY-MM-DD>.csv`` and ``live_trader.log``.

Each line is written with one ``os.write`` on a descriptor opened ``O_APPEND``, so a
``kill -9`` leaves whole lines only; ``fsync=True`` also fsyncs each line, and the live trader
(``fsync=False``) fsyncs the files at each commit instead. A trailing partial line left by an
older crash (or a torn write on power loss) is cut with a warning when the file is opened.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
import threading
import time
from pathlib import Path

from algostack.core.orders import Fill
from algostack.errors import DataError, FileWriteError
from algostack.logs import JsonFormatter

log = logging.getLogger(__name__)

LIVE_LOG_NAME = "live_trader.log"

COLUMNS: tuple[str, ...] = (
    "time",  # fill time, ISO 8601 UTC with microseconds
    "ts_ns",  # fill time, UTC nanoseconds since the epoch
    "model",  # model key
    "symbol",
    "side",  # buy | sell
    "qty",  # shares of this fill
    "price",  # fill price
    "client_order_id",  # deterministic id of the decision
    "broker_order_id",  # broker's id (sim-... for the simulated broker)
    "score",  # the model's ensemble score behind the decision
    "decision_latency_us",  # ingest receive (replay: bar handed over) -> decision, microseconds
    "commission",
    "position_after",  # signed shares held after this fill
    "realised_pnl",  # the model's realised PnL of the day after this fill (net)
    "reason",  # why: signal, flatten (also after a kill), adopted (an order it had no record of)
)
"""Columns of ``trades_<date>.csv``, in order (the header line)."""


def trades_file_name(day: str) -> str:
    """``trades_<YYYY-MM-DD>.csv``."""
    return f"trades_{day}.csv"


def repair_partial_tail(path: Path) -> int:
    """Cut a trailing partial line from ``path``; return the bytes removed (0 if none)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # Scan backwards for the last newline, in blocks.
        end, keep = size, 0
        while end > 0:
            start = max(0, end - 65536)
            fh.seek(start)
            block = fh.read(end - start)
            idx = block.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            end = start
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    removed = size - keep
    log.warning(
        "cut a partial last line from %s (%d bytes, left by an earlier crash)",
        path,
        removed,
        extra={"fields": {"file": str(path), "bytes_cut": removed}},
    )
    return removed


class JournalWriteError(FileWriteError):
    """A journal line could not be written (a full disk, a file-size limit, an I/O error);
    the file was cut back to its last whole line."""


def append_whole(fd: int, data: bytes | memoryview, path: Path) -> None:
    """Append ``data`` (whole lines) to ``fd`` (opened ``O_APPEND``) completely or not at all.

    A write that fails part-way (the disk filled up) is cut back on the spot, so the file
    keeps ending in a whole line; ``JournalWriteError`` names the path and the cause.
    """
    start = os.fstat(fd).st_size
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        os.ftruncate(fd, start)
        raise JournalWriteError(
            f"{path}: {exc.strerror or exc}: {len(view)} byte(s) not written; the file was cut "
            "back to its last whole line"
        ) from exc


class _AppendFile:
    """An ``O_APPEND`` descriptor: one ``os.write`` per whole line (then fsync, if asked)."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.repaired = repair_partial_tail(path)
        self.fsync = fsync
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def write_line(self, line: str) -> None:
        if "\n" in line.rstrip("\n"):
            raise ValueError("a journal line must not contain a newline")
        data = (line.rstrip("\n") + "\n").encode()
        with self._lock:
            if self._fd is None:
                raise DataError(f"{self.path} is closed")
            append_whole(self._fd, data, self.path)
            if self.fsync:
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class TradeJournal:
    """``<dir>/trades_<day>.csv``, appended one line per fill (fsynced when ``fsync``)."""

    def __init__(self, dir: Path, day: str, *, fsync: bool = True) -> None:
        self.path = Path(dir) / trades_file_name(day)
        self.day = day
        existed = self.path.exists() and self.path.stat().st_size > 0
        self._file = _AppendFile(self.path, fsync=fsync)
        header = _csv_line(COLUMNS)
        if existed and self.path.stat().st_size > 0:
            with open(self.path, encoding="utf-8") as fh:
                first = fh.readline().rstrip("\r\n")
            if first != header:
                self._file.close()
                raise DataError(
                    f"{self.path} has header {first[:120]!r}, expected {header!r}: "
                    "move the old file away rather than mixing columns"
                )
        else:
            self._file.write_line(header)
        self.rows = 0

    def append(
        self,
        fill: Fill,
        *,
        score: float,
        latency_us: float,
        position_after: int,
        realised_pnl: float,
        reason: str = "",
    ) -> None:
        """Append one fill (one ``os.write`` of a whole line, then fsync when ``fsync``)."""
        secs, ns = divmod(fill.ts, 1_000_000_000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns // 1000:06d}Z"
        row = (
            stamp,
            str(fill.ts),
            fill.model,
            fill.symbol,
            fill.side.value,
            str(fill.qty),
            f"{fill.price:.6f}",
            fill.client_order_id,
            fill.broker_order_id,
            f"{score:.6f}",
            f"{latency_us:.1f}",
            f"{fill.commission:.4f}",
            str(position_after),
            f"{realised_pnl:.4f}",
            reason,
        )
        self._file.write_line(_csv_line(row))
        self.rows += 1

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> TradeJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _csv_line(values: tuple[str, ...]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().rstrip("\n")


class FsyncLineHandler(logging.Handler):
    """A logging handler that appends one JSON line per record (fsynced when ``fsync``)."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        super().__init__()
        self.path = path
        self._file = _AppendFile(path, fsync=fsync)
        self.failed = False
        """A write failed: later records are dropped (the cause was said once)."""
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record as one line; a file it cannot write (a full disk) is said once,
        in one line on stderr, and its records are dropped (never a traceback per record)."""
        try:
            # JsonFormatter escapes newlines inside strings, so a record is one line.
            self._file.write_line(self.format(record))
        except JournalWriteError as exc:  # logging must never take the trader down
            if not self.failed:
                self.failed = True
                sys.stderr.write(f"live log not written from here on: {exc}\n")
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Close the file."""
        self._file.close()
        super().close()


def open_live_log(dir: Path, *, fsync: bool = True) -> logging.Handler:
    """Open ``<dir>/live_trader.log`` as a JSON-lines handler (attach it to a logger)."""
    return FsyncLineHandler(Path(dir) / LIVE_LOG_NAME, fsync=fsync)
