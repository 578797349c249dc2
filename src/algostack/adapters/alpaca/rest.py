"""One HTTP session for Alpaca's REST APIs (aiohttp, on the event loop): the trading client
and the historical bars both call ``RestSession.call``; network failures become
``RetryableError`` and each caller maps the HTTP statuses its API defines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from algostack.errors import RetryableError

if TYPE_CHECKING:
    import aiohttp


class Reply(msgspec.Struct, frozen=True):
    """An HTTP answer: status, raw body, and ``Retry-After`` in seconds when given."""

    status: int
    body: bytes
    retry_after: float | None = None


def retry_after_s(header: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds form); None when absent or not a number."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None


class RestSession:
    """Keep-alive aiohttp session with Alpaca's key headers (opened on first use)."""

    def __init__(self, base_url: str, key_id: str, secret_key: str, *, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key}
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes | None = None,
        what: str,
    ) -> Reply:
        """One request to ``base_url + path``; ``RetryableError`` naming ``what`` when no
        answer came (refused, reset, timed out)."""
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=aiohttp.ClientTimeout(total=self._timeout_s)
            )
        headers: Any = {"Content-Type": "application/json"} if body is not None else None
        try:
            async with self._session.request(
                method, self.base_url + path, params=params, data=body, headers=headers
            ) as resp:
                return Reply(
                    resp.status, await resp.read(), retry_after_s(resp.headers.get("Retry-After"))
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableError(f"{what} failed: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close the session (a later call opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
