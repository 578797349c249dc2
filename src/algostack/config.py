"""One typed configuration object, loaded once at the entry point and passed down.

Every field documents its environment variable. Adapters take arguments; they never read
``os.environ`` themselves. Secrets are ``SecretStr`` so they never print or log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Feed = Literal["iex", "sip", "delayed_sip", "test"]


class AlpacaSettings(BaseSettings):
    """Alpaca credentials and endpoints. Env: ``APCA_API_KEY_ID``, ``APCA_API_SECRET_KEY``
    (alpaca-py's names), ``ALGOSTACK_ALPACA_FEED``, ``ALGOSTACK_ALPACA_STREAM_URL``,
    ``ALGOSTACK_ALPACA_DATA_URL``, ``ALGOSTACK_ALPACA_TRADING_URL``,
    ``ALGOSTACK_ALPACA_TRADING_STREAM_URL``, ``ALGOSTACK_ALPACA_PAPER``,
    ``ALGOSTACK_ALPACA_LIVE``."""

    model_config = SettingsConfigDict(env_prefix="ALGOSTACK_ALPACA_", extra="ignore")

    key_id: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("APCA_API_KEY_ID", "ALGOSTACK_ALPACA_KEY_ID")
    )
    secret_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("APCA_API_SECRET_KEY", "ALGOSTACK_ALPACA_SECRET_KEY"),
    )
    feed: Feed = "iex"
    stream_url: str | None = None
    """Override of the market-data websocket URL (e.g. a local fake, or the sandbox host)."""
    data_url: str | None = None
    """Override of the historical data REST base URL."""
    trading_url: str | None = None
    """Override of the trading REST base URL (tests point it at the fake trading server)."""
    trading_stream_url: str | None = None
    """Override of the ``trade_updates`` websocket URL (default: Alpaca's paper or live)."""
    paper: bool = True
    live: bool = False
    """Live trading needs this explicit opt-in (ALGOSTACK_ALPACA_LIVE=true) and live keys."""

    @property
    def has_keys(self) -> bool:
        """True when both the key id and the secret are set."""
        return bool(self.key_id and self.secret_key)


class NatsSettings(BaseSettings):
    """NATS connection. Env: ``ALGOSTACK_NATS_URL``, ``ALGOSTACK_NATS_USER``,
    ``ALGOSTACK_NATS_PASSWORD``, ``ALGOSTACK_NATS_CONNECT_TIMEOUT_S``."""

    model_config = SettingsConfigDict(env_prefix="ALGOSTACK_NATS_", extra="ignore")

    url: str = "nats://127.0.0.1:4222"
    user: str | None = None
    password: SecretStr | None = None
    connect_timeout_s: float = 60.0
    """Give up with a clear error when NATS stays unreachable this long."""


class Settings(BaseSettings):
    """Top-level settings. Env: ``ALGOSTACK_ENV`` (dev|qa|prod|local), ``ALGOSTACK_HOME``
    (state directory, default ``./.algostack``), ``ALGOSTACK_LOG_LEVEL``."""

    model_config = SettingsConfigDict(env_prefix="ALGOSTACK_", extra="ignore")

    env: str = "local"
    home: Path = Path(".algostack")
    log_level: str = "INFO"
    alpaca: AlpacaSettings = Field(default_factory=AlpacaSettings)
    nats: NatsSettings = Field(default_factory=NatsSettings)


def load_settings() -> Settings:
    """Load settings from the environment (call once, at the entry point)."""
    return Settings()
