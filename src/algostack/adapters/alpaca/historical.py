"""The historical-bars seam: fetch the minute bars a stream gap missed.

``HistoricalBars`` is the one interface the stream adapter calls; ``AlpacaHistoricalBars``
implements it with Alpaca's REST route ``GET /v2/stocks/bars`` (aiohttp, page_token
pagination). Tests inject a fake or point ``base_url`` at ``FakeAlpacaServer.rest_url``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from algostack.adapters.alpaca.rest import RestSession
from algostack.adapters.alpaca.wire import BarKeys, bar_from, ns_to_rfc3339
from algostack.core.market import Bar
from algostack.errors import AuthError, ConfigError, DataError, FatalError, RetryableError
from algostack.logs import truncate

DEFAULT_DATA_URL = "https://data.alpaca.markets"
PAGE_LIMIT = 10_000


class HistoricalBars(Protocol):
    """Where the stream adapter gets minute bars for a gap."""

    async def minute_bars(self, symbols: Sequence[str], start_ns: int, end_ns: int) -> list[Bar]:
        """Return the 1-minute bars of ``symbols`` with ``start_ns <= ts < end_ns``."""
        ...


class _BarsPage(msgspec.Struct, frozen=True):
    bars: dict[str, list[BarKeys]] | None = None
    next_page_token: str | None = None


_PAGE = msgspec.json.Decoder(_BarsPage)


def parse_bars_page(body: bytes) -> tuple[list[Bar], str | None]:
    """Parse one ``/v2/stocks/bars`` reply into core bars and the next page token."""
    try:
        page = _PAGE.decode(body)
        bars = [bar_from(Bar, sym, b) for sym, rows in (page.bars or {}).items() for b in rows]
    except (msgspec.MsgspecError, ValueError) as exc:
        raise DataError(f"malformed historical bars reply ({exc}): {truncate(body)}") from exc
    return bars, page.next_page_token or None


class AlpacaHistoricalBars:
    """Alpaca's historical bars REST endpoint behind the ``HistoricalBars`` seam."""

    def __init__(
        self,
        key_id: str,
        secret_key: str,
        base_url: str = DEFAULT_DATA_URL,
        feed: str = "iex",
        *,
        timeout_s: float = 10.0,
        max_pages: int = 100,
        page_limit: int = PAGE_LIMIT,
    ) -> None:
        """Keep the credentials; the HTTP session opens on first use."""
        if not key_id or not secret_key:
            raise ConfigError("missing Alpaca keys: set APCA_API_KEY_ID and APCA_API_SECRET_KEY")
        self._rest = RestSession(
            base_url.rstrip("/") + "/v2", key_id, secret_key, timeout_s=timeout_s
        )
        # The test stream's symbol has no history; asking with feed=test is a 4xx.
        self._feed = "iex" if feed == "test" else feed
        self._max_pages = max_pages
        self._page_limit = page_limit
        self.requests = 0

    async def minute_bars(self, symbols: Sequence[str], start_ns: int, end_ns: int) -> list[Bar]:
        """Fetch every page of 1-minute bars in ``[start_ns, end_ns)``, sorted by time.

        Raises ``RetryableError`` on 429/5xx/network failures (``retry_after`` from the
        reply when given), ``AuthError`` on 401/403, ``DataError`` on a malformed reply.
        """
        if not symbols or end_ns <= start_ns:
            return []
        params = {
            "symbols": ",".join(symbols),
            "timeframe": "1Min",
            "start": ns_to_rfc3339(start_ns),
            # Alpaca's end is inclusive; one nanosecond less makes the range half-open.
            "end": ns_to_rfc3339(end_ns - 1),
            "feed": self._feed,
            "limit": str(self._page_limit),
            "sort": "asc",
        }
        out: list[Bar] = []
        token: str | None = None
        for _ in range(self._max_pages):
            if token:
                params["page_token"] = token
            body = await self._get(params)
            bars, token = parse_bars_page(body)
            out.extend(b for b in bars if start_ns <= b.ts < end_ns)
            if not token:
                break
        out.sort(key=lambda b: (b.ts, b.symbol))
        return out

    async def _get(self, params: dict[str, str]) -> bytes:
        self.requests += 1
        reply = await self._rest.call(
            "GET", "/stocks/bars", params=params, what="historical bars request"
        )
        status = reply.status
        body = reply.body
        if status == 200:
            return body
        detail = truncate(body, 120)
        if status == 429:
            raise RetryableError(
                f"historical bars rate limited (429): {detail}",
                retry_after=reply.retry_after or 1.0,
            )
        if status >= 500:
            raise RetryableError(f"historical bars server error {status}: {detail}")
        if status in (401, 403):
            raise AuthError(
                f"historical bars refused ({status}): check APCA_API_KEY_ID / "
                f"APCA_API_SECRET_KEY and the data subscription: {detail}"
            )
        raise FatalError(f"historical bars request rejected ({status}): {detail}")

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._rest.close()

    async def __aenter__(self) -> AlpacaHistoricalBars:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
