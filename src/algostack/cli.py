"""The one Typer app: run, ingest, trade, gateway, sync, dashboard, models, fleet, node,
replay, lambdas.

Each command lives in ``algostack.commands.<name>`` and exposes ``register(app)``; heavy
imports happen inside the command functions so ``algostack --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="algostack",
    help="An algorithmic trading desk: market data -> NATS -> models -> risk -> broker.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    add_completion=False,
)

COMMAND_MODULES = (
    "run",
    "replay",
    "drift",
    "ingest",
    "trade",
    "gateway",
    "models",
    "data",
    "sync",
    "dashboard",
    "fleet",
    "node",
    "lambdas",
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        fullname = f"algostack.commands.{name}"
        try:
            module = importlib.import_module(fullname)
        except ModuleNotFoundError as exc:
            if exc.name == fullname:  # command not built yet; any other missing module is a bug
                continue
            raise
        module.register(app)


@app.callback()
def _root() -> None:
    """algostack command line."""


_register_all()


def main() -> None:
    """Console-script entry point."""
    app()
