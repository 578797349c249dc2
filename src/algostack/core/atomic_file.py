"""Replace a file atomically: a temporary file beside it, fsync, rename, fsync the directory.

Every failure (a full disk, a file-size limit, an I/O error) removes the temporary file,
leaves the previous file as it was and raises ``FileWriteError``: one line naming the file
and the OS error, e.g. ``cannot write /b/trades.csv: [Errno 28] No space left on device``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from algostack.errors import FileWriteError

TMP_PREFIX = ".tmp-"
"""Default temporary names are ``.tmp-<name>-<pid>`` (a bucket listing skips them)."""


def os_error_text(exc: OSError) -> str:
    """``[Errno 28] No space left on device``: the error without the file name it may hold."""
    if exc.errno is not None and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}"
    return str(exc) or type(exc).__name__


def write_error(path: Path, exc: OSError) -> FileWriteError:
    """The ``FileWriteError`` for a failed write of ``path``."""
    return FileWriteError(f"cannot write {path}: {os_error_text(exc)}")


def fsync_path(path: Path) -> None:
    """fsync a file or directory by path: flushes what any descriptor of the file wrote, or
    makes a rename in the directory durable; no-op when ``path`` does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(
    path: Path,
    data: bytes,
    *,
    tmp_name: str | None = None,
    fsync: bool = True,
    mode: int = 0o644,
) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the new, never half.

    Writes ``<dir>/<tmp_name>`` (default ``.tmp-<name>-<pid>``), fsyncs it, renames it over
    ``path`` and fsyncs the directory (no fsync at all when ``fsync`` is false). On any
    failure the temporary file is removed and ``FileWriteError`` is raised.
    """
    path = Path(path)
    tmp = path.with_name(tmp_name or f"{TMP_PREFIX}{path.name}-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Nothing to clean up when this fails: what is at ``tmp`` (if anything) is not ours.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise write_error(path, exc) from exc
    if fsync:
        try:
            fsync_path(path.parent)
        except OSError as exc:
            raise write_error(path, exc) from exc
