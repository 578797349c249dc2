"""The catalog and ``algostack models list|validate`` with a model's ``trading.json``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.storage import LocalDirStore
from algostack.cli import app
from algostack.core.naming import group_models
from algostack.services.catalog import list_catalog

PREFIX = "models/sma/AAPL/model_4"
FOLD = f"{PREFIX}-outer_0_inner_0.json"
CONFIG = f"{PREFIX}/trading.json"


def _store(root: Path, config: bytes | None) -> Path:
    data = dump_native(kind="linear", features=["sma_ratio_10_30"], coef=[1.0], intercept=0.0,
                       thresholds={"long_entry": 0.0, "long_exit": 0.0})  # fmt: skip
    (root / FOLD).parent.mkdir(parents=True, exist_ok=True)
    (root / FOLD).write_bytes(data)
    if config is not None:
        (root / CONFIG).parent.mkdir(parents=True, exist_ok=True)
        (root / CONFIG).write_bytes(config)
    return root


def test_group_models_gives_trading_json_to_its_model_not_ignored() -> None:
    orphan = "models/sma/AAPL/model_9/trading.json"
    models, ignored = group_models([FOLD, CONFIG, orphan])
    (spec,) = models
    assert spec.trading_key == CONFIG and CONFIG not in ignored
    assert ignored[orphan].startswith("trading config of no model")


def test_list_catalog_attaches_the_parsed_config(tmp_path: Path) -> None:
    _store(tmp_path, b'{"fixed_shares": 7, "daily_loss_limit": 400}')
    catalog = list_catalog(LocalDirStore(tmp_path))
    (entry,) = catalog.entries
    assert entry.ok and catalog.ignored == {}
    assert entry.spec.trading is not None and entry.trading.sizing.shares == 7
    assert entry.trading.limits.daily_loss_limit == 400.0


runner = CliRunner()


def test_cli_models_list_shows_sizing_and_limits(tmp_path: Path) -> None:
    _store(tmp_path / "a", b'{"fixed_shares": 7, "max_position_shares": 50}')
    res = runner.invoke(app, ["models", "list", "--dir", str(tmp_path / "a"), "--json"])
    assert res.exit_code == 0, res.output
    (model,) = json.loads(res.stdout)["models"]
    trading = model["trading"]
    assert trading["key"] == CONFIG and trading["fixed_shares"] == 7
    assert trading["sizing"] == "7 shares" and trading["max_position_shares"] == 50
    assert trading["max_notional"] == 25_000.0 and trading["daily_loss_limit"] == 1_000.0
    # an 80-column pipe: the row is whole, not squeezed to "siz…" and "50 sh, $2…"
    table = runner.invoke(
        app, ["models", "list", "--dir", str(tmp_path / "a")], env={"COLUMNS": "80"}
    )
    assert table.exit_code == 0, table.output
    (row,) = [ln for ln in table.stdout.splitlines() if model["instance_name"] in ln]
    assert "7 shares" in row and "50 sh, $25,000, loss $1,000" in row, table.stdout


def test_cli_models_list_without_file_shows_the_defaults(tmp_path: Path) -> None:
    _store(tmp_path, None)
    res = runner.invoke(app, ["models", "list", "--dir", str(tmp_path), "--json"])
    (model,) = json.loads(res.stdout)["models"]
    assert model["trading"]["key"] is None and model["trading"]["sizing"] == "up to the caps"
    assert model["trading"]["max_position_shares"] == 100


def test_cli_models_validate_fails_a_bad_config_with_its_one_line(tmp_path: Path) -> None:
    _store(tmp_path, b'{"fixed_shares": 200}')
    res = runner.invoke(app, ["models", "validate", "--dir", str(tmp_path)], env={"COLUMNS": "80"})
    assert res.exit_code == 2
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith(PREFIX))
    assert "FAILED: " + CONFIG + ": field 'fixed_shares': 200 is above" in line
    good = tmp_path / "good"
    _store(good, b'{"fixed_shares": 20}')
    ok = runner.invoke(app, ["models", "validate", "--dir", str(good)], env={"COLUMNS": "80"})
    assert ok.exit_code == 0 and "1 OK, 0 failed, 0 ignored" in ok.stdout
