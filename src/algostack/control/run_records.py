"""Idempotency records in SSM Parameter Store: one run per environment, day and component.

Key: ``<ALGOSTACK_STATE_PREFIX>/<YYYY-MM-DD>/<component>`` (default prefix
``/algostack/<env>/runs``); value: JSON ``{"status", "request_id", "started_at",
"updated_at", "detail"}``. ``PutParameter(Overwrite=False)`` is the lock: exactly one
invocation creates the record. Stdlib + boto3 only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from botocore.exceptions import ClientError

from algostack.control.ec2 import error_code

log = logging.getLogger("algostack.control.run_records")

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
# Lambda's maximum timeout plus a margin: a 'running' record older than this belongs to an
# invocation that Lambda has already killed, so it can be taken over.
STALE_AFTER_S = 900.0 + 60.0


@dataclass(frozen=True)
class RunRecord:
    """One idempotency record."""

    status: str
    request_id: str
    started_at: float
    updated_at: float
    detail: str = ""

    def to_json(self) -> str:
        """Serialise for Parameter Store (well under the 4 KB standard-tier limit)."""
        return json.dumps(
            {
                "status": self.status,
                "request_id": self.request_id,
                "started_at": _iso(self.started_at),
                "updated_at": _iso(self.updated_at),
                "detail": self.detail[:1000],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """Parse a stored record; an unreadable one reads as a failed run (safe to take over)."""
        try:
            data = json.loads(text)
            return cls(
                status=str(data["status"]),
                request_id=str(data.get("request_id", "")),
                started_at=_epoch(data.get("started_at")),
                updated_at=_epoch(data.get("updated_at")),
                detail=str(data.get("detail", "")),
            )
        except (ValueError, KeyError, TypeError):
            return cls(FAILED, "", 0.0, 0.0, f"unreadable record: {text[:200]!r}")

    def summary(self) -> dict[str, Any]:
        """A JSON-safe view."""
        return json.loads(self.to_json())  # type: ignore[no-any-return]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _epoch(value: Any) -> float:
    if not value:
        return 0.0
    return datetime.fromisoformat(str(value)).timestamp()


@dataclass(frozen=True)
class Claim:
    """The answer of ``RunState.claim``: go ahead (``acquired``) or why not."""

    acquired: bool
    reason: str
    key: str
    existing: RunRecord | None = None

    def summary(self) -> dict[str, Any]:
        """A JSON-safe view."""
        return {
            "key": self.key,
            "acquired": self.acquired,
            "reason": self.reason,
            "existing": self.existing.summary() if self.existing else None,
        }


class RunState:
    """Create, read and finish the idempotency records of one environment."""

    def __init__(self, ssm: Any, prefix: str, *, stale_after_s: float = STALE_AFTER_S) -> None:
        self._ssm = ssm
        self._prefix = prefix.rstrip("/")
        self._stale_after_s = stale_after_s

    def key(self, day: date, component: str) -> str:
        """The parameter name of ``component``'s run on ``day``."""
        return f"{self._prefix}/{day.isoformat()}/{component}"

    def read(self, day: date, component: str) -> RunRecord | None:
        """The record, or ``None`` when there is none."""
        try:
            resp = self._ssm.get_parameter(Name=self.key(day, component))
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise
        return RunRecord.from_json(str(resp["Parameter"]["Value"]))

    def check(self, day: date, component: str, request_id: str, now: float) -> Claim:
        """What ``claim`` would answer, without writing anything (dry run)."""
        key = self.key(day, component)
        existing = self.read(day, component)
        if existing is None:
            return Claim(True, "no earlier run", key)
        return self._judge(key, existing, request_id, now)

    def _judge(self, key: str, existing: RunRecord, request_id: str, now: float) -> Claim:
        if existing.status == SUCCEEDED:
            return Claim(False, "already succeeded", key, existing)
        if existing.status == RUNNING:
            if existing.request_id == request_id:
                return Claim(True, "retry of the same request (Lambda async retry)", key, existing)
            age = now - existing.updated_at
            if age <= self._stale_after_s:
                return Claim(False, f"already running (for {age:.0f} s)", key, existing)
            return Claim(True, f"took over a stale run ({age:.0f} s old)", key, existing)
        return Claim(True, f"earlier run {existing.status}: running again", key, existing)

    def claim(
        self, day: date, component: str, request_id: str, now: float, *, force: bool = False
    ) -> Claim:
        """Create the 'running' record, or say why this invocation must not run.

        ``force`` overwrites any record. Taking over (stale, failed, same request) overwrites
        and re-reads the record to make sure this invocation won the write.
        """
        key = self.key(day, component)
        record = RunRecord(RUNNING, request_id, now, now)
        if force:
            self._put(key, record, overwrite=True)
            return Claim(True, "forced", key)
        try:
            self._put(key, record, overwrite=False)
            return Claim(True, "no earlier run", key)
        except ClientError as exc:
            if error_code(exc) != "ParameterAlreadyExists":
                raise
        existing = self.read(day, component)
        if existing is None:  # deleted in between: try the lock once more
            return self.claim(day, component, request_id, now)
        verdict = self._judge(key, existing, request_id, now)
        if not verdict.acquired:
            return verdict
        self._put(key, record, overwrite=True)
        again = self.read(day, component)
        if again is None or again.request_id != request_id:
            return Claim(False, "another invocation took the run over first", key, again)
        return verdict

    def finish(
        self, day: date, component: str, request_id: str, now: float, status: str, detail: str
    ) -> None:
        """Mark the run finished (``succeeded`` or ``failed``), keeping its start time."""
        existing = self.read(day, component)
        started = existing.started_at if existing else now
        record = RunRecord(status, request_id, started, now, detail)
        self._put(self.key(day, component), record, overwrite=True)

    def _put(self, key: str, record: RunRecord, *, overwrite: bool) -> None:
        self._ssm.put_parameter(
            Name=key,
            Value=record.to_json(),
            Type="String",
            Overwrite=overwrite,
            Description="algostack controller run record (idempotency)",
        )
