"""Options several commands share, declared once (same flag, same help everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
