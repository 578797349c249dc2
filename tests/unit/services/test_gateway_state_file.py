"""The gateway's state file: the last whole snapshot wins; a file with none is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from algostack.errors import DataError, exit_code
from algostack.services.gateway.state import STATE_NAME, GatewayState, StateFile


def test_last_whole_snapshot_wins_and_a_cut_line_is_ignored(tmp_path: Path) -> None:
    f = StateFile(tmp_path, fsync=False)
    f.save(GatewayState(day="2024-03-15", batch_seq=1))
    f.save(GatewayState(day="2024-03-15", batch_seq=2))
    f.close()
    with (tmp_path / STATE_NAME).open("ab") as out:
        out.write(b'{"version":1,"batch_seq":3')  # a crash mid-write
    state = StateFile(tmp_path).load()
    assert state is not None and state.batch_seq == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json at all\n", "no readable gateway state in it"),
        (b'{"version": 7, "batch_seq": 1}\n', "state version 7, this gateway reads 1"),
    ],
)
def test_unreadable_state_is_refused_naming_the_file_exit_2(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / STATE_NAME).write_bytes(content)
    with pytest.raises(DataError, match=message) as exc:
        StateFile(tmp_path).load()
    assert str(tmp_path / STATE_NAME) in str(exc.value)
    assert exit_code(exc.value) == 2  # bad input: no supervisor restarts into it
    assert (tmp_path / STATE_NAME).read_bytes() == content  # nothing overwritten


def test_no_file_or_an_empty_one_is_a_first_start(tmp_path: Path) -> None:
    assert StateFile(tmp_path).load() is None
    (tmp_path / STATE_NAME).write_bytes(b"")
    assert StateFile(tmp_path).load() is None
