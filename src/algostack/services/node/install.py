"""Put a :class:`NodePlan` on the host: directories and files with their modes and owners
(only the files that differ are written), then ``systemctl daemon-reload`` and ``enable``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from algostack.services.node.units import NodePlan

Runner = Callable[[Sequence[str]], str]
"""Runs one argv (``systemctl ...``, ``journalctl ...``), returns its stdout, raises on failure."""


@dataclass(frozen=True)
class InstallResult:
    """What :func:`install_plan` changed and ran."""

    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    commands: tuple[tuple[str, ...], ...]


Chown = Callable[[Path, str | None, str | None], None]
"""``chown(path, user, group)``; ``None`` means root."""


def _write_if_changed(path: Path, content: str, mode: int) -> bool:
    """Write atomically through a file created with ``mode`` (never briefly world-readable)."""
    if path.exists() and path.read_text() == content:
        path.chmod(mode)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    tmp.chmod(mode)  # os.open's mode is filtered by the umask
    tmp.replace(path)
    return True


def install_plan(
    plan: NodePlan,
    units_dir: Path,
    runner: Runner,
    *,
    root: Path | None = None,
    chown: Chown | None = None,
) -> InstallResult:
    """Make directories, write the plan's files (only those that differ), daemon-reload, enable.

    Modes and owners are (re)applied every time, so a host bootstrapped by an older run.sh
    converges. ``runner`` runs ``systemctl`` (the seam tests replace); ``chown`` too (root
    only). ``root`` re-roots the absolute non-unit paths (tests render into a temporary
    directory). Restarting and waiting are :func:`restart_and_wait`'s.
    """

    def real(path: Path) -> Path:
        return root / path.relative_to(path.anchor) if root is not None else path

    for path, d in sorted(plan.dirs.items()):
        target = real(path)
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(d.mode)
        if chown is not None:
            chown(target, d.owner, d.owner)
    written: list[Path] = []
    unchanged: list[Path] = []
    targets: list[tuple[Path, str, int, str | None]] = [
        (units_dir / name, content, 0o644, None) for name, content in plan.units.items()
    ]
    for path, spec in plan.files.items():
        targets.append((real(path), spec.content, spec.mode, spec.group))
    for path, content, mode, group in targets:
        (written if _write_if_changed(path, content, mode) else unchanged).append(path)
        if chown is not None:
            chown(path, None, group)
    commands: list[tuple[str, ...]] = [
        ("systemctl", "daemon-reload"),
        ("systemctl", "enable", *plan.enable),
    ]
    for argv in commands:
        runner(argv)
    return InstallResult(tuple(written), tuple(unchanged), tuple(commands))
