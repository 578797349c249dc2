"""The dashboard in a real browser during a real short local session.

``algostack run --dashboard`` runs as a subprocess in its own process group: demo models
trained on first run, an embedded nats-server, one trader per model, the synthetic ingest and
the dashboard. Headless Debian Chromium (driven by Playwright with ``executable_path``, never
``playwright install``) opens the dashboard, waits for live data (bars flowing, every demo
model's heartbeat OK), checks the fleet table lists exactly the models of the demo store and
that price charts are drawn, opens the model with the most trades and takes a screenshot
mid-session (into the test's tmp dir; with ALGOSTACK_UPDATE_SCREENSHOT=1 it refreshes the
README's ``docs/img/dashboard.png``, so a plain test run never changes tracked files).
Then SIGINT stops the run: exit 130 and no process of
the session left (no streamlit, no nats-server, no trader, no ingest).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from algostack.core.naming import group_models
from algostack.services.dashboard.launch import wait_healthy
from algostack.testing.proctree import alive, cmdline, descendants

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "dashboard.png"
CHROMIUM = "/usr/bin/chromium"
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
DAY = "2024-03-15"
# 390 session minutes in ~130 s: first trades ~15 s after the ingest starts, and the session
# is still running when the screenshot is taken (~30-40 s in) even on a loaded machine.
SPEED = 180
SESSION_BARS = 390
# Live panels re-render every REFRESH_S; the screenshot is taken between two re-renders.
REFRESH_S = 3
FAKE_KEY = "PKDASHBOARDTEST12345"
FAKE_SECRET = "dashboard-test-secret-value"


def chromium_path() -> str:
    """Debian's chromium; installed with apt when running as root; skip when impossible."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run([apt, "install", "-y", "-qq", "chromium"], env=env, timeout=600,
                           capture_output=True, check=True)  # fmt: skip
        if os.access(CHROMIUM, os.X_OK):
            return CHROMIUM
    pytest.skip(f"headless Chromium is not at {CHROMIUM} and could not be installed (apt)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def store_models(home: Path) -> set[str]:
    """The model keys of the demo store the run trained into ``home/models``."""
    keys = [p.relative_to(home).as_posix() for p in (home / "models").rglob("*") if p.is_file()]
    specs, _ignored = group_models(keys)
    return {s.key for s in specs}


@dataclass
class Session:
    proc: subprocess.Popen[str]
    home: Path
    url: str


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    home = tmp_path / "home"
    port = free_port()
    env = {
        **os.environ,
        "ALGOSTACK_DASHBOARD_REFRESH_S": str(REFRESH_S),
        "APCA_API_KEY_ID": FAKE_KEY,
        "APCA_API_SECRET_KEY": FAKE_SECRET,
    }
    for name in ("ALGOSTACK_DASHBOARD_PASSWORD", "ALGOSTACK_HOME", "ALGOSTACK_ENV"):
        env.pop(name, None)
    argv = [sys.executable, "-c", "from algostack.cli import main; main()", "run",
            "--dashboard", "--dashboard-port", str(port), "--home", str(home), "--day", DAY,
            "--speed", str(SPEED), "--no-progress", "--no-report", "--json"]  # fmt: skip
    err = (tmp_path / "run.err").open("w")
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        start_new_session=True,
    )
    try:
        # first run trains the demo models (~5 s), then NATS, traders and the dashboard
        wait_healthy(proc, "127.0.0.1", port, timeout_s=90)  # type: ignore[arg-type]
        yield Session(proc, home, f"http://127.0.0.1:{port}/")
    finally:
        if proc.poll() is None:  # the test failed before its own SIGINT: stop it all
            kids = descendants(proc.pid)
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            for kid in kids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(kid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()
        err.close()
        print((tmp_path / "run.err").read_text()[-3000:])


async def fleet(page: Any) -> list[dict[str, str]]:
    """The fleet table's rows as {column: text}."""
    table = page.get_by_test_id("stTable").first
    got: dict[str, list[Any]] = await table.evaluate(
        """(el) => {
            const t = el.querySelector('table');
            const head = [...t.querySelectorAll('thead th')].map(c => c.innerText.trim());
            const rows = [...t.querySelectorAll('tbody tr')].map(
                r => [...r.querySelectorAll('th,td')].map(c => c.innerText.trim()));
            return {head, rows};
        }"""
    )
    head = got["head"]
    return [dict(zip(head[len(head) - len(r) :], r, strict=True)) for r in got["rows"]]


async def wait_for(what: str, check: Any, timeout_s: float, poll_s: float = 0.25) -> Any:
    """Poll the async ``check()`` until it returns something truthy; fail with ``what``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = await check()
            if last:
                return last
        await asyncio.sleep(poll_s)
    pytest.fail(f"{what} not seen within {timeout_s:.0f} s (last: {last!r})")


async def bar_counts(page: Any) -> list[int]:
    return [int(n) for n in re.findall(r"(\d+) bars", await page.inner_text("body"))]


async def test_dashboard_browser_real_session_shows_live_fleet_and_charts_then_stops_clean(
    session: Session, tmp_path: Path
) -> None:
    update_docs = os.environ.get("ALGOSTACK_UPDATE_SCREENSHOT") == "1"
    shot = DOCS_SCREENSHOT if update_docs else tmp_path / "dashboard.png"
    from playwright.async_api import async_playwright

    executable = chromium_path()
    expected = store_models(session.home)
    assert len(expected) == 4, expected  # the demo store
    profile = tempfile.mkdtemp(prefix="algostack-chromium-")
    try:
        async with async_playwright() as pw:
            # a fresh profile per run: Playwright passes it as --user-data-dir
            browser = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1500, "height": 1500},
                timeout=60_000,
            )
            try:
                page = await browser.new_page()
                await page.goto(session.url, wait_until="domcontentloaded", timeout=60_000)
                await page.get_by_text("NATS feed: live").first.wait_for(timeout=60_000)

                async def all_ok() -> list[dict[str, str]] | None:
                    rows = await fleet(page)
                    ok = {r["Model"] for r in rows if r["Health"] == "OK"}
                    return rows if ok == expected and len(rows) == len(expected) else None

                rows = await wait_for("every demo model's heartbeat OK", all_ok, 60)
                assert {r["Model"] for r in rows} == expected  # exactly the store's models

                async def flowing() -> int:
                    return max(await bar_counts(page), default=0)

                first = await wait_for("bars", flowing, 60)
                await wait_for("more bars", lambda: _above(flowing, first), 30)

                charts = page.get_by_test_id("stVegaLiteChart")
                await charts.first.wait_for(timeout=30_000)
                await wait_for("a drawn price chart", lambda: _drawn(charts.first), 30)

                async def traded() -> dict[str, str] | None:
                    best = max(await fleet(page), key=lambda r: int(r["Trades"] or 0))
                    return best if int(best["Trades"]) >= 3 else None

                best = await wait_for("trades in the fleet table", traded, 60)
                await page.get_by_test_id("stSelectbox").first.click()
                await page.get_by_role("option", name=best["Model"], exact=True).click()

                async def panel() -> bool:
                    body = await page.inner_text("body")
                    m = re.search(r"Today's trades \((\d+)\)", body)
                    return bool(m and int(m.group(1)) >= 1 and "No PnL update" not in body)

                await wait_for("the model panel with trades and PnL", panel, 30)
                body = await page.inner_text("body")
                assert FAKE_KEY not in body and FAKE_SECRET not in body
                await page.evaluate("document.activeElement && document.activeElement.blur()")
                # Streamlit scrolls inside its main section, so a "full page" screenshot is
                # only the viewport: grow the viewport to the content instead.
                height = await page.evaluate(
                    """() => {
                        const el = document.querySelector('[data-testid="stMain"]');
                        return el ? el.scrollHeight : document.body.scrollHeight;
                    }"""
                )
                await page.set_viewport_size({"width": 1500, "height": int(height) + 20})
                shot.parent.mkdir(parents=True, exist_ok=True)
                await screenshot_between_renders(page, shot)
                assert session.proc.poll() is None, "the session ended before the screenshot"
                assert max(await bar_counts(page)) < SESSION_BARS  # mid-session
            finally:
                await browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert shot.stat().st_size > 20_000

    proc = session.proc
    kids = descendants(proc.pid)
    names = " ".join(cmdline(p) for p in kids)
    for part in ("nats-server", "streamlit run", " trade ", " ingest ", " dashboard "):
        assert part in names, (part, names)
    proc.send_signal(signal.SIGINT)
    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 130, out[-2000:]
    await asyncio.sleep(0.3)
    survivors = [(p, cmdline(p)) for p in kids if alive(p)]
    assert not survivors, survivors
    summary = json.loads(out)
    assert summary["interrupted"]
    dash = next(c for c in summary["components"] if c["name"] == "dashboard")
    assert dash["status"] == "stopped" and dash["restarts"] == 0, dash


async def updated_stamp(page: Any) -> str:
    """The ``updated HH:MM:SS`` of the live panels' last re-render."""
    m = re.search(r"updated (\d\d:\d\d:\d\d)", await page.inner_text("body"))
    return m.group(1) if m else ""


async def screenshot_between_renders(page: Any, path: Path) -> None:
    """Screenshot a page no re-render is writing to: a re-render arrives element by element,
    so a shot taken in the middle shows the fleet table newer than the model panel."""
    for _ in range(5):
        before = await updated_stamp(page)
        await wait_for("a re-render", lambda b=before: _changed(page, b), REFRESH_S * 3, 0.05)
        await page.wait_for_timeout(1_000)  # it finishes drawing well within a second
        stamp = await updated_stamp(page)
        await page.screenshot(path=str(path), full_page=True)
        if await updated_stamp(page) == stamp:
            return
    pytest.fail("the dashboard kept re-rendering during every screenshot")


async def _changed(page: Any, before: str) -> bool:
    return await updated_stamp(page) not in ("", before)


async def _above(count: Any, floor: int) -> bool:
    return bool(await count() > floor)


async def _drawn(chart: Any) -> bool:
    """True when Vega has drawn the chart (a canvas or svg with a size)."""
    size = await chart.evaluate(
        """(el) => {
            const m = el.querySelector('canvas, svg.marks');
            if (!m) return 0;
            const r = m.getBoundingClientRect();
            return r.width * r.height;
        }"""
    )
    return bool(size and size > 10_000)
