"""Shared fixtures. Real servers run on free loopback ports; nothing leaves the machine."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``slow`` unless ALGOSTACK_SLOW=1 (keeps the default run short)."""
    if os.environ.get("ALGOSTACK_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set ALGOSTACK_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
