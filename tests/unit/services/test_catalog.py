from __future__ import annotations

from pathlib import Path

import boto3
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws
from typer.testing import CliRunner

from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.storage import LocalDirStore, S3Store
from algostack.cli import app
from algostack.services.catalog import build_catalog, list_catalog, validate_catalog

SMA = dump_native(
    kind="linear",
    features=["sma_ratio_10_30"],
    coef=[1.0],
    intercept=0.0,
    thresholds={"long_entry": 0.0, "long_exit": 0.0},
)


def _seed(store: LocalDirStore | S3Store) -> None:
    store.put_bytes("models/sma/AAPL/model_4-outer_0_inner_0.json", SMA)
    store.put_bytes("models/sma/AAPL/model_4-outer_0_inner_1.json", SMA)
    store.put_bytes("models/lin/MSFT/12-outer_0_inner_0.json", SMA)
    store.put_bytes("models/lin/MSFT/nonumber-outer_0_inner_0.json", SMA)
    store.put_bytes("models/README.md", b"notes")
    store.put_bytes("models/sma/AAPL/model_4/live/2026-11-24/trades_2026-11-24.csv", b"x")


def test_list_catalog_local_dir_gives_fleet_and_ignored_reasons(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    _seed(store)
    store.put_bytes("other/thing.json", b"{}")  # outside models/: not listed at all
    cat = list_catalog(store, environment="qa")
    assert [(e.spec.prefix, e.instance_name) for e in cat.entries] == [
        ("models/lin/MSFT/12", "trading-server-qa-MSFT-lin-12"),
        ("models/sma/AAPL/model_4", "trading-server-qa-AAPL-sma-4"),
    ]
    assert cat.entries[1].formats == ("json",) and len(cat.entries[1].spec.folds) == 2
    assert "no trailing number" in cat.ignored["models/lin/MSFT/nonumber-outer_0_inner_0.json"]
    assert "does not match" in cat.ignored["models/README.md"]
    # The desk's own journals under a model's prefix are counted, not listed as ignored;
    # under a prefix that holds no model they are a key the user should hear about.
    assert not any("/live/" in k for k in cat.ignored) and cat.live_outputs == 1
    assert cat.to_dict()["live_outputs"] == 1
    orphan = "models/gone/AAPL/model_9/live/2026-11-24/trades_2026-11-24.csv"
    store.put_bytes(orphan, b"x")
    again = list_catalog(store, environment="qa")
    assert "does not match" in again.ignored[orphan] and again.live_outputs == 1
    assert "other/thing.json" not in cat.ignored


def test_list_catalog_s3_paginates_past_one_thousand_keys() -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="algo")
        store = S3Store("algo", client)
        _seed(store)
        for i in range(1001):
            client.put_object(Bucket="algo", Key=f"models/noise/n{i:04d}.txt", Body=b"")
        store.put_bytes("models/zz/TSLA/model_9-outer_0_inner_0.json", SMA)  # after page 1
        cat = list_catalog(store, environment="dev")
        prefixes = [e.spec.prefix for e in cat.entries]
        assert "models/zz/TSLA/model_9" in prefixes and len(prefixes) == 3
        assert len(cat.ignored) == 1001 + 2 and cat.live_outputs == 1
        results = validate_catalog(store, cat)
        assert all(r.ok for r in results), results


def test_catalog_flags_instance_name_collisions_and_bad_symbols() -> None:
    keys = [
        "models/xgb/AAPL/model_1-outer_0_inner_0.onnx",
        "models/xgb/AAPL/m1-outer_0_inner_0.onnx",
        "models/xgb/aapl/model_2-outer_0_inner_0.onnx",
        "models/xgb/MSFT/model_3-outer_0_inner_0.bin",
    ]
    cat = build_catalog(keys, environment="dev")
    problems = {e.spec.prefix: e.problems for e in cat.entries}
    assert "also used by models/xgb/AAPL/model_1" in problems["models/xgb/AAPL/m1"][0]
    assert "also used by models/xgb/AAPL/m1" in problems["models/xgb/AAPL/model_1"][0]
    assert "invalid symbol 'aapl'" in problems["models/xgb/aapl/model_2"][0]
    assert "unknown artifact extension '.bin'" in problems["models/xgb/MSFT/model_3"][0]


part = st.text(alphabet="abcAZ09_.-", min_size=1, max_size=6)


