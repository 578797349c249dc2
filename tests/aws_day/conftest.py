"""The emulated AWS day: one desk for the module (terraform apply of the qa root to moto, real
systemd hosts), shared by the day and the fault drills, in that order, and gone (moto's
classes unpatched, hosts powered off) before any other test runs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from algostack.testing.aws.day import AwsDay


def _cannot_boot() -> str | None:
    if os.geteuid() != 0:
        return "the emulated AWS day boots systemd-nspawn hosts and needs root"
    missing = [
        t for t in ("systemd-nspawn", "mmdebstrap", "nsenter", "terraform") if not shutil.which(t)
    ]
    if missing:
        return f"missing {', '.join(missing)}: run `make test` as root (it installs them)"
    return None


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsDay]:
    """The qa desk, deployed as committed; hosts powered off at the end."""
    why = _cannot_boot()
    if why is not None:
        pytest.fail(f"cannot run the emulated AWS day: {why}", pytrace=False)
    workdir = Path(tmp_path_factory.mktemp("aws-day"))
    with AwsDay(workdir, progress=lambda m: print(f"[aws-day] {m}", flush=True)) as day:
        yield day
