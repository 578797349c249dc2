"""README.md and docs/*.md say only what is true of the code: commands, flags, paths, names.

The check is ``docs_claims.py`` (with ``doc_markdown.py`` and ``doc_code.py``); these tests
run it over the real documents, and over small documents written here to prove it reads each
form of claim and reports each kind of false one with its file and line.
"""

from __future__ import annotations

from doc_markdown import commands_in, read_spans
from docs_claims import check_docs, check_markdown, doc_files


def _commands(markdown: str) -> list[tuple[int, str, tuple[str, ...], tuple[str, ...]]]:
    spans = read_spans(markdown)
    return [
        (c.line, c.program, c.words, c.flags)
        for s in spans
        if s.kind != "prose"
        for c in commands_in(s)
    ]


def test_docs_every_command_flag_path_and_name_they_show_exists() -> None:
    report = check_docs(doc_files())
    assert report.problems == [], "false claims in the docs:\n" + "\n".join(report.problems)
    # The reader found the claims (an empty report would also have no problems).
    assert {("run",), ("trade",), ("gateway",), ("fleet", "start")} <= report.commands
    assert len(report.flags) >= 80
    assert len(report.paths) >= 100
    assert len(report.names) >= 150


def test_commands_shell_forms_read_as_the_shell_would() -> None:
    markdown = "\n".join(
        [
            "```bash",
            "FOO=bar .venv/bin/algostack run --speed 3000 \\",
            "    --max-speed   # a comment, --not-a-flag",
            'X=$(algostack fleet status --env qa) && make run ARGS="--packed --seed 3"',
            "algostack trade (--model P | --models P1,P2) --bucket B",
            "                [--nats-url URL] [--warmup/--no-warmup]",
            "algostack replay --bars .algostack/runs/<id>/bars.csv",
            "algostack node ingest|trader --dry-run; algostack sync --final",
            ".venv/bin/python bench/decision_latency.py --quick",
            "python -m algostack.testing.fake_alpaca --port 8765",
            "```",
            "Then `algostack models list --dir D` and `make lambdas`.",
        ]
    )
    assert _commands(markdown) == [
        (2, "algostack", ("run",), ("--speed", "--max-speed")),
        (4, "algostack", ("fleet", "status"), ("--env",)),
        (4, "make", ("run",), ("--packed", "--seed")),
        (
            5,
            "algostack",
            ("trade",),
            ("--model", "--models", "--bucket", "--nats-url", "--warmup", "--no-warmup"),
        ),
        (7, "algostack", ("replay",), ("--bars",)),
        (8, "algostack", ("node", "ingest|trader"), ("--dry-run",)),
        (8, "algostack", ("sync",), ("--final",)),
        (9, "script", ("bench/decision_latency.py",), ("--quick",)),
        (10, "script", ("src/algostack/testing/fake_alpaca.py",), ("--port",)),
        (12, "algostack", ("models", "list"), ("--dir",)),
        (12, "make", ("lambdas",), ()),
    ]


def test_commands_inline_code_over_a_line_break_is_one_command() -> None:
    markdown = "Run `algostack fleet status|start|stop\n--env dev|qa|prod` from a workstation.\n"
    assert _commands(markdown) == [(1, "algostack", ("fleet", "status|start|stop"), ("--env",))]


def test_check_true_claims_in_every_form_no_problem() -> None:
    markdown = "\n".join(
        [
            "# Ingest: `algostack ingest`",
            "",
            "```",
            "algostack ingest --source replay --replay-file bars.csv --speed max",
            "algostack fleet status|start|stop --env <env>",
            "make run ARGS='--max-speed'",
            "```",
            "",
            "## Options",
            '`--symbols` and `--embedded-nats`; `ARGS="--packed"` for `make run`.',
            "",
            "`src/algostack/control/` holds `ssm.py`; `infra/environments/{dev,qa,prod}`,",
            "`bench/[a-z]*.py`, `tests/unit/core/test_backoff.py`, `infra/build/<module>.zip`,",
            "`core/execution.BatchBook` and [the trader](trader.md).",
            "`algostack.core.backoff.retry_async`, `core.events.Decision`, `ModelRunner.on_bar`.",
            "",
            "| module | what |",
            "| --- | --- |",
            "| `core/backoff.py` | `Backoff`, `retry_async` |",
            "| `algostack.adapters.nats.bus.NatsBus` | `redact_url` |",
            "",
            "```python",
            "from algostack.core.backoff import Backoff, retry_async",
            "```",
        ]
    )
    report = check_markdown(markdown, "docs/example.md")
    assert report.problems == []
    assert {("ingest",), ("fleet", "start"), ("run",)} <= report.commands
    assert {(("ingest",), "--symbols"), (("run",), "--packed")} <= report.flags
    assert "infra/environments/prod" in report.paths
    assert "src/algostack/control/ssm.py" in report.paths
    assert {"core/backoff.py:retry_async", "ModelRunner.on_bar"} <= report.names


