"""Controller configuration: the Lambda environment variables, parsed once. Stdlib only.

The variable names are the contract with Terraform (``infra/modules/*``); see docs/control.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from algostack.core.naming import ENVIRONMENTS, ingest_instance_name, trader_name_pattern
from algostack.errors import ConfigError

# Stopping the trader unit flushes its journals and runs its ExecStopPost final sync
# (`algostack sync ... --final`, written by `algostack node trader`); the sync unit then
# runs once more so the command fails visibly when the upload does.
DEFAULT_SYNC_COMMAND = (
    "systemctl stop algostack-trader.service && systemctl start algostack-sync.service"
)
NATS_ADDRESS_KINDS = ("private", "public")


@dataclass(frozen=True)
class ControlConfig:
    """What the three controllers need to know about their environment.

    Every field names its Lambda environment variable.
    """

    environment: str
    """``ALGOSTACK_ENV``: dev, qa or prod (required)."""
    bucket: str | None = None
    """``ALGOSTACK_BUCKET``: the model bucket (shutdown's sync, the trading report)."""
    run_script: Path = Path("run.sh")
    """``ALGOSTACK_RUN_SCRIPT``: the module's run.sh (default ``$LAMBDA_TASK_ROOT/run.sh``)."""
    ingest_instance_name: str = ""
    """``ALGOSTACK_INGEST_INSTANCE_NAME``: default ``alpaca-websocket-ingest-<env>``."""
    trader_name_pattern: str = ""
    """``ALGOSTACK_TRADER_NAME_PATTERN``: default ``trading-server-<env>-*``."""
    nats_address: str = "private"
    """``ALGOSTACK_NATS_ADDRESS``: which ingest address the trading controller passes."""
    ssm_output_bucket: str | None = None
    """``ALGOSTACK_SSM_OUTPUT_BUCKET``: SSM output (and run reports) under ``ssm-output/<env>/``."""
    state_prefix: str = ""
    """``ALGOSTACK_STATE_PREFIX``: Parameter Store prefix of the idempotency records."""
    sync_command: str = DEFAULT_SYNC_COMMAND
    """``ALGOSTACK_SYNC_COMMAND``: what shutdown runs on each trader before stopping it."""

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise ConfigError(
                f"ALGOSTACK_ENV must be one of {', '.join(ENVIRONMENTS)}, got {self.environment!r}"
            )
        if self.nats_address not in NATS_ADDRESS_KINDS:
            raise ConfigError(
                f"ALGOSTACK_NATS_ADDRESS must be 'private' or 'public', got {self.nats_address!r}"
            )
        # Frozen dataclass: fill environment-derived defaults through object.__setattr__.
        if not self.ingest_instance_name:
            object.__setattr__(self, "ingest_instance_name", ingest_instance_name(self.environment))
        if not self.trader_name_pattern:
            object.__setattr__(self, "trader_name_pattern", trader_name_pattern(self.environment))
        prefix = self.state_prefix or f"/algostack/{self.environment}/runs"
        if not prefix.startswith("/"):
            raise ConfigError(f"ALGOSTACK_STATE_PREFIX must start with '/', got {prefix!r}")
        object.__setattr__(self, "state_prefix", prefix.rstrip("/"))
        if not self.sync_command.strip():
            raise ConfigError("ALGOSTACK_SYNC_COMMAND must not be empty")

    @property
    def ssm_output_prefix(self) -> str:
        """The S3 key prefix of SSM command output and run reports."""
        return f"ssm-output/{self.environment}/"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ControlConfig:
        """Parse the Lambda environment (``os.environ`` unless ``env`` is given)."""
        src = os.environ if env is None else env
        environment = src.get("ALGOSTACK_ENV", "").strip()
        if not environment:
            raise ConfigError("ALGOSTACK_ENV is not set: set it to dev, qa or prod")
        script = src.get("ALGOSTACK_RUN_SCRIPT", "").strip()
        if not script:
            root = src.get("LAMBDA_TASK_ROOT", "").strip()
            script = str(Path(root) / "run.sh") if root else "run.sh"
        return cls(
            environment=environment,
            bucket=src.get("ALGOSTACK_BUCKET", "").strip() or None,
            run_script=Path(script),
            ingest_instance_name=src.get("ALGOSTACK_INGEST_INSTANCE_NAME", "").strip(),
            trader_name_pattern=src.get("ALGOSTACK_TRADER_NAME_PATTERN", "").strip(),
            nats_address=src.get("ALGOSTACK_NATS_ADDRESS", "").strip().lower() or "private",
            ssm_output_bucket=src.get("ALGOSTACK_SSM_OUTPUT_BUCKET", "").strip() or None,
            state_prefix=src.get("ALGOSTACK_STATE_PREFIX", "").strip(),
            sync_command=src.get("ALGOSTACK_SYNC_COMMAND", "").strip() or DEFAULT_SYNC_COMMAND,
        )

    def read_run_script(self) -> str:
        """Return the text of run.sh; raise ``ConfigError`` when it is missing or empty."""
        try:
            text = self.run_script.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read run script {self.run_script} ({exc.strerror}): package run.sh at "
                "the zip root or set ALGOSTACK_RUN_SCRIPT"
            ) from exc
        if not text.strip():
            raise ConfigError(f"run script {self.run_script} is empty")
        return text
