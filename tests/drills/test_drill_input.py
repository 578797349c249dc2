"""Bad input and a busy home: exit 2 (or the refusal) on one line naming the file, key or
option, before any process starts and with nothing lost."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
from drill_kit import (
    Run,
    algostack,
    assert_bucket_equals_journals,
    assert_journals_whole,
    copy_models,
)

from algostack.local.session import HomeLock

HEADER = "symbol,timestamp,open,high,low,close,volume\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--speed", "0"], "--speed must be a positive number of times real time, got 0.0"),
        (["run", "--replay", "{bad}"], "no usable bars"),
        (["replay", "--bars", "{bad}", "--models", "{models}"], "no usable bars"),
        (["replay", "--bars", "{other}", "--models", "{models}"], "none of its symbols (ZZZ)"),
        (["replay", "--bars", "{unsorted}", "--models", "{models}"], "sort the file"),
        (["run", "--replay", "{unsorted}"], "sort the file"),
        (["run", "--replay", "{other}"], "none of its symbols (ZZZ) is traded by the models"),
        (["run", "--replay", "{markup}"], "no usable bars ({markup} row 2: timestamp '[/x]'"),
        (["replay", "--bars", "{markup}", "--models", "{models}"], "timestamp '[/x]'"),
        (["run", "--slippage-bps", "-5"], "--slippage-bps must be >= 0, got -5.0"),
        (["run", "--dashboard-port", "99999"], "--dashboard-port must be 1-65535, got 99999"),
        (["run", "--max-speed", "--models", "{corrupt}"], "1 model(s) cannot trade: "),
    ],
)
def test_drill_bad_input_exits_2_with_one_line_naming_it(
    models_home: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "AAPL,notatime,1,1,1,1,1\n")
    other = tmp_path / "other.csv"
    other.write_text(HEADER + "ZZZ,2024-03-15T13:30:00Z,1,1,1,1,1\n")
    unsorted = tmp_path / "unsorted.csv"
    unsorted.write_text(HEADER + "".join(
        f"AAPL,2024-03-15T{13 + (59 - m) // 60:02d}:{(59 - m) % 60:02d}:00Z,1,1,1,1,1\n"
        for m in range(60)))  # fmt: skip
    corrupt = tmp_path / "store"
    (corrupt / "models/onnx/AAPL").mkdir(parents=True)
    (corrupt / "models/onnx/AAPL/model_1-outer_0_inner_0.onnx").write_bytes(b"not onnx")
    markup = tmp_path / "markup.csv"  # a value that reads as a Rich closing tag
    markup.write_text(HEADER + "AAPL,[/x],1,1,1,1,1\n")
    names = {"bad": bad, "other": other, "unsorted": unsorted, "corrupt": corrupt, "markup": markup}
    argv = [a.format(models=models_home, **names) for a in args]
    message = message.format(**names)
    home = tmp_path / "home"
    proc = algostack(*argv, "--no-progress" if argv[0] == "run" else "--no-report",
                     "--home", str(home), home=home)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not list((home / "journals").glob("*/*")), "a process started on bad input"


def test_drill_a_replay_file_with_bad_rows_says_so_once_in_the_summary(
    models_home: Path, tmp_path: Path
) -> None:
    """Half the rows refused: one summary note counts them and names the first, in the
    words `replay` uses; the rows themselves go to run.log. It used to be four log lines on
    stderr and no word in the summary."""
    home = copy_models(models_home, tmp_path / "home")
    bars = tmp_path / "bars.csv"
    rows = []
    for m in range(60):
        t = f"2024-03-15T{13 + (30 + m) // 60:02d}:{(30 + m) % 60:02d}:00Z"
        rows += [f"AAPL,{t},180,181,179,180.5,1000", f"AAPL,notatime{m},1,1,1,1,1",
                 f"MSFT,{t},400,401,399,400.5,1000", f"MSFT,{t},400,x,399,400,1000"]  # fmt: skip
    bars.write_text(HEADER + "\n".join(rows) + "\n")
    proc = algostack("run", "--replay", str(bars), "--max-speed", "--no-progress", "--json",
                     "--home", str(home), home=home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["bars"] == 120, summary
    said = [n for n in summary["notes"] if "bad row" in n]
    assert len(said) == 1, summary["notes"]
    assert said[0].startswith(f"120 bad row(s) skipped, first: {bars} row 3: timestamp"), said
    assert "skipped" not in proc.stderr, proc.stderr
    (log,) = (home / "runs").glob("*/logs/run.log")
    assert "replay rows skipped: 120 in all" in log.read_text()


def test_drill_a_model_key_the_catalog_ignores_is_reported_by_every_command(
    models_home: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(models_home / "models", store / "models")
    first = next((store / "models").rglob("*.onnx"))
    stray = first.with_name("nonumber-outer_0_inner_0.onnx")
    shutil.copy(first, stray)
    key = stray.relative_to(store).as_posix()
    for argv in (
        ["models", "list", "--dir", str(store)],
        ["models", "validate", "--dir", str(store)],
    ):
        proc = algostack(*argv, home=tmp_path)
        said = proc.stderr + proc.stdout
        assert key in said and "no trailing number" in said, (argv, said)
    # run and replay trade the rest, and say the key on one line (stderr; replay's notes)
    home = tmp_path / "home"
    run = algostack("run", "--day", "2024-03-15", "--max-speed", "--no-progress", "--json",
                    "--models", str(store), "--home", str(home), home=home)  # fmt: skip
    assert run.returncode == 0, run.stderr
    said = [line for line in run.stderr.splitlines() if key in line]
    assert len(said) == 1 and said[0].startswith(f"ignored {key}: model id 'nonumber'"), said
    ignored = said[0]
    summary = json.loads(run.stdout)
    assert summary["totals"]["trades"] > 0 and len(summary["models"]) == 4, summary
    (bars,) = (home / "runs").glob("*/bars.csv")
    replay = algostack("replay", "--bars", str(bars), "--models", str(store), "--no-report",
                       "--home", str(home), home=home)  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    said = [line for line in replay.stdout.splitlines() + replay.stderr.splitlines() if key in line]
    assert said == [ignored], said  # the same words, whole on one line (a note in a pipe)
    assert f"trades {int(summary['totals']['trades'])}" in replay.stdout, replay.stdout


def test_drill_models_validate_in_a_pipe_is_one_line_per_model(
    models_home: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(models_home / "models", store / "models")
    broken = next((store / "models").rglob("*.onnx"))
    broken.write_bytes(b"not onnx " * 500)  # a long reason: it must not wrap
    proc = algostack("models", "validate", "--dir", str(store), home=tmp_path)
    assert proc.returncode == 2
    lines = proc.stdout.splitlines()
    failed = [line for line in lines if "FAILED" in line]
    assert len(failed) == 1 and len(lines) == 4 + 1, proc.stdout  # one per model + the total
    assert lines[-1] == "3 OK, 1 failed, 0 ignored"


def test_drill_a_sizing_that_buys_no_share_stops_the_run_naming_the_file(
    models_home: Path, tmp_path: Path
) -> None:
    """$50 of a ~$180 stock is 0 shares: only the first bar's price can tell, so the trader
    stops there (exit 2) and the run ends on one line naming the file and the field, with
    nothing traded by that model. The live path's error used to be lost in nats-py's error
    callback: the model went on, silently deciding nothing, and the run exited 0."""
    store = tmp_path / "store"
    shutil.copytree(models_home / "models", store / "models")
    sma = next((store / "models/sma").rglob("*.json"))
    (sma.parent / sma.name.split("-")[0]).mkdir()
    config = sma.parent / sma.name.split("-")[0] / "trading.json"
    config.write_text('{"fixed_notional": 50}')
    home = tmp_path / "home"
    proc = algostack("run", "--day", "2024-03-15", "--max-speed", "--no-progress",
                     "--models", str(store), "--home", str(home), home=home)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    rel = config.relative_to(store).as_posix()
    assert len(errors) == 1, proc.stderr
    assert f"{rel}: field 'fixed_notional': $50 buys 0 shares" in errors[0], errors
    (trades,) = (home / "journals").glob("*/sma-*/trades_*.csv")
    assert len(trades.read_text().splitlines()) == 1, "a fill on a model that sizes to 0"


def test_drill_a_second_run_on_a_busy_home_is_refused_naming_the_first(
    models_home: Path, tmp_path: Path
) -> None:
    home = copy_models(models_home, tmp_path / "home")
    first = Run(home, speed="1")
    try:
        lock = home / ".lock"
        first.wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.proc.pid),
                       "the first run's lock", timeout=60)  # fmt: skip
        second = algostack("run", "--day", "2024-03-15", "--max-speed", "--no-progress",
                           "--home", str(home), home=home)  # fmt: skip
        assert second.returncode == 2
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, second.stderr
        assert f"another algostack run (PID {first.proc.pid}) is using {home}" in lines[0]
    finally:
        first.proc.send_signal(signal.SIGINT)
        first.finish()  # bounded (150 s): the stop, the final sync and the report under load
        first.close()
    HomeLock(home).acquire().release()  # free again once the first run has ended


def test_drill_ctrl_c_twice_still_writes_the_summary_and_exits_130(
    models_home: Path, tmp_path: Path
) -> None:
    home = copy_models(models_home, tmp_path / "home")
    run = Run(home, speed="60")
    try:
        run.wait_trading(fills=1)
        run.proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        run.proc.send_signal(signal.SIGINT)  # the second Ctrl-C, 0.5 s later
        out = run.finish(timeout=90)
    finally:
        run.close()
    assert out.code == 130
    assert out.summary is not None and out.summary["interrupted"]
    assert Path(out.summary["summary_path"]).is_file()
    assert_journals_whole(home)
    assert_bucket_equals_journals(home, out.summary)
