"""Lambda entry points (the handler strings of the Terraform contract). Thin: parse the
event, call a controller with the cold-start clients, return a dict; failures raise.

``algostack.control.handlers.ingest_handler`` / ``trading_handler`` / ``shutdown_handler``.
Stdlib + boto3 only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from algostack.control import controllers
from algostack.control.config import ControlConfig
from algostack.control.events import parse_event
from algostack.control.runtime import Clients, Deadline, LambdaContext, Runtime

log = logging.getLogger("algostack.control")
logging.getLogger().setLevel(logging.INFO)  # Lambda's root handler ships INFO to CloudWatch

Controller = Callable[[Clients, ControlConfig, Any, Deadline, Runtime], dict[str, Any]]

_clients: Clients | None = None
_config: ControlConfig | None = None


def _cold_start() -> tuple[Clients, ControlConfig]:
    global _clients, _config
    if _config is None:
        _config = ControlConfig.from_env()
    if _clients is None:
        _clients = Clients.from_boto3()
    return _clients, _config


def handle(
    controller: Controller,
    event: Any,
    context: LambdaContext,
    *,
    clients: Clients,
    config: ControlConfig,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Run ``controller`` for one invocation with explicit dependencies (what tests call)."""
    rt = runtime or Runtime()
    deadline = Deadline.from_context(context, clock=rt.clock)
    now = datetime.fromtimestamp(rt.wall(), UTC)
    request = parse_event(event, context.aws_request_id, now)
    log.info(
        "start %s",
        getattr(controller, "__name__", "controller"),
        extra={
            "fields": {
                "request": request.source,
                "day": request.day.isoformat(),
                "dry_run": request.dry_run,
                "force": request.force,
            }
        },
    )
    result = controller(clients, config, request, deadline, rt)
    log.info(
        "result %s",
        json.dumps({k: result.get(k) for k in ("component", "status", "reason", "counts")}),
    )
    return result


def ingest_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """``AlpacaWebsocketLambda_<env>``: start and bootstrap the ingest host."""
    clients, config = _cold_start()
    return handle(controllers.run_ingest, event, context, clients=clients, config=config)


def trading_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """``TradingServerLambda_<env>``: start and bootstrap every trading instance."""
    clients, config = _cold_start()
    return handle(controllers.run_trading, event, context, clients=clients, config=config)


def shutdown_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """``TradingServerShutdownLambda_<env>``: final sync, then stop every instance."""
    clients, config = _cold_start()
    return handle(controllers.run_shutdown, event, context, clients=clients, config=config)
