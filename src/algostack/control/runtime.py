"""The controllers' seams: AWS clients, the time budget, clock and sleep. Stdlib + boto3 only."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from algostack.core.backoff import Backoff, retry_sync

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], None]

# Stop this long before Lambda kills us, so the failure is ours (clear) and not a timeout.
DEFAULT_SAFETY_MARGIN_S = 20.0


class LambdaContext(Protocol):
    """The part of the Lambda context object the handlers use."""

    aws_request_id: str

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until Lambda stops the invocation."""
        ...


@dataclass(frozen=True)
class Clients:
    """The boto3 clients every controller receives (the one seam for AWS)."""

    ec2: Any
    ssm: Any
    s3: Any = None

    @classmethod
    def from_boto3(cls, region: str | None = None, session: Any = None) -> Clients:
        """Build clients from the default credential chain (``AWS_ENDPOINT_URL`` honoured)."""
        import boto3
        from botocore.config import Config

        # Standard retries (throttling, 5xx); attempts follow AWS_MAX_ATTEMPTS (default 3).
        cfg = Config(
            retries={"mode": "standard"},
            connect_timeout=10,
            read_timeout=30,
            max_pool_connections=32,
        )
        sess = session or boto3.session.Session(region_name=region)
        return cls(
            ec2=sess.client("ec2", config=cfg),
            ssm=sess.client("ssm", config=cfg),
            s3=sess.client("s3", config=cfg),
        )


@dataclass
class Deadline:
    """A point in ``clock`` time after which no work may start; every wait is bounded by it."""

    end: float
    clock: Clock = field(default=time.monotonic)

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> Deadline:
        """A deadline ``seconds`` from now."""
        return cls(clock() + seconds, clock)

    @classmethod
    def from_context(
        cls,
        context: LambdaContext,
        *,
        margin_s: float = DEFAULT_SAFETY_MARGIN_S,
        clock: Clock = time.monotonic,
    ) -> Deadline:
        """The Lambda's remaining time minus a safety margin."""
        remaining = context.get_remaining_time_in_millis() / 1000.0
        return cls(clock() + max(0.0, remaining - margin_s), clock)

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.end - self.clock())

    def expired(self) -> bool:
        """True when no time is left."""
        return self.remaining() <= 0.0

    def reserve(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` earlier (time kept back for a later step)."""
        return Deadline(self.end - seconds, self.clock)


@dataclass(frozen=True)
class Runtime:
    """Clock and sleep, injected so tests never sleep for real."""

    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    wall: Clock = time.time
    """Wall-clock seconds since the epoch (records, dates); ``clock`` is for intervals."""


def retry(
    fn: Callable[[], T],
    *,
    deadline: Deadline,
    runtime: Runtime,
    backoff: Backoff,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """``core.backoff.retry_sync`` until ``deadline``, waiting through ``runtime``: no wait
    starts that would end past it."""
    return retry_sync(
        fn,
        backoff=backoff,
        deadline_s=deadline.remaining(),
        on_retry=on_retry,
        sleep=runtime.sleep,
        clock=runtime.clock,
    )
