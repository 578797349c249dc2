"""``algostack lambdas package``: build the controller Lambda zips Terraform deploys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

lambdas_app = typer.Typer(
    name="lambdas",
    help="Build the controller Lambda packages (one deterministic zip per controller module).",
    no_args_is_help=True,
)


@lambdas_app.command("package")
def package_cmd(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output directory (default: <repository>/infra/build)"),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Repository root (default: found from this install or cwd)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines")] = False,
) -> None:
    """Write alpaca_websocket.zip, trading_server.zip and trading_server_shutdown.zip."""
    import json

    from algostack.control.package import build_all, find_root
    from algostack.errors import AlgostackError, exit_code

    try:
        repo = find_root(root.resolve()) if root is not None else find_root()
        packages = build_all(out.resolve() if out is not None else None, repo)
    except AlgostackError as exc:  # 2 for a wrong root, 1 for a zip it could not write
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exit_code(exc)) from None
    if as_json:
        typer.echo(json.dumps([p.to_dict() for p in packages], indent=2))
        return
    for p in packages:
        typer.echo(f"{p.path}  {p.size} bytes  {len(p.files)} files  sha256={p.sha256_b64}")


def register(app: typer.Typer) -> None:
    """Add the ``lambdas`` command group to the one Typer app."""
    app.add_typer(lambdas_app, name="lambdas")
