"""Options several commands share, declared once (same flag, same help everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from algostack.adapters.storage import BucketStore

NatsUrl = Annotated[
    str | None, typer.Option("--nats-url", help="NATS URL (default ALGOSTACK_NATS_URL).")
]
SubjectEnv = Annotated[
    str | None, typer.Option("--env", help="Environment of the NATS subjects (default: local).")
]
SlippageBps = Annotated[
    float, typer.Option("--slippage-bps", help="Simulated slippage in basis points.")
]
TrustPickle = Annotated[
    bool, typer.Option("--trust-pickle", help="Allow .joblib/.pkl artifacts (they run code).")
]
Bucket = Annotated[
    str, typer.Option("--bucket", help="s3://<bucket> or a local directory mirroring it.")
]
Home = Annotated[
    Path | None,
    typer.Option("--home", help="State directory (default ALGOSTACK_HOME or .algostack)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Report = Annotated[
    bool, typer.Option("--report/--no-report", help="Write report.html with charts.")
]
BucketOpt = Annotated[
    str | None, typer.Option("--bucket", help="The S3 bucket, e.g. s3://my-bucket")
]
DirOpt = Annotated[
    str | None, typer.Option("--dir", help="A local directory laid out like the bucket")
]


def open_bucket(bucket: str | None, directory: str | None) -> BucketStore:
    """The store of ``--bucket s3://...`` or ``--dir DIR`` (exactly one; ``ConfigError``)."""
    from algostack.adapters.storage import open_store
    from algostack.errors import ConfigError

    if (bucket is None) == (directory is None):
        raise ConfigError("give exactly one of --bucket s3://<bucket> or --dir <directory>")
    if bucket is not None and not bucket.startswith("s3://"):
        raise ConfigError(f"--bucket {bucket!r}: expected s3://<bucket>")
    return open_store(bucket if bucket is not None else str(directory))
