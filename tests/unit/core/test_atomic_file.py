"""Atomic file replacement on a real full disk (a small tmpfs): the old file stays, no
temporary file stays, one ``FileWriteError`` line names the file and the OS error. The same
for each file written through it: a bucket object, the trader's and the gateway's state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from algostack.adapters.storage import LocalDirStore
from algostack.core.atomic_file import replace_file
from algostack.errors import FatalError, FileWriteError
from algostack.services.gateway.state import STATE_NAME, GatewayState, StateFile
from algostack.services.journal import JournalWriteError
from algostack.services.trader.state import STATE_FILE, RunnerState, load_state, save_state
from algostack.testing.tiny_disk import FILLER, fill, tiny_disk

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

ENOSPC = "[Errno 28] No space left on device"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tiny_disk(tmp_path / "disk", "128k") as d:
        yield d


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_replace_file_on_a_full_disk_keeps_the_old_file_and_no_temporary(disk: Path) -> None:
    target = disk / "state.json"
    replace_file(target, b"old\n")
    fill(disk)
    with pytest.raises(FileWriteError) as info:
        replace_file(target, b"new" * 10_000)
    assert str(info.value) == f"cannot write {target}: {ENOSPC}"
    assert isinstance(info.value, FatalError)
    assert target.read_bytes() == b"old\n"
    assert names(disk) == {"state.json", FILLER}


def test_replace_file_cut_short_part_way_leaves_no_temporary(disk: Path) -> None:
    # Room for some of the data: the write gets part-way, then ENOSPC.
    target = disk / "big.bin"
    fill(disk, leave=16_384)
    with pytest.raises(FileWriteError, match=r"Errno 28"):
        replace_file(target, b"x" * 100_000)
    assert names(disk) == {FILLER}


def test_replace_file_fits_again_once_space_is_freed(disk: Path) -> None:
    target = disk / "state.json"
    filler = fill(disk)
    with pytest.raises(FileWriteError):
        replace_file(target, b"new\n", tmp_name=".state.tmp")
    filler.unlink()
    replace_file(target, b"new\n", tmp_name=".state.tmp")
    assert target.read_bytes() == b"new\n" and names(disk) == {"state.json"}


def test_local_bucket_put_on_a_full_disk_keeps_the_old_object(disk: Path) -> None:
    store = LocalDirStore(disk)
    key = "models/onnx/AAPL/m/live/2024-01-03/trades_2024-01-03.csv"
    store.put_bytes(key, b"time,qty\n")
    fill(disk)
    with pytest.raises(FileWriteError) as info:
        store.put_bytes(key, b"time,qty\n" + b"1,10\n" * 20_000)
    assert str(info.value) == f"cannot write {disk / key}: {ENOSPC}"
    assert store.get_bytes(key) == b"time,qty\n"
    assert names((disk / key).parent) == {"trades_2024-01-03.csv"}
    assert list(store.list_keys()) == [FILLER, key]


def test_trader_state_on_a_full_disk_keeps_the_last_commit(disk: Path) -> None:
    save_state(disk, RunnerState(model="m", last_decided_ts=1))
    fill(disk)
    with pytest.raises(FileWriteError) as info:
        save_state(disk, RunnerState(model="m", last_decided_ts=2, day="x" * 100_000))
    assert str(info.value) == f"cannot write {disk / STATE_FILE}: {ENOSPC}"
    state = load_state(disk, "m")
    assert state is not None and state.last_decided_ts == 1
    assert names(disk) == {STATE_FILE, FILLER}


def test_gateway_state_on_a_full_disk_keeps_whole_snapshots(disk: Path) -> None:
    file = StateFile(disk)
    file.save(GatewayState(day="2024-01-03", batch_seq=1))
    file.append_seen("cid-1")
    fill(disk)
    big = GatewayState(day="2024-01-03", batch_seq=2, counters={f"c{i}": i for i in range(9000)})
    with pytest.raises(JournalWriteError, match=rf"^{disk / STATE_NAME}: No space left"):
        file.save(big)  # an append cut short: cut back to the last whole snapshot
    with pytest.raises(FileWriteError, match=rf"^{disk / 'gateway-seen.txt'}: No space left"):
        file.append_seen("cid-2" * 5000)
    file.close()
    assert (disk / STATE_NAME).read_bytes().endswith(b"\n")
    assert (disk / "gateway-seen.txt").read_bytes() == b"cid-1\n"
    again = StateFile(disk)
    loaded = again.load()
    assert loaded is not None and loaded.batch_seq == 1
    with pytest.raises(FileWriteError) as info:  # a first save rewrites the file atomically
        again.save(big)
    assert str(info.value) == f"cannot write {disk / STATE_NAME}: {ENOSPC}"
    assert names(disk) == {STATE_NAME, "gateway-seen.txt", FILLER}
    loaded = StateFile(disk).load()
    assert loaded is not None and loaded.batch_seq == 1
