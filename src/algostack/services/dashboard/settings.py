"""The dashboard's settings, read once by each entry point: the Streamlit script, and
``algostack dashboard``, which hands them to the script as environment variables.

The NATS connection and the environment name come from the common ``Settings``. Alpaca keys
are never needed here, and the command strips them from the dashboard's environment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """What the dashboard shows and how often; the NATS connection comes from ``Settings``."""

    model_config = SettingsConfigDict(
        env_prefix="ALGOSTACK_DASHBOARD_", extra="ignore", use_attribute_docstrings=True
    )

    password: SecretStr | None = None
    """``ALGOSTACK_DASHBOARD_PASSWORD``: an optional login password (no login when unset)."""
    bucket: str | None = None
    """``ALGOSTACK_DASHBOARD_BUCKET``: ``s3://B`` or a directory holding the journals."""
    journals: str | None = None
    """``ALGOSTACK_DASHBOARD_JOURNALS``: a live journal root, one directory per model key."""
    refresh_s: float = 2.0
    """``ALGOSTACK_DASHBOARD_REFRESH_S``: how often the page redraws."""
    stale_after_s: float = 120.0
    """``ALGOSTACK_DASHBOARD_STALE_AFTER_S``: market data older than this is stale."""
    silent_after_s: float = 30.0
    """``ALGOSTACK_DASHBOARD_SILENT_AFTER_S``: a trader without a heartbeat this long is
    silent."""
    history: Literal["today", "all"] = "today"
    """``ALGOSTACK_DASHBOARD_HISTORY``: ``today`` or ``all`` of the journals."""
    market_hours: Literal["nyse", "always", "auto"] = "auto"
    """``ALGOSTACK_DASHBOARD_MARKET_HOURS``: when staleness applies, ``nyse``, ``always`` or
    ``auto`` (always in the local env, NYSE hours elsewhere)."""
    journal_every_s: float = 30.0
    """``ALGOSTACK_DASHBOARD_JOURNAL_EVERY_S``: how often the journals are re-read."""

    def hours_always(self, env: str) -> bool:
        """True when stale-data checks apply at any hour (offline sessions replay any day)."""
        if self.market_hours == "auto":
            return env == "local"
        return self.market_hours == "always"
