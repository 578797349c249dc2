"""The dashboard in a real browser during a short local session.

A real nats-server with the MARKET stream, a bucket directory with journals, bars published
before the dashboard starts (history) and while it runs (live), trader events every half
second; ``algostack dashboard`` runs as a subprocess and headless Debian Chromium (driven by
Playwright, never ``playwright install``) opens it. The test waits for live data, checks the
fleet table and the charts, and saves ``docs/img/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import EmbeddedNats
from algostack.core.market import NS_PER_MIN, datetime_to_ts
from algostack.core.sessions import new_york_date
from algostack.services.dashboard.demo import DemoDesk, seed_bucket
from algostack.services.dashboard.launch import wait_healthy

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "img" / "dashboard.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HISTORY_BARS = 40
FAKE_KEY = "PKDASHBOARDTEST12345"


def chromium_path() -> str:
    """Find Debian's chromium; try to install it when running as root; skip when impossible."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run([apt, "install", "-y", "-qq", "chromium"], env=env, timeout=600,
                           capture_output=True, check=True)  # fmt: skip
        found = shutil.which("chromium")
        if found:
            return found
    pytest.skip("headless Chromium is not installed and could not be installed (apt chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def keep_publishing(demo: DemoDesk, stop: asyncio.Event) -> None:
    """One bar per symbol per second and trader events every half second."""
    tick = 0
    while not stop.is_set():
        if tick % 2 == 0:
            await demo.publish_bars(1)
        await demo.publish_trader_events(time.time_ns(), fill=tick % 4 == 0)
        tick += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def wait_bars(page: Any, above: int, *, timeout_s: float) -> int:
    """Wait until the page shows more than ``above`` bars for some symbol; return that count."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = [int(n) for n in re.findall(r"(\d+) bars", await page.inner_text("body"))]
        if counts and max(counts) > above:
            return max(counts)
        if time.monotonic() > deadline:
            pytest.fail(f"no live bars in the page after {timeout_s} s (counts {counts})")
        await asyncio.sleep(0.25)


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start the real CLI command (``algostack dashboard``), output to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[tuple[str, DemoDesk]]:
    now = datetime.now(UTC)
    first = datetime_to_ts(now) - 20 * NS_PER_MIN
    seed_bucket(tmp_path / "bucket", new_york_date(now), first_ts=first)
    server = EmbeddedNats().start()
    bus = await NatsBus.connect(
        server.url, user=server.user, password=server.password, connect_timeout_s=10
    )
    await bus.ensure_market_stream()
    demo = DemoDesk(bus, start_ts=datetime_to_ts(now) - HISTORY_BARS * NS_PER_MIN)
    await demo.publish_bars(HISTORY_BARS)
    stop = asyncio.Event()
    publisher = asyncio.create_task(keep_publishing(demo, stop))
    port = free_port()
    env = {
        **os.environ,
        "ALGOSTACK_NATS_USER": server.user,
        "ALGOSTACK_NATS_PASSWORD": server.password,
        "ALGOSTACK_DASHBOARD_REFRESH_S": "1",
        "ALGOSTACK_DASHBOARD_JOURNAL_EVERY_S": "2",
        "APCA_API_KEY_ID": FAKE_KEY,
        "APCA_API_SECRET_KEY": "dashboard-test-secret-value",
    }
    env.pop("ALGOSTACK_DASHBOARD_PASSWORD", None)
    cli = str(Path(sys.executable).with_name("algostack"))
    bucket = str(tmp_path / "bucket")
    argv = [cli, "dashboard", "--port", str(port), "--nats-url", server.url, "--bucket", bucket]
    argv += ["--env", "local"]
    proc = spawn(argv, env, tmp_path / "dashboard.log")
    try:
        await asyncio.to_thread(wait_healthy, proc, "127.0.0.1", port, timeout_s=60)
        yield f"http://127.0.0.1:{port}/", demo
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        stop.set()
        await publisher
        await bus.close(2.0)
        server.stop()


async def test_dashboard_browser_shows_live_fleet_and_charts_and_saves_screenshot(
    session: tuple[str, DemoDesk],
) -> None:
    from playwright.async_api import async_playwright

    executable = chromium_path()
    url, demo = session
    profile = tempfile.mkdtemp(prefix="algostack-chromium-")
    try:
        async with async_playwright() as pw:
            # a fresh profile per run: Playwright takes it as user_data_dir, not as an arg
            browser = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1500, "height": 1900},
                timeout=30_000,
            )
            try:
                page = await browser.new_page()
                await page.goto(url, wait_until="domcontentloaded", timeout=30_000)
                await page.get_by_text("NATS feed: live").first.wait_for(timeout=30_000)
                table = page.get_by_test_id("stTable").first
                await table.get_by_text("onnx-AAPL-model_1").wait_for(timeout=30_000)
                await table.get_by_text("HALTED").first.wait_for(timeout=10_000)
                await table.get_by_text("SILENT").first.wait_for(timeout=10_000)
                # live data: more bars than were published before the dashboard started
                first = await wait_bars(page, HISTORY_BARS, timeout_s=30)
                assert await wait_bars(page, first, timeout_s=30) > first  # and it keeps moving
                charts = page.get_by_test_id("stVegaLiteChart")
                await charts.nth(2).wait_for(timeout=20_000)
                assert await charts.count() >= 4  # 3 prices + the selected model's PnL
                fleet_text = await table.inner_text()
                assert "ACTIVE" in fleet_text
                body = await page.inner_text("body")
                assert FAKE_KEY not in body and "dashboard-test-secret-value" not in body
                await page.wait_for_timeout(1_500)  # let the charts finish drawing
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SCREENSHOT), full_page=True)
            finally:
                await browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert SCREENSHOT.stat().st_size > 10_000
    assert demo.bars > HISTORY_BARS
