"""``algostack data list|pull``: the market-data archive the ingest writes (docs/data.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from algostack.commands.options import AsJson, BucketOpt, DirOpt, open_bucket

if TYPE_CHECKING:
    from algostack.services.archive_reader import DayListing

data_app = typer.Typer(
    name="data",
    help="List the archived market data (days, kinds, symbols) and pull a day as a bars file.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the one Typer app."""
    app.add_typer(data_app, name="data")


def _fail(exc: Exception) -> NoReturn:
    from algostack.commands.error_line import print_error
    from algostack.errors import exit_code

    print_error(exc)
    raise typer.Exit(exit_code(exc))


@data_app.command("list")
def list_cmd(
    bucket: BucketOpt = None,
    directory: DirOpt = None,
    day: Annotated[str | None, typer.Option(help="Only this day (YYYY-MM-DD).")] = None,
    as_json: AsJson = False,
) -> None:
    """One row per archived day and kind: complete or not (and why), symbols, rows, parts."""
    from algostack.errors import AlgostackError, DataError
    from algostack.local.session import parse_day
    from algostack.services.archive import ROOT
    from algostack.services.archive_reader import scan

    try:
        store = open_bucket(bucket, directory)
        wanted = parse_day(day)
        listings = scan(store, day=wanted)
        if wanted is not None and not listings:
            raise DataError(f"{store.url}/{ROOT}/: nothing archived on {wanted}")
    except AlgostackError as exc:
        _fail(exc)
    if as_json:
        import orjson

        doc = {"store": store.url, "days": [lst.to_dict() for lst in listings]}
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    _print_listings(store.url, listings)


def _print_listings(url: str, listings: list[DayListing]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a pipe or a CI log: one line per day and kind, never cut
        for lst in listings:
            verdict = "complete" if lst.complete else f"INCOMPLETE: {lst.problem}"
            verdict += f" (short: {lst.short})" if lst.short else ""
            typer.echo(
                f"{lst.day} {lst.kind} symbols={','.join(sorted(lst.symbols))} "
                f"rows={lst.rows} parts={sum(len(s.parts) for s in lst.symbols.values())} "
                f"{verdict}"
            )
    else:
        table = Table(title=f"market data in {url}")
        for col in ("date", "kind", "symbols", "rows", "parts"):
            table.add_column(col)
        table.add_column("complete", overflow="fold")
        for lst in listings:
            table.add_row(
                lst.day.isoformat(),
                lst.kind,
                ",".join(sorted(lst.symbols)),
                str(lst.rows),
                str(sum(len(s.parts) for s in lst.symbols.values())),
                ("[green]yes[/]" if lst.complete else f"[red]no: {lst.problem}[/]")
                + (f" [yellow]short: {lst.short}[/]" if lst.short else ""),
            )
        console.print(table)
    days = len({lst.day for lst in listings})
    typer.echo(f"{days} day(s), {sum(not lst.complete for lst in listings)} incomplete")


@data_app.command("pull")
def pull_cmd(
    day: Annotated[str, typer.Option(help="The session day to pull (YYYY-MM-DD).")],
    bucket: BucketOpt = None,
    directory: DirOpt = None,
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols (default: every one archived).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Bars file to write, .parquet or .csv (default bars_<day>.parquet)."),
    ] = None,
    partial: Annotated[
        bool, typer.Option("--partial", help="Pull a day the ingest did not finish, as it is.")
    ] = False,
) -> None:
    """Write a day's archived minute bars as a file `algostack replay --bars` reads."""
    import os

    from algostack.adapters.offline.bars_file import write_bars
    from algostack.commands.ingest import parse_symbols
    from algostack.core.atomic_file import write_error
    from algostack.errors import AlgostackError, ConfigError
    from algostack.local.session import parse_day
    from algostack.services.archive_reader import read_bars

    try:
        store = open_bucket(bucket, directory)
        when = parse_day(day)
        assert when is not None
        path = out or Path(f"bars_{when.isoformat()}.parquet")
        if path.suffix.lower() not in (".parquet", ".pq", ".csv"):
            raise ConfigError(f"--out {path}: use a .parquet or .csv file")
        bars = read_bars(store, when, symbols=parse_symbols(symbols), partial=partial)
        tmp = path.with_name(f".{path.name}.part{path.suffix}")
        try:
            n = write_bars(tmp, bars)
            os.replace(tmp, path)
        except OSError as exc:  # a full disk, a missing directory: one line, exit 1
            tmp.unlink(missing_ok=True)
            raise write_error(path, exc) from None
    except AlgostackError as exc:
        _fail(exc)
    typer.echo(f"{n} bar(s) of {len({b.symbol for b in bars})} symbol(s) on {when} -> {path}")
