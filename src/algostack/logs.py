"""Structured logging: one JSON object per line, secrets redacted.

``setup_logging`` is called once by the CLI. Fields passed as ``extra={"fields": {...}}`` are
merged into the record. Anything that looks like an Alpaca key or a password is masked.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from typing import Any, TextIO

import orjson

_SECRET_RE = re.compile(
    r"(?i)(\"?(?:secret|password|passwd|token|key_id|api_key|apca-api-[a-z-]+)\"?\s*[:=]\s*\"?)"
    r"([^\s\",}]+)"
)
# Alpaca key ids: PK/AK + 18 upper-case alphanumerics; secrets are 40 chars of base64-ish text.
_ALPACA_KEY_RE = re.compile(r"\b(?:PK|AK|CK)[A-Z0-9]{16,20}\b")


def redact(text: str) -> str:
    """Mask secrets in ``text`` (key=value pairs and Alpaca key ids)."""
    text = _SECRET_RE.sub(lambda m: m.group(1) + "***", text)
    return _ALPACA_KEY_RE.sub("***", text)


class JsonFormatter(logging.Formatter):
    """Format records as one JSON line: ts, level, logger, msg, and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for k, v in fields.items():
                out[k] = redact(v) if isinstance(v, str) else v
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(out, default=str).decode()


class _StreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that says once, on one line, that its file cannot be written (a full
    disk) and drops its records from then on, instead of a traceback per record."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)
        elif not self.failed:
            self.failed = True
            name = getattr(self.stream, "name", "the log")
            with contextlib.suppress(OSError):  # stderr may be that very file
                sys.stderr.write(f"log not written from here on: {name}: {exc}\n")


def setup_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every algostack log record to ``stream`` (stderr) as JSON lines."""
    handler = _StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("algostack")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def truncate(data: bytes | str, limit: int = 200) -> str:
    """Render a payload for a log line: at most ``limit`` characters, marked when cut."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"
