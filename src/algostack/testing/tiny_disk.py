"""A real full disk for tests and drills: a small tmpfs mounted on a directory (needs root).

``tiny_disk(dir, size)`` mounts it for the length of a ``with`` block and unmounts it after;
``fill(dir)`` writes a file until the disk refuses (``ENOSPC``), leaving ``leave`` bytes free.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

FILLER = "filler"


@contextlib.contextmanager
def tiny_disk(directory: Path, size: str = "256k") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (``mount -o size=``) on ``directory`` (created) for the block."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        check=True,
        capture_output=True,
    )
    try:
        yield directory
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=True, capture_output=True)


def fill(directory: Path, *, leave: int = 0) -> Path:
    """Write ``<directory>/filler`` until the disk is full, then give back ``leave`` bytes
    (rounded by the file system to whole pages); return the filler's path."""
    path = Path(directory) / FILLER
    chunk = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)
    return path
