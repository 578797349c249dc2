"""Upload a trader's journals to its model's live prefix, idempotently.

What the trading host runs every 15 minutes (and once more, ``final``, at shutdown): every
``trades_*.csv`` and ``live_trader.log`` in the journal directory goes to
``<model prefix>/live/<YYYY-MM-DD>/<name>`` when its size or MD5 differs from the stored
object; a second run with nothing new uploads nothing. Only whole lines are uploaded (a line
being appended while we read is left for the next run).

A file that cannot be stored (a full disk under a local bucket, a lost connection to S3)
does not stop the others: every file is tried, temporary files are removed, and then
``SyncIncompleteError`` names each file that was not stored and why, on one line (a final
sync with a failure writes no ``manifest.json``: the day is not complete in the bucket).

Where the store's ETag is not an MD5 (S3 with SSE-KMS), a small state file in the journal
directory remembers which local MD5 produced which remote (size, ETag), so unchanged files
are still recognised.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from algostack.adapters.storage import BucketStore, md5_hex
from algostack.core.atomic_file import os_error_text, replace_file
from algostack.errors import ConfigError, FatalError, FileWriteError, RetryableError

log = logging.getLogger(__name__)

STATE_FILE = ".sync-state.json"
LOCK_FILE = ".sync.lock"
MANIFEST = "manifest.json"
_JOURNAL_RE = re.compile(r"^(trades_\d{4}-\d{2}-\d{2}\.csv|live_trader\.log)$")
_DATED_RE = re.compile(r"^(?:trades|decisions)_(\d{4}-\d{2}-\d{2})\.csv$")


def journal_day(journal_dir: Path) -> str | None:
    """The newest session day the trader journaled (its ``decisions_``/``trades_<day>.csv``),
    or None when it has journaled none. The day a sync files under is the session's, not the
    wall clock's: a final sync that runs after midnight still completes the right day."""
    try:
        names = [p.name for p in Path(journal_dir).iterdir()]
    except OSError:
        return None
    days = [m.group(1) for m in map(_DATED_RE.match, names) if m]
    return max(days) if days else None


@dataclass
class SyncReport:
    """Keys uploaded, keys found unchanged and keys that failed, in name order."""

    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    """Key -> why it was not stored (one line naming the file and the error)."""


class SyncIncompleteError(FatalError):
    """Some journal files were not stored (every other one was); ``report`` tells which."""

    def __init__(self, message: str, report: SyncReport) -> None:
        super().__init__(message)
        self.report = report


def journal_files(journal_dir: Path, day: str | None = None) -> list[Path]:
    """The files to sync: ``live_trader.log`` and ``trades_*.csv`` (only ``day``'s when set)."""
    if not journal_dir.is_dir():
        raise ConfigError(f"journal directory {journal_dir} does not exist")
    out = []
    for p in sorted(journal_dir.iterdir()):
        if not p.is_file() or not _JOURNAL_RE.match(p.name):
            continue
        if day is not None and p.name.startswith("trades_") and p.name != f"trades_{day}.csv":
            continue
        out.append(p)
    return out


def _whole_lines(path: Path) -> bytes:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    return data


def _load_state(journal_dir: Path) -> dict[str, list[object]]:
    try:
        raw = json.loads((journal_dir / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


@contextlib.contextmanager
def _exclusive(journal_dir: Path) -> Iterator[None]:
    with (journal_dir / LOCK_FILE).open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _save_state(journal_dir: Path, state: dict[str, list[object]]) -> None:
    replace_file(journal_dir / STATE_FILE, json.dumps(state, sort_keys=True).encode())


def sync_journals(
    journal_dir: Path,
    store: BucketStore,
    live_prefix: str,
    *,
    day: str | None = None,
    final: bool = False,
) -> SyncReport:
    """Upload changed journal files under ``live_prefix``; return what was done.

    ``final`` also writes ``manifest.json`` (name, size, MD5 of every file) so a reader knows
    the day is complete; it is deterministic, so a repeated final sync uploads nothing.
    A file that fails (``FileWriteError``, ``RetryableError``, a journal it cannot read) is
    recorded and the rest are tried; then ``SyncIncompleteError`` (carrying the report) names
    every failure, and a final sync leaves the manifest out.
    """
    journal_dir = Path(journal_dir)
    prefix = live_prefix.rstrip("/")
    if not prefix or prefix.startswith("/"):
        raise ConfigError(f"invalid live prefix {live_prefix!r}")
    report = SyncReport()
    manifest: dict[str, dict[str, object]] = {}
    # One sync at a time per journal: the timer's run and the trader's final sync on stop can
    # overlap (seen on the emulated AWS day: the state file's replace raced).
    files = journal_files(journal_dir, day)
    with _exclusive(journal_dir):
        state = _load_state(journal_dir)
        for path in files:
            key = f"{prefix}/{path.name}"
            try:
                data = _whole_lines(path)
            except OSError as exc:
                report.failed[key] = f"cannot read {path}: {os_error_text(exc)}"
                continue
            digest = md5_hex(data)
            manifest[path.name] = {"size": len(data), "md5": digest}
            _put_if_changed(store, key, data, digest, state, report)
        if final and not report.failed:
            body = json.dumps({"files": manifest}, sort_keys=True, indent=1).encode() + b"\n"
            _put_if_changed(store, f"{prefix}/{MANIFEST}", body, md5_hex(body), state, report)
        try:
            _save_state(journal_dir, state)
        except FileWriteError as exc:  # it only spares re-uploads: the next sync sends more
            log.warning("sync state not saved: %s", exc)
    if report.failed:
        tried = len(report.failed) + len(report.uploaded) + len(report.unchanged)
        raise SyncIncompleteError(
            f"{len(report.failed)} of {tried} file(s) not synced to {store.url}/{prefix}"
            + (f" ({MANIFEST} not written)" if final else "")
            + ": "
            + "; ".join(report.failed.values()),
            report,
        )
    log.info(
        "synced %d file(s) to %s/%s (%d unchanged)",
        len(report.uploaded),
        store.url,
        prefix,
        len(report.unchanged),
        extra={"fields": {"uploaded": report.uploaded, "bytes": report.bytes_uploaded}},
    )
    return report


def _put_if_changed(
    store: BucketStore,
    key: str,
    data: bytes,
    digest: str,
    state: dict[str, list[object]],
    report: SyncReport,
) -> None:
    remote = store.stat(key)
    if remote is not None and remote.size == len(data):
        remembered = state.get(key)
        if remote.md5 == digest or remembered == [digest, remote.size, remote.md5]:
            report.unchanged.append(key)
            return
    try:
        store.put_bytes(key, data)
    except (FileWriteError, RetryableError) as exc:
        report.failed[key] = str(exc)
        return
    after = store.stat(key)
    if after is not None:
        state[key] = [digest, after.size, after.md5]
    report.uploaded.append(key)
    report.bytes_uploaded += len(data)
