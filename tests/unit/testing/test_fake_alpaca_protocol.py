"""FakeAlpacaServer speaks Alpaca's protocol: checked with a bare websocket client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from algostack.core.market import Trade
from algostack.testing.fake_alpaca import FakeAlpacaServer


@pytest.fixture
async def server() -> AsyncIterator[FakeAlpacaServer]:
    async with FakeAlpacaServer(key_id="k", secret_key="s", auth_timeout_s=0.2) as srv:
        yield srv


async def recv_json(ws: ClientConnection) -> list[dict[str, Any]]:
    async with asyncio.timeout(2):
        frame = await ws.recv()
    assert isinstance(frame, str), "JSON clients get text frames"
    data: list[dict[str, Any]] = json.loads(frame)
    return data


async def send_json(ws: ClientConnection, msg: dict[str, Any]) -> None:
    await ws.send(json.dumps(msg))


async def test_fake_json_handshake_replies_like_alpaca(server: FakeAlpacaServer) -> None:
    async with connect(server.ws_url) as ws:
        assert await recv_json(ws) == [{"T": "success", "msg": "connected"}]
        await send_json(ws, {"action": "auth", "key": "k", "secret": "s"})
        assert await recv_json(ws) == [{"T": "success", "msg": "authenticated"}]
        await send_json(ws, {"action": "subscribe", "trades": ["AAPL"], "bars": ["*"]})
        assert await recv_json(ws) == [
            {
                "T": "subscription",
                "trades": ["AAPL"],
                "quotes": [],
                "bars": ["*"],
                "updatedBars": [],
                "dailyBars": [],
                "statuses": [],
                "lulds": [],
                "corrections": ["AAPL"],
                "cancelErrors": ["AAPL"],
            }
        ]
        await send_json(ws, {"action": "unsubscribe", "trades": ["AAPL"]})
        (reply,) = await recv_json(ws)
        assert reply["trades"] == [] and reply["bars"] == ["*"]
        await server.publish([Trade(symbol="AAPL", ts=1, price=1.0, size=1.0)])
        assert server.messages_sent == 0  # no longer subscribed to AAPL trades


async def test_fake_msgpack_client_gets_binary_frames(server: FakeAlpacaServer) -> None:
    headers = {"Content-Type": "application/msgpack"}
    async with connect(server.ws_url, additional_headers=headers) as ws:
        frame = await ws.recv()
        assert isinstance(frame, bytes)
        assert msgspec.msgpack.decode(frame) == [{"T": "success", "msg": "connected"}]


async def test_fake_subscribe_before_auth_is_401(server: FakeAlpacaServer) -> None:
    async with connect(server.ws_url) as ws:
        await recv_json(ws)
        await send_json(ws, {"action": "subscribe", "trades": ["AAPL"]})
        assert (await recv_json(ws))[0]["code"] == 401


async def test_fake_second_auth_is_403_and_bad_action_400(server: FakeAlpacaServer) -> None:
    async with connect(server.ws_url) as ws:
        await recv_json(ws)
        await send_json(ws, {"action": "auth", "key": "k", "secret": "s"})
        await recv_json(ws)
        await send_json(ws, {"action": "auth", "key": "k", "secret": "s"})
        assert (await recv_json(ws))[0] == {
            "T": "error",
            "code": 403,
            "msg": "already authenticated",
        }
        await send_json(ws, {"action": "dance"})
        assert (await recv_json(ws))[0]["code"] == 400
        await ws.send("{{{")
        assert (await recv_json(ws))[0]["code"] == 400


async def test_fake_wrong_secret_is_402_and_closes(server: FakeAlpacaServer) -> None:
    async with connect(server.ws_url) as ws:
        await recv_json(ws)
        await send_json(ws, {"action": "auth", "key": "k", "secret": "nope"})
        assert (await recv_json(ws))[0] == {"T": "error", "code": 402, "msg": "auth failed"}
        with pytest.raises(ConnectionClosed):
            await recv_json(ws)
    assert server.auths == 0


async def test_fake_no_auth_in_time_is_404(server: FakeAlpacaServer) -> None:
    async with connect(server.ws_url) as ws:
        await recv_json(ws)
        assert (await recv_json(ws))[0]["code"] == 404


async def test_fake_symbol_limit_is_405() -> None:
    fake = FakeAlpacaServer(key_id="k", secret_key="s", symbol_limit=2)
    async with fake as srv, connect(srv.ws_url) as ws:
        await recv_json(ws)
        await send_json(ws, {"action": "auth", "key": "k", "secret": "s"})
        await recv_json(ws)
        await send_json(ws, {"action": "subscribe", "trades": ["A", "B", "C"]})
        assert (await recv_json(ws))[0]["code"] == 405


async def test_fake_unknown_path_is_http_404(server: FakeAlpacaServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{server.port}/nope"):
            pass
    assert info.value.response.status_code == 404
    async with aiohttp.ClientSession() as http, http.get(f"{server.rest_url}/v2/other") as resp:
        assert resp.status == 404


async def test_fake_bars_route_rejects_other_timeframes(server: FakeAlpacaServer) -> None:
    headers = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"}
    url = f"{server.rest_url}/v2/stocks/bars?symbols=AAPL&timeframe=1Day"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        assert resp.status == 422
        assert "1Min" in (await resp.json())["message"]