def test_check_false_claims_each_reported_with_file_and_line() -> None:
    markdown = "\n".join(
        [
            "# Title",
            "## Commands",
            "```",
            "algostack run --no-such-flag",
            "algostack fleet launch --env qa",
            "make deploy",
            ".venv/bin/python bench/decision_latency.py --no-such",
            "```",
            "## Ingest options: `algostack ingest`",
            "`--not-an-ingest-flag`; `core/no_such.py`, `tests/unit/nowhere/`.",
            "`algostack.core.backoff.NoSuch`, `ModelRunner.no_such_method`, [x](missing.md).",
            "`src/algostack/control/` holds `nowhere.py`.",
            "## Elsewhere",
            "`--allow-remote` is the dashboard's, `--nowhere` no command's.",
            "",
            "| module | what |",
            "| --- | --- |",
            "| `core/backoff.py` | `Backoff`, `no_such_name` |",
        ]
    )
    report = check_markdown(markdown, "docs/example.md")
    assert sorted(report.problems) == sorted(
        [
            "docs/example.md:4: `algostack run --no-such-flag`: no such option (its --help)",
            "docs/example.md:5: `algostack fleet launch`: no such command",
            "docs/example.md:6: `make deploy`: no such target in the Makefile",
            "docs/example.md:7: `bench/decision_latency.py --no-such`: no such option "
            "(its add_argument calls)",
            "docs/example.md:10: `--not-an-ingest-flag`: an option of none of the commands "
            "shown (algostack ingest)",
            "docs/example.md:10: `core/no_such.py`: no such file or directory "
            "(src/algostack/core/no_such.py)",
            "docs/example.md:10: `tests/unit/nowhere/`: no such file or directory "
            "(tests/unit/nowhere)",
            "docs/example.md:11: `algostack.core.backoff.NoSuch`: `NoSuch` is not defined in "
            "src/algostack/core/backoff.py",
            "docs/example.md:11: `ModelRunner.no_such_method`: class `ModelRunner` has no "
            "`no_such_method`",
            "docs/example.md:11: link `missing.md`: no such file",
            "docs/example.md:12: `nowhere.py`: in none of the directories named above it "
            "(bench, src/algostack/control, src/algostack/core)",
            "docs/example.md:14: `--nowhere`: an option of no algostack command",
            "docs/example.md:18: `no_such_name` is not defined in src/algostack/core/backoff.py "
            "(this row's module)",
        ]
    )


def test_read_spans_code_inline_and_prose_keep_their_lines() -> None:
    spans = read_spans("# T\ntext `a b` more\n```sh\nx \\\n  y\n```\n")
    assert [(s.line, s.kind, s.text) for s in spans] == [
        (1, "prose", "# T"),
        (2, "prose", "text `a b` more"),
        (2, "inline", "a b"),
        (4, "code", "x  y"),
    ]


def test_every_command_summary_is_one_paragraph_without_a_hard_break() -> None:
    # The first paragraph of a command's docstring is its summary in `--help` listings,
    # printed with its line breaks kept: a break mid-sentence shows as a cut line.
    from typing import Any

    import typer

    from algostack.cli import app

    def walk(cmd: Any, path: str) -> list[tuple[str, str]]:
        out = [(path, (cmd.help or "").strip().split("\n\n")[0])]
        for name, sub in getattr(cmd, "commands", {}).items():  # a group's subcommands
            out += walk(sub, f"{path} {name}")
        return out

    summaries = walk(typer.main.get_command(app), "algostack")
    assert len(summaries) > 15  # every command and subcommand was walked
    broken = [f"{path}: {text!r}" for path, text in summaries if "\n" in text]
    assert not broken, "summaries with a hard line break:\n" + "\n".join(broken)
