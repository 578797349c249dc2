"""``algostack trade`` whose journals sit on a real full disk (a small tmpfs): it ends with
one line naming the file and the OS error and exit 1, no traceback, no temporary file left
(real nats-server, real subprocess)."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from algostack.adapters.artifacts.export import write_fold
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import EmbeddedNats
from algostack.adapters.storage import LocalDirStore
from algostack.core.market import NS_PER_MIN, Bar, datetime_to_ts
from algostack.core.market_bus import BusMessage
from algostack.core.naming import ModelSpec, trader_subject
from algostack.testing.tiny_disk import FILLER, fill, tiny_disk

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

OPEN_NS = datetime_to_ts(datetime(2024, 3, 5, 14, 30, tzinfo=UTC))
KEY = "models/sma/AAPL/model_1-outer_0_inner_0.json"
PREFIX = "models/sma/AAPL/model_1"


def session_bars(n: int) -> list[Bar]:
    out = []
    for i in range(n):
        p = 100.0 + 3.0 * math.sin(i / 2.5)  # turns every few bars: many orders
        out.append(Bar(symbol="AAPL", ts=OPEN_NS + i * NS_PER_MIN, open=p, high=p + 0.3,
                       low=p - 0.3, close=p, volume=1000.0 + i))  # fmt: skip
    return out


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))


async def test_trader_on_a_full_disk_exits_3_with_one_line_naming_the_file(
    embedded_nats: EmbeddedNats, bus: NatsBus, tmp_path: Path
) -> None:
    bucket = tmp_path / "bucket"
    write_fold(
        LocalDirStore(bucket),
        KEY,
        dump_native(kind="linear", features=["sma_ratio_2_4"], coef=[1.0], intercept=0.0,
                    thresholds={"long_entry": 0.0, "long_exit": 0.0}),
    )  # fmt: skip
    key = ModelSpec("sma", "AAPL", "model_1", 1).key
    beats: list[bytes] = []

    async def on_beat(msg: BusMessage) -> None:
        beats.append(msg.data)

    await bus.subscribe(trader_subject("local", key, "heartbeat"), on_beat)
    env = dict(os.environ, ALGOSTACK_NATS_USER=embedded_nats.user,
               ALGOSTACK_NATS_PASSWORD=embedded_nats.password, ALGOSTACK_ENV="local")  # fmt: skip
    with tiny_disk(tmp_path / "journal", "256k") as journal:
        cmd = [
            str(Path(sys.executable).parent / "algostack"), "trade", "--model", PREFIX,
            "--bucket", str(bucket), "--journal-dir", str(journal),
            "--nats-url", embedded_nats.url, "--broker", "sim",
        ]  # fmt: skip
        proc = start(cmd, env, tmp_path / "trader.err")
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while not beats:  # consumer bound, trading
                assert proc.poll() is None and asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            fill(journal)
            await bus.publish_events(session_bars(40))
            await bus.flush_acks()
            await asyncio.sleep(1.0)  # decided; its commits fail (not acked, tried again)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        jdir = journal / key
        left = {p.name for p in jdir.iterdir()} | {p.name for p in journal.iterdir()}
    assert proc.returncode == 3  # a full disk: no supervisor restarts it (errors.exit_code)
    text = (tmp_path / "trader.err").read_text()
    assert "Traceback" not in text, text
    last = text.strip().splitlines()[-1]
    assert last.startswith("error: trade failed: ") and str(jdir) in last, text
    assert "No space left on device" in last
    assert not any(n.startswith(".tmp") or n.endswith(".tmp") for n in left), left
    assert FILLER in left
