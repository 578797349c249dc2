"""The dashboard's settings, read once by the Streamlit script (its entry point).

``algostack dashboard`` passes everything through these environment variables; the NATS
connection comes from the common ``ALGOSTACK_NATS_*`` settings and the environment name from
``ALGOSTACK_ENV``. Alpaca keys are never needed here, and the command strips them from the
dashboard's environment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """Env: ``ALGOSTACK_DASHBOARD_PASSWORD`` (optional login), ``ALGOSTACK_DASHBOARD_BUCKET``
    (``s3://B`` or a directory holding the journals), ``ALGOSTACK_DASHBOARD_JOURNALS`` (a live
    journal root: one directory per model key), ``ALGOSTACK_DASHBOARD_REFRESH_S``,
    ``ALGOSTACK_DASHBOARD_STALE_AFTER_S``, ``ALGOSTACK_DASHBOARD_SILENT_AFTER_S``,
    ``ALGOSTACK_DASHBOARD_HISTORY`` (today|all), ``ALGOSTACK_DASHBOARD_MARKET_HOURS``
    (nyse|always|auto: auto means always in the local env, NYSE hours elsewhere),
    ``ALGOSTACK_DASHBOARD_JOURNAL_EVERY_S``."""

    model_config = SettingsConfigDict(env_prefix="ALGOSTACK_DASHBOARD_", extra="ignore")

    password: SecretStr | None = None
    bucket: str | None = None
    journals: str | None = None
    refresh_s: float = 2.0
    stale_after_s: float = 120.0
    silent_after_s: float = 30.0
    history: Literal["today", "all"] = "today"
    market_hours: Literal["nyse", "always", "auto"] = "auto"
    journal_every_s: float = 30.0

    def hours_always(self, env: str) -> bool:
        """True when stale-data checks apply at any hour (offline sessions replay any day)."""
        if self.market_hours == "auto":
            return env == "local"
        return self.market_hours == "always"