@given(
    st.lists(
        st.tuples(
            part,
            part,
            part,
            st.integers(0, 9),
            st.integers(0, 9),
            st.sampled_from(["", ".onnx", ".json"]),
        ),
        max_size=15,
    ),
    st.lists(st.text(alphabet="abc/_-.019", max_size=30), max_size=8),
)
def test_catalog_every_key_is_either_a_fold_or_ignored_with_a_reason(
    parts: list[tuple[str, str, str, int, int, str]], noise: list[str]
) -> None:
    keys = [f"models/{t}/{s}/{m}-outer_{x}_inner_{y}{r}" for t, s, m, x, y, r in parts] + noise
    keys = list(dict.fromkeys(keys))  # a store lists each key once
    cat = build_catalog(keys, environment="prod")
    fold_keys = [a.key for e in cat.entries for a in e.spec.folds]
    assert len(fold_keys) == len(set(fold_keys))
    assert set(fold_keys) | set(cat.ignored) == set(keys)
    assert not set(fold_keys) & set(cat.ignored)
    for e in cat.entries:
        assert e.instance_name.startswith(
            f"trading-server-prod-{e.spec.symbol}-{e.spec.model_type}-"
        )
        assert e.instance_name.endswith(f"-{e.spec.model_number}")
        assert all(a.key.startswith(e.spec.prefix + "-outer_") for a in e.spec.folds)
    assert all(reason for reason in cat.ignored.values())


def test_validate_catalog_reports_each_model_ok_or_error(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    _seed(store)
    store.put_bytes("models/bad/AAPL/model_5-outer_0_inner_0.json", b"{")
    store.put_bytes("models/empty/AAPL/model_6-outer_0_inner_0.onnx", b"")
    results = {r.prefix: r for r in validate_catalog(store, list_catalog(store))}
    assert results["models/sma/AAPL/model_4"].ok and results["models/sma/AAPL/model_4"].score == 0.0
    assert "not valid JSON" in results["models/bad/AAPL/model_5"].message
    assert "empty artifact" in results["models/empty/AAPL/model_6"].message
    assert not results["models/empty/AAPL/model_6"].ok


runner = CliRunner()


def test_cli_models_list_json_and_table(tmp_path: Path) -> None:
    _seed(LocalDirStore(tmp_path))
    res = runner.invoke(app, ["models", "list", "--dir", str(tmp_path), "--env", "prod", "--json"])
    assert res.exit_code == 0, res.output
    doc = orjson.loads(res.stdout)
    assert [m["instance_name"] for m in doc["models"]] == [
        "trading-server-prod-MSFT-lin-12",
        "trading-server-prod-AAPL-sma-4",
    ]
    assert len(doc["ignored"]) == 2 and doc["live_outputs"] == 1
    res = runner.invoke(app, ["models", "list", "--dir", str(tmp_path)], env={"COLUMNS": "250"})
    assert res.exit_code == 0
    assert "trading-server-dev-AAPL-sma-4" in res.stdout
    assert "no trailing number" in res.stdout
    assert "2 model(s), 2 ignored key(s), 1 live output file(s)" in res.stdout


def test_cli_models_validate_exits_nonzero_when_a_model_fails(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    _seed(store)
    ok = runner.invoke(app, ["models", "validate", "--dir", str(tmp_path), "--json"])
    assert ok.exit_code == 0, ok.output
    assert all(r["ok"] for r in orjson.loads(ok.stdout)["results"])
    store.put_bytes("models/bad/AAPL/model_5-outer_0_inner_0.json", b"{")
    bad = runner.invoke(app, ["models", "validate", "--dir", str(tmp_path)], env={"COLUMNS": "80"})
    assert bad.exit_code == 2
    # Not a terminal (a pipe, a CI log): one line per model, however long the reason.
    lines = bad.stdout.splitlines()
    failed = [line for line in lines if "FAILED" in line]
    assert len(failed) == 1 and failed[0].startswith("models/bad/AAPL/model_5  FAILED: ")
    doc = orjson.loads(ok.stdout)
    ignored = [line for line in lines if line.startswith("ignored models/")]
    assert len(ignored) == len(doc["ignored"]) == 2  # never silent about a key it skips
    assert any("no trailing number" in line for line in ignored)
    assert len(lines) == len(doc["results"]) + 1 + 2 + 1  # + the bad one, ignored, total
    assert lines[-1] == f"{len(doc['results'])} OK, 1 failed, 2 ignored"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["models", "list"], "exactly one of --bucket"),
        (["models", "list", "--bucket", "algo"], "expected s3://"),
        (["models", "validate", "--dir", "/nonexistent/x"], "does not exist"),
    ],
)
def test_cli_models_bad_arguments_give_one_line_error(args: list[str], match: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2  # bad input, as in every command
    assert match in res.output
    assert "Traceback" not in res.output


def test_cli_models_list_of_a_store_without_models_says_where_it_looked(tmp_path: Path) -> None:
    # The usual mistake: --dir at the models/ folder itself instead of what holds it.
    _seed(LocalDirStore(tmp_path / "home"))
    res = runner.invoke(app, ["models", "list", "--dir", str(tmp_path / "home" / "models")])
    assert res.exit_code == 2
    assert f"no models under {tmp_path / 'home' / 'models'}/models/" in res.output
    assert "--dir and --bucket name what holds models/" in res.output
    assert "┏" not in res.output  # no empty table
