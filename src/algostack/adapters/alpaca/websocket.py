"""Opening one of Alpaca's websockets (market data or ``trade_updates``): the connect both
streams make, with the server's refusals mapped to the error hierarchy."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from algostack.core.backoff import Backoff
from algostack.errors import AuthError, RetryableError

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection


async def connect_ws(
    url: str,
    *,
    timeout_s: float,
    max_size: int,
    refused: str,
    headers: dict[str, str] | None = None,
    max_queue: int | None = 16,
) -> ClientConnection:
    """Open ``url`` (no compression, 2 s close); an HTTP 401/403 to the upgrade is an
    ``AuthError`` saying ``refused``, any other refusal or a timeout a ``RetryableError``."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    try:
        return await connect(
            url,
            additional_headers=headers,
            open_timeout=timeout_s,
            max_size=max_size,
            max_queue=max_queue,
            close_timeout=2.0,
            compression=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise AuthError(f"{refused} (HTTP {status})") from None
        raise RetryableError(f"stream upgrade answered HTTP {status}") from None


async def close_quietly(ws: ClientConnection | None) -> None:
    """Close ``ws`` if there is one; closing a broken socket may fail, it is gone either way."""
    if ws is not None:
        with contextlib.suppress(Exception):
            await ws.close()


def reconnect_delay(
    backoff: Backoff, lasted_s: float, *, stable_after_s: float, at_least_s: float = 0.0
) -> float:
    """The wait before the next connect: a connection that lasted ``stable_after_s`` starts
    the backoff over; never less than ``at_least_s`` (what the server asked for)."""
    if lasted_s >= stable_after_s:
        backoff.reset()
    return max(backoff.next_delay(), at_least_s)
