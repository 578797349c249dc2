"""``algostack models list|validate``: the fleet a store defines, and whether it loads."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from algostack.commands.options import AsJson, BucketOpt, DirOpt, TrustPickle, open_bucket
from algostack.commands.output import print_whole

models_app = typer.Typer(
    name="models",
    help="List the models in a bucket or directory, and validate them without trading.",
    no_args_is_help=True,
)

EnvOpt = Annotated[
    str, typer.Option("--env", help="Environment whose instance names to show (dev|qa|prod)")
]


def register(app: typer.Typer) -> None:
    """Add the ``models`` command group to the one Typer app."""
    app.add_typer(models_app, name="models")


def _fail(message: str, code: int = 1) -> typer.Exit:
    from algostack.commands.error_line import print_error

    print_error(message)
    return typer.Exit(code)


@models_app.command("list")
def list_cmd(
    bucket: BucketOpt = None,
    directory: DirOpt = None,
    env: EnvOpt = "dev",
    as_json: AsJson = False,
) -> None:
    """One row per model: its trading host's Name tag, sizing and limits; then ignored keys.

    Sizing and limits come from the model's trading.json (docs/models.md)."""
    from algostack.errors import EXIT_BAD_INPUT, AlgostackError, exit_code
    from algostack.services.catalog import list_catalog

    try:
        store = open_bucket(bucket, directory)
        catalog = list_catalog(store, environment=env)
    except AlgostackError as exc:
        raise _fail(str(exc), exit_code(exc)) from None
    if as_json:
        import orjson

        typer.echo(orjson.dumps(catalog.to_dict(), option=orjson.OPT_INDENT_2).decode())
    elif catalog.entries:
        _print_catalog(catalog)
    else:
        for line in catalog.ignored_lines():
            typer.echo(line)
    if not catalog.entries:
        raise _fail(_no_models(store.url), EXIT_BAD_INPUT)
    if any(not e.ok for e in catalog.entries):
        raise typer.Exit(EXIT_BAD_INPUT)  # a store a trader would refuse: bad input


def _no_models(url: str) -> str:
    return (
        f"no models under {url}/models/ (a model is models/<type>/<symbol>/<model_id>-outer_<X>"
        "_inner_<Y>.<ext>; --dir and --bucket name what holds models/)"
    )


def _print_catalog(catalog: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"models in {catalog.store_url} (environment {catalog.environment})")
    table.add_column("model (type/symbol/id)", no_wrap=True)
    table.add_column("instance Name tag", no_wrap=True)
    for col in ("folds", "sizing", "limits"):
        table.add_column(col)
    problems = any(e.problems for e in catalog.entries)
    if problems:  # only when there are some: the table fits a narrower terminal without
        table.add_column("problems", style="red", overflow="fold")
    for e in catalog.entries:
        s = e.spec
        row = [
            f"{s.model_type}/{s.symbol}/{s.model_id}",
            e.instance_name,
            f"{len(s.folds)} {','.join(e.formats)}",
            "" if e.config_error else e.trading.sizing_text,
            "" if e.config_error else _limits_text(e.trading.limits),
        ]
        table.add_row(*row, *(["; ".join(e.problems)] if problems else []))
    print_whole(table, console)
    if catalog.ignored and not console.is_terminal:  # a pipe or a CI log: never cut or folded
        for line in catalog.ignored_lines():
            console.print(line, highlight=False, soft_wrap=True)
    elif catalog.ignored:
        ign = Table(title=f"ignored keys ({len(catalog.ignored)})")
        ign.add_column("key", overflow="fold")
        ign.add_column("reason")
        for key, reason in sorted(catalog.ignored.items()):
            ign.add_row(key, reason)
        console.print(ign)
    live = f", {catalog.live_outputs} live output file(s)" if catalog.live_outputs else ""
    console.print(f"{len(catalog.entries)} model(s), {len(catalog.ignored)} ignored key(s){live}")


def _limits_text(limits: Any) -> str:
    """The key limits in a few words: position cap, notional cap, daily loss."""
    return (
        f"{limits.max_position_shares} sh, ${limits.max_notional:,.0f}, "
        f"loss ${limits.daily_loss_limit:,.0f}"
    )


@models_app.command("validate")
def validate_cmd(
    bucket: BucketOpt = None,
    directory: DirOpt = None,
    env: EnvOpt = "dev",
    trust_pickle: TrustPickle = False,
    as_json: AsJson = False,
) -> None:
    """Load every model and score a zero vector, without trading; exit 2 if any fails."""
    from algostack.errors import EXIT_BAD_INPUT, AlgostackError, exit_code
    from algostack.services.catalog import list_catalog, validate_catalog

    try:
        store = open_bucket(bucket, directory)
        catalog = list_catalog(store, environment=env)
        results = validate_catalog(store, catalog, trust_pickle=trust_pickle)
    except AlgostackError as exc:
        raise _fail(str(exc), exit_code(exc)) from None
    if as_json:
        import orjson

        doc = {
            "store": store.url,
            "results": [r.to_dict() for r in results],
            "ignored": [{"key": k, "reason": v} for k, v in sorted(catalog.ignored.items())],
        }
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        from rich.console import Console

        console = Console()
        if console.is_terminal:
            console.print(_validation_table(store.url, results))
        else:  # a pipe or a CI log: one line per model, never wrapped
            for r in results:
                verdict = "OK" if r.ok else f"FAILED: {r.message}"
                typer.echo(f"{r.prefix}  {verdict}  folds={r.folds} formats={','.join(r.formats)}")
        for line in catalog.ignored_lines():
            typer.echo(line)
        bad = sum(not r.ok for r in results)
        typer.echo(f"{len(results) - bad} OK, {bad} failed, {len(catalog.ignored)} ignored")
    if not results:
        raise _fail(_no_models(store.url), EXIT_BAD_INPUT)
    if any(not r.ok for r in results):
        raise typer.Exit(EXIT_BAD_INPUT)


def _validation_table(url: str, results: list[Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"validation of {url}")
    table.add_column("model", overflow="fold")
    table.add_column("result", overflow="fold")
    for col in ("folds", "formats"):
        table.add_column(col)
    table.add_column("features", overflow="fold")
    for col in ("score(0)", "load ms"):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.prefix,
            "[green]OK[/]" if r.ok else f"[red]{r.message}[/]",
            str(r.folds),
            ",".join(r.formats),
            ",".join(r.features),
            "" if r.score is None else f"{r.score:.6g}",
            f"{r.load_ms:.1f}" if r.ok else "",
        )
    return table
