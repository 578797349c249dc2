"""Errors the controllers raise. Each message says what failed and what to do.

Subclasses of ``algostack.errors``; a Lambda that raises one fails, so its on-success
destination does not fire. ``PendingError`` never leaves a controller: it is how a poll
tells ``core.backoff.retry_sync`` to look again.
"""

from __future__ import annotations

import json
from typing import Any

from algostack.errors import ConfigError, FatalError, RetryableError

__all__ = [
    "CapacityError",
    "ConfigError",
    "ControlError",
    "FleetError",
    "InstanceNotFoundError",
    "InstanceStateError",
    "PendingError",
]


class ControlError(FatalError):
    """A controller step failed; ``report`` holds the per-instance details (JSON-safe).

    Fatal: the step already retried and waited for what it could within its deadline, so
    running it again at once would fail the same way; the message says what to fix.
    """

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report: dict[str, Any] = report or {}


class InstanceNotFoundError(FatalError):
    """No instance (or more than one, where exactly one is needed) matches a Name tag."""


class InstanceStateError(ControlError):
    """An instance cannot reach the needed state (terminated, fell back to stopped, impaired)."""


class CapacityError(RetryableError):
    """AWS has no capacity for the instance type now (``InsufficientInstanceCapacity``)."""


class PendingError(RetryableError):
    """What a poll waits for is not there yet (instances booting, commands running): poll
    again after a backoff, until the deadline."""


class FleetError(ControlError):
    """Some instances failed; the message carries a compact per-instance summary."""

    @classmethod
    def from_report(cls, headline: str, report: dict[str, Any]) -> FleetError:
        """Build the error with the failed instances summarised in the message."""
        failed = {
            iid: {k: v for k, v in item.items() if k in ("name", "status", "error", "exit_code")}
            for iid, item in report.get("instances", {}).items()
            if not item.get("ok", False)
        }
        return cls(f"{headline}: {json.dumps(failed, sort_keys=True)}", report)
