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
from algostack.control.requests import parse_event
from algostack.control.runtime import Clients, Deadline, LambdaContext, Runtime

log = logging.getLogger("algostack.control")
logging.getLogger().setLevel(logging.INFO)  # Lambda's root handler ships INFO to CloudWatch

Controller = Callable[[Clients, ControlConfig, Any, Deadline, Runtime], dict[str, Any]]


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


class Container:
    """One Lambda container: builds the clients and the config on the first invocation (the
    cold start) and keeps them; a fresh ``Runtime`` per invocation. The module's handlers are
    one container's methods; tests build their own with fakes."""

    def __init__(
        self,
        *,
        clients: Callable[[], Clients] = Clients.from_boto3,
        config: Callable[[], ControlConfig] = ControlConfig.from_env,
        runtime: Callable[[], Runtime] = Runtime,
    ) -> None:
        self._make_clients = clients
        self._make_config = config
        self._runtime = runtime
        self._clients: Clients | None = None
        self._config: ControlConfig | None = None

    def run(self, controller: Controller, event: Any, context: LambdaContext) -> dict[str, Any]:
        """Run ``controller`` for one invocation with the container's clients and config."""
        if self._config is None:
            self._config = self._make_config()
        if self._clients is None:
            self._clients = self._make_clients()
        return handle(
            controller,
            event,
            context,
            clients=self._clients,
            config=self._config,
            runtime=self._runtime(),
        )

    def ingest(self, event: Any, context: LambdaContext) -> dict[str, Any]:
        """``AlpacaWebsocketLambda_<env>``: start and bootstrap the ingest host."""
        return self.run(controllers.run_ingest, event, context)

    def trading(self, event: Any, context: LambdaContext) -> dict[str, Any]:
        """``TradingServerLambda_<env>``: start and bootstrap every trading instance."""
        return self.run(controllers.run_trading, event, context)

    def shutdown(self, event: Any, context: LambdaContext) -> dict[str, Any]:
        """``TradingServerShutdownLambda_<env>``: final sync, then stop every instance."""
        return self.run(controllers.run_shutdown, event, context)


_container = Container()
ingest_handler = _container.ingest
trading_handler = _container.trading
shutdown_handler = _container.shutdown
