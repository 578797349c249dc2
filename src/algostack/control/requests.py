"""Parse Lambda events into one ``Request``: direct invocation, scheduled event, or Lambda's
on-success destination envelope. Stdlib only."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from algostack.core.sessions import new_york_date
from algostack.errors import DataError

FLAGS = ("dry_run", "force", "ignore_calendar")


@dataclass(frozen=True)
class Request:
    """What an invocation asks for, whatever shape its event had."""

    request_id: str
    at: datetime
    """When the run was meant to happen (the scheduled time, else now), aware UTC."""
    day: date
    """The New York trading day the run belongs to (the idempotency key's date)."""
    source: str = "direct"
    """``direct``, ``schedule`` or ``destination``."""
    dry_run: bool = False
    force: bool = False
    ignore_calendar: bool = False
    upstream: dict[str, Any] | None = field(default=None)
    """The ingest controller's result, when this invocation came through its destination."""

    def with_dry_run(self) -> Request:
        """The same request as a dry run."""
        return replace(self, dry_run=True)


def _flag(event: dict[str, Any], name: str) -> bool:
    value = event.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise DataError(f"event field {name!r} must be true or false, got {value!r}")


def _time(value: Any, what: str) -> datetime:
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise DataError(f"{what} is not an ISO 8601 time: {value!r}") from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _day(event: dict[str, Any], at: datetime) -> date:
    raw = event.get("trading_day")
    if raw is None:
        return new_york_date(at)
    try:
        return date.fromisoformat(str(raw))
    except ValueError as exc:
        raise DataError(f"event field 'trading_day' must be YYYY-MM-DD, got {raw!r}") from exc


def is_destination_envelope(event: dict[str, Any]) -> bool:
    """True for Lambda's destination payload (requestContext + requestPayload/responsePayload)."""
    return isinstance(event.get("requestContext"), dict) and (
        "responsePayload" in event or "requestPayload" in event
    )


def parse_event(event: Any, request_id: str, now: datetime) -> Request:
    """Turn any supported event into a ``Request``; raise ``DataError`` on a malformed one.

    Fields honoured (top level of a direct event, or of the original event inside a
    destination envelope): ``dry_run``, ``force``, ``ignore_calendar`` (booleans),
    ``trading_day`` (YYYY-MM-DD), and ``time`` of a scheduled event.
    """
    if event is None:
        event = {}
    if not isinstance(event, dict):
        raise DataError(f"the event must be a JSON object, got {type(event).__name__}")
    source = "direct"
    upstream: dict[str, Any] | None = None
    inner = event
    at = now
    if is_destination_envelope(event):
        ctx = event["requestContext"]
        condition = ctx.get("condition", "Success")
        if condition != "Success":
            raise DataError(
                f"destination envelope with condition {condition!r}: this controller is meant "
                "for the on-success destination only"
            )
        inner = event.get("requestPayload") or {}
        if not isinstance(inner, dict):
            raise DataError("destination envelope: requestPayload must be a JSON object")
        payload = event.get("responsePayload")
        if payload is not None and not isinstance(payload, dict):
            raise DataError("destination envelope: responsePayload must be a JSON object")
        upstream = payload
        source = "destination"
        if event.get("timestamp"):
            at = _time(event["timestamp"], "envelope timestamp")
    if inner.get("detail-type") == "Scheduled Event" and inner.get("time"):
        at = _time(inner["time"], "scheduled event time")
        source = "schedule" if source == "direct" else source
    flags = {name: _flag(inner, name) for name in FLAGS}
    day = _day(inner, at)
    if upstream and upstream.get("trading_day") and "trading_day" not in inner:
        day = _day({"trading_day": upstream["trading_day"]}, at)
    return Request(request_id=request_id, at=at, day=day, source=source, upstream=upstream, **flags)
