"""`algostack ingest --archive DIR` against a real nats-server, then `algostack data list` and
`data pull`: the pulled bars equal the bars the ingest published on the bus."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from algostack.adapters.nats.bus import NatsBus
from algostack.adapters.nats.server import EmbeddedNats
from algostack.adapters.offline.bars_file import ReplaySource
from algostack.adapters.offline.synthetic import SyntheticSource
from algostack.core.market import Bar

DAY = date(2024, 3, 15)
ALGOSTACK = str(Path(sys.executable).parent / "algostack")


def cli_env(server: EmbeddedNats) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "ALGOSTACK_"))}
    env["ALGOSTACK_NATS_USER"] = server.user
    env["ALGOSTACK_NATS_PASSWORD"] = server.password
    return env


async def published_bars(symbols: list[str]) -> list[Bar]:
    src = SyntheticSource(symbols, day=DAY, seed=7)
    return [e async for b in src.stream() for e in b if type(e) is Bar]


async def test_ingest_archive_then_data_pull_equals_the_published_bars(
    embedded_nats: EmbeddedNats, bus: NatsBus, tmp_path: Path
) -> None:
    archive = tmp_path / "bucket"  # does not exist yet: the ingest creates it
    env = cli_env(embedded_nats)
    ingest = await asyncio.create_subprocess_exec(
        *[ALGOSTACK, "ingest", "--source", "synthetic", "--symbols", "AAPL,BRK.B"],
        *["--day", DAY.isoformat(), "--seed", "7", "--speed", "max"],
        *["--nats-url", embedded_nats.url, "--archive", str(archive)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, raw_err = await asyncio.wait_for(ingest.communicate(), 60)
    err = raw_err.decode()
    assert ingest.returncode == 0, err
    assert f"archive: 780 event(s) in {archive}, complete" in err
    bars_on_bus = sum(
        n
        for s, n in (
            await bus._nc.jsm().stream_info("MARKET", subjects_filter="market.bars.>")
        ).state.subjects.items()
    )
    assert bars_on_bus == 780

    listed = await asyncio.to_thread(
        subprocess.run,
        [ALGOSTACK, "data", "list", "--dir", str(archive), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    [day] = json.loads(listed.stdout)["days"]
    assert (day["date"], day["kind"], day["complete"], day["rows"]) == (
        "2024-03-15",
        "bars",
        True,
        780,
    )
    assert set(day["symbols"]) == {"AAPL", "BRK.B"}

    out = tmp_path / "pulled.parquet"
    pulled = await asyncio.to_thread(
        subprocess.run,
        [
            ALGOSTACK,
            "data",
            "pull",
            "--dir",
            str(archive),
            "--day",
            "2024-03-15",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pulled.returncode == 0, pulled.stderr
    assert list(ReplaySource(out, strict=True).bars()) == await published_bars(["AAPL", "BRK.B"])
