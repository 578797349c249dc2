"""One typed configuration object, loaded once at the entry point and passed down.

Every field's docstring names its environment variable; docs/configuration.md lists them.
Adapters take arguments; they never read ``os.environ`` themselves. Secrets are
``SecretStr`` so they never print or log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Feed = Literal["iex", "sip", "delayed_sip", "test"]


class AlpacaSettings(BaseSettings):
    """Alpaca credentials and endpoints (the keys under alpaca-py's own variable names)."""

    model_config = SettingsConfigDict(
        env_prefix="ALGOSTACK_ALPACA_", extra="ignore", use_attribute_docstrings=True
    )

    key_id: SecretStr | None = Field(default=None, validation_alias="APCA_API_KEY_ID")
    """``APCA_API_KEY_ID``: the API key id (paper ``PK...`` or live ``AK...``)."""
    secret_key: SecretStr | None = Field(default=None, validation_alias="APCA_API_SECRET_KEY")
    """``APCA_API_SECRET_KEY``: the API secret."""
    feed: Feed = "iex"
    """``ALGOSTACK_ALPACA_FEED``: the market-data feed, ``iex``, ``sip``, ``delayed_sip`` or
    ``test`` (Alpaca's always-on test stream)."""
    stream_url: str | None = None
    """``ALGOSTACK_ALPACA_STREAM_URL``: override of the market-data websocket URL (a local
    fake, or the sandbox host)."""
    data_url: str | None = None
    """``ALGOSTACK_ALPACA_DATA_URL``: override of the historical data REST base URL."""
    trading_url: str | None = None
    """``ALGOSTACK_ALPACA_TRADING_URL``: override of the trading REST base URL (default:
    Alpaca's paper or live endpoint)."""
    trading_stream_url: str | None = None
    """``ALGOSTACK_ALPACA_TRADING_STREAM_URL``: override of the ``trade_updates`` websocket
    URL (default: Alpaca's paper or live endpoint)."""
    live: bool = False
    """``ALGOSTACK_ALPACA_LIVE``: ``true`` trades the live account (with live keys); paper
    trading otherwise. The only switch: live is never a default."""

    @property
    def has_keys(self) -> bool:
        """True when both the key id and the secret are set."""
        return bool(self.key_id and self.secret_key)


class NatsSettings(BaseSettings):
    """The NATS connection."""

    model_config = SettingsConfigDict(
        env_prefix="ALGOSTACK_NATS_", extra="ignore", use_attribute_docstrings=True
    )

    url: str = "nats://127.0.0.1:4222"
    """``ALGOSTACK_NATS_URL``: the server (``--nats-url`` overrides it)."""
    user: str | None = None
    """``ALGOSTACK_NATS_USER``: the NATS user, when the server requires one."""
    password: SecretStr | None = None
    """``ALGOSTACK_NATS_PASSWORD``: that user's password."""
    connect_timeout_s: float = 60.0
    """``ALGOSTACK_NATS_CONNECT_TIMEOUT_S``: give up with a clear error when NATS stays
    unreachable this long."""


class Settings(BaseSettings):
    """Top-level settings: the environment, the state directory, logging, Alpaca, NATS."""

    model_config = SettingsConfigDict(
        env_prefix="ALGOSTACK_", extra="ignore", use_attribute_docstrings=True
    )

    env: str = "local"
    """``ALGOSTACK_ENV``: ``dev``, ``qa``, ``prod`` or ``local``; names the subjects and
    streams."""
    home: Path = Path(".algostack")
    """``ALGOSTACK_HOME``: the state directory (runs, journals, embedded NATS data)."""
    log_level: str = "INFO"
    """``ALGOSTACK_LOG_LEVEL``: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``."""
    archive: str | None = None
    """``ALGOSTACK_ARCHIVE``: where the ingest archives market data (``s3://<bucket>`` or a
    local directory laid out like it; ``--archive``); no archive when unset."""
    alpaca: AlpacaSettings = Field(default_factory=AlpacaSettings)
    """The ``AlpacaSettings`` (their own variables)."""
    nats: NatsSettings = Field(default_factory=NatsSettings)
    """The ``NatsSettings`` (their own variables)."""


def load_settings() -> Settings:
    """Load settings from the environment (call once, at the entry point)."""
    return Settings()
