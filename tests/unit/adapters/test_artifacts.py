from __future__ import annotations

import io
import pickle
from pathlib import Path

import joblib
import numpy as np
import orjson
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from algostack.adapters.artifacts import ArtifactError, load_model, load_models
from algostack.adapters.artifacts.export import export_linear_json, export_sklearn, write_fold
from algostack.adapters.artifacts.native_json import dump_native
from algostack.adapters.storage import LocalDirStore
from algostack.core.naming import group_models
from algostack.core.signals import Thresholds

FEATS = ["ret_1", "ret_5", "rsi_14", "tod"]
TH = {"long_entry": 0.55, "long_exit": 0.5}
PREFIX = "models/logreg/AAPL/model_1"


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, len(FEATS)))
    y = (x[:, 0] - 0.5 * x[:, 2] + rng.normal(size=300) > 0).astype(int)
    return x, y


def _load(store: LocalDirStore, prefix: str = PREFIX, **kw: bool):  # type: ignore[no-untyped-def]
    specs, _ = group_models(list(store.list_keys("models/")))
    (spec,) = [s for s in specs if s.prefix == prefix]
    return load_model(store, spec, **kw)


def test_onnx_folds_average_to_the_mean_of_sklearn_probabilities(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    ests = []
    for i in range(3):
        x, y = _data(i)
        est = Pipeline([("s", StandardScaler()), ("m", LogisticRegression())]).fit(x, y)
        ests.append(est)
        write_fold(store, f"{PREFIX}-outer_{i}_inner_0.onnx", export_sklearn(est, FEATS, TH))
    model = _load(store)
    assert model.features == tuple(FEATS)
    assert model.thresholds == Thresholds(0.55, 0.5)
    assert model.timeframe == "1Min"
    assert len(model.fold_keys) == 3
    probe = np.array([0.3, -1.0, 0.2, 0.5])
    want = np.mean([e.predict_proba(probe[None])[0, 1] for e in ests])
    assert model.score(probe) == pytest.approx(want, abs=1e-6)  # ONNX runs in float32
    assert model.fused  # three folds, one session call per bar
    assert model.score(probe) == pytest.approx(np.mean(model.fold_scores(probe)), abs=1e-7)
    assert model.fold_scores(probe)[0] == pytest.approx(
        ests[0].predict_proba(probe[None])[0, 1], abs=1e-6
    )


def test_onnx_gbt_and_regressor_export_score_like_sklearn(tmp_path: Path) -> None:
    x, y = _data(5)
    gbt = GradientBoostingClassifier(n_estimators=10, max_depth=2).fit(x, y)
    reg = LinearRegression().fit(x, x[:, 0] * 2.0)
    store = LocalDirStore(tmp_path)
    write_fold(
        store, "models/gbt/MSFT/model_2-outer_0_inner_0.onnx", export_sklearn(gbt, FEATS, TH)
    )
    write_fold(
        store,
        "models/reg/MSFT/model_3-outer_0_inner_0.onnx",
        export_sklearn(reg, FEATS, {"long_entry": 0.1, "long_exit": 0.0}),
    )
    probe = x[7]
    g = _load(store, "models/gbt/MSFT/model_2")
    assert g.score(probe) == pytest.approx(gbt.predict_proba(probe[None])[0, 1], abs=1e-5)
    r = _load(store, "models/reg/MSFT/model_3")
    assert r.score(probe) == pytest.approx(reg.predict(probe[None])[0], abs=1e-5)


def test_json_linear_folds_collapse_to_the_exact_mean(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    folds = [
        ([1.0, 2.0], 0.5, None),
        ([3.0, -2.0], -0.5, {"mean": [1.0, 0.0], "scale": [2.0, 4.0]}),
    ]
    for i, (coef, b, scaler) in enumerate(folds):
        data = dump_native(
            kind="linear",
            features=["ret_1", "tod"],
            coef=coef,
            intercept=b,
            thresholds=TH,
            scaler=scaler,
        )
        write_fold(store, f"models/lin/MSFT/m_3-outer_0_inner_{i}.json", data)
    model = _load(store, "models/lin/MSFT/m_3")
    x = np.array([0.2, 0.7])
    f0 = 1.0 * 0.2 + 2.0 * 0.7 + 0.5
    f1 = 3.0 * (0.2 - 1.0) / 2.0 - 2.0 * 0.7 / 4.0 - 0.5
    assert model.score(x) == pytest.approx((f0 + f1) / 2, rel=1e-12)
    assert model.fold_scores(x) == pytest.approx([f0, f1], rel=1e-12)


def test_json_logistic_matches_sklearn_through_export(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    ests = []
    for i in range(2):
        x, y = _data(10 + i)
        est = Pipeline([("s", StandardScaler()), ("m", LogisticRegression())]).fit(x, y)
        ests.append(est)
        write_fold(
            store, f"models/lr/AAPL/m_9-outer_{i}_inner_0.json", export_linear_json(est, FEATS, TH)
        )
    model = _load(store, "models/lr/AAPL/m_9")
    probe = np.array([2.0, -1.0, 0.5, 40.0])
    want = np.mean([e.predict_proba(probe[None])[0, 1] for e in ests])
    assert model.score(probe) == pytest.approx(want, rel=1e-9)
    assert 0.0 <= model.score(np.full(4, 1e6)) <= 1.0  # no overflow on huge inputs


def test_sma_cross_json_scores_the_ratio_itself(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    data = dump_native(
        kind="linear",
        features=["sma_ratio_10_30"],
        coef=[1.0],
        intercept=0.0,
        thresholds={"long_entry": 0.0, "long_exit": 0.0},
    )
    write_fold(store, "models/sma/AAPL/model_4-outer_0_inner_0.json", data)
    model = _load(store, "models/sma/AAPL/model_4")
    for v in (-0.01, 0.0, 1e-9):
        assert model.score(np.array([v])) == v


def test_score_refuses_wrong_vector_shape(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    x, y = _data(1)
    write_fold(
        store,
        f"{PREFIX}-outer_0_inner_0.onnx",
        export_sklearn(LogisticRegression().fit(x, y), FEATS, TH),
    )
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        _load(store).score(np.zeros(3))


def _native(**over: object) -> bytes:
    doc: dict[str, object] = {
        "format": "algostack.linear/v1",
        "kind": "linear",
        "features": ["ret_1"],
        "coef": [1.0],
        "intercept": 0.0,
        "thresholds": {"long_entry": 0.0, "long_exit": 0.0},
        "timeframe": "1Min",
    }
    doc.update(over)
    return orjson.dumps({k: v for k, v in doc.items() if v is not None})


KEY = "models/lin/AAPL/m_1-outer_0_inner_0.json"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty artifact"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (_native(format="other/v9"), "'format' must be"),
        (_native(kind="tree"), "'kind' must be one of"),
        (_native(coef=[1.0, 2.0]), "list of 1 numbers"),
        (_native(coef=["a"]), "numbers only"),
        (_native(features=["momentum_9"]), "unknown feature 'momentum_9'; known forms"),
        (_native(features=[]), "non-empty list"),
        (_native(timeframe="1 minute"), "timeframe '1 minute'"),
        (_native(thresholds={"long_entry": 0.0, "long_exit": 1.0}), "long_exit .* must be <="),
        (_native(extra=1), r"unknown field\(s\) \['extra'\]"),
        (_native(scaler={"mean": [0.0], "scale": [0.0]}), "holds a zero"),
        (_native(intercept=None), r"missing field\(s\) \['intercept'\]"),
    ],
)
def test_bad_native_artifacts_give_errors_naming_the_key(
    tmp_path: Path, data: bytes, match: str
) -> None:
    store = LocalDirStore(tmp_path)
    store.put_bytes(KEY, data)
    with pytest.raises(ArtifactError, match=match) as exc:
        _load(store, "models/lin/AAPL/m_1")
    assert KEY in str(exc.value)


def test_corrupt_or_metadata_less_onnx_is_refused_naming_the_key(tmp_path: Path) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    store = LocalDirStore(tmp_path)
    good = export_sklearn(LogisticRegression().fit(*_data(2)), FEATS, TH)
    store.put_bytes(f"{PREFIX}-outer_0_inner_0.onnx", good[: len(good) // 2])
    with pytest.raises(ArtifactError, match=r"outer_0_inner_0\.onnx: not a loadable ONNX model"):
        _load(store)
    bare = convert_sklearn(
        LogisticRegression().fit(*_data(2)), initial_types=[("input", FloatTensorType([None, 4]))]
    ).SerializeToString()
    store.put_bytes(f"{PREFIX}-outer_0_inner_0.onnx", bare)
    with pytest.raises(ArtifactError, match=r"lacks 'algostack.features'"):
        _load(store)
    with pytest.raises(ArtifactError, match="not a loadable ONNX"):
        write_fold(store, f"{PREFIX}-outer_0_inner_1.onnx", b"garbage")
    assert store.stat(f"{PREFIX}-outer_0_inner_1.onnx") is None  # nothing written


def test_onnx_width_must_match_feature_count() -> None:
    from algostack.adapters.artifacts.loader import parse_fold

    x, y = _data(3)
    data = export_sklearn(LogisticRegression().fit(x, y), FEATS, TH)
    import onnx

    m = onnx.load_from_string(data)
    for p in m.metadata_props:
        if p.key == "algostack.features":
            p.value = '["ret_1"]'
    with pytest.raises(ArtifactError, match="takes 4 inputs but metadata lists 1"):
        parse_fold("k.onnx", m.SerializeToString())


def test_folds_that_disagree_are_an_error_naming_both_keys(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    x, y = _data(4)
    est = LogisticRegression().fit(x, y)
    write_fold(store, f"{PREFIX}-outer_0_inner_0.onnx", export_sklearn(est, FEATS, TH))
    write_fold(store, f"{PREFIX}-outer_0_inner_1.onnx", export_sklearn(est, FEATS[::-1], TH))
    with pytest.raises(
        ArtifactError, match=r"inner_1\.onnx: features .* disagree with .*inner_0\.onnx"
    ):
        _load(store)
    write_fold(
        store,
        f"{PREFIX}-outer_0_inner_1.onnx",
        export_sklearn(est, FEATS, {"long_entry": 0.6, "long_exit": 0.5}),
    )
    with pytest.raises(ArtifactError, match=r"thresholds .* disagree"):
        _load(store)
    write_fold(
        store, f"{PREFIX}-outer_0_inner_1.onnx", export_sklearn(est, FEATS, TH, timeframe="5Min")
    )
    with pytest.raises(ArtifactError, match="timeframe '5Min' disagree"):
        _load(store)


def _pickled(obj: object) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def test_pickle_needs_the_trust_flag_and_then_loads(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    x, y = _data(6)
    est = LogisticRegression().fit(x, y)
    key = "models/pk/AAPL/m_5-outer_0_inner_0.joblib"
    obj = {"model": est, "features": FEATS, "thresholds": TH, "timeframe": "1Min"}
    write_fold(store, key, _pickled(obj))
    with pytest.raises(ArtifactError, match=r"execute code .* --trust-pickle"):
        _load(store, "models/pk/AAPL/m_5")
    model = _load(store, "models/pk/AAPL/m_5", trust_pickle=True)
    assert model.score(x[0]) == pytest.approx(est.predict_proba(x[:1])[0, 1], rel=1e-12)
    store.put_bytes("models/pk/AAPL/m_5-outer_0_inner_1.pkl", pickle.dumps({"features": FEATS}))
    with pytest.raises(ArtifactError, match=r"inner_1\.pkl: expected a pickled dict"):
        _load(store, "models/pk/AAPL/m_5", trust_pickle=True)


def test_unknown_extension_and_missing_object_are_artifact_errors(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    store.put_bytes("models/x/AAPL/m_1-outer_0_inner_0.txt", b"hello")
    with pytest.raises(ArtifactError, match=r"\.txt: unknown artifact extension"):
        _load(store, "models/x/AAPL/m_1")
    specs, _ = group_models(["models/x/AAPL/m_2-outer_0_inner_0.json"])
    loaded, failed = load_models(store, specs)
    assert loaded == [] and "cannot read" in str(failed["models/x/AAPL/m_2"])


def test_write_fold_refuses_bad_keys_and_nothing_is_written(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path)
    data = _native()
    with pytest.raises(ArtifactError, match="not an artifact key"):
        write_fold(store, "models/lin/AAPL/m_1.json", data)
    with pytest.raises(ArtifactError, match="no trailing number"):
        write_fold(store, "models/lin/AAPL/alpha-outer_0_inner_0.json", data)
    assert list(store.list_keys()) == []


def test_export_refuses_unknown_features_and_bad_thresholds(tmp_path: Path) -> None:
    x, y = _data(7)
    with pytest.raises(ArtifactError, match="unknown feature 'close'"):
        export_sklearn(LogisticRegression().fit(x, y), ["close", "ret_1", "tod", "dow"], TH)
    with pytest.raises(ValueError, match="long_exit"):
        export_sklearn(LogisticRegression().fit(x, y), FEATS, {"long_entry": 0, "long_exit": 1})


def test_small_logistic_models_scored_in_plain_python_agree_with_numpy(tmp_path: Path) -> None:
    kind = "logistic"
    from algostack.adapters.artifacts.loader import parse_fold
    from algostack.adapters.artifacts.model import EnsembleModel

    store = LocalDirStore(tmp_path)
    rng = np.random.default_rng(5)
    folds = []
    for i in range(2):
        data = dump_native(
            kind=kind,
            features=FEATS,
            coef=list(rng.normal(size=len(FEATS))),
            intercept=float(rng.normal()),
            thresholds=TH,
        )
        key = f"models/{kind}/AAPL/m_1-outer_{i}_inner_0.json"
        write_fold(store, key, data)
        folds.append(parse_fold(key, data))
    small = _load(store, f"models/{kind}/AAPL/m_1")
    big = EnsembleModel(small.spec, folds, plain_python_max=0)
    assert small._score.__name__.endswith("_small") and not big._score.__name__.endswith("_small")
    for x in rng.normal(scale=3.0, size=(200, len(FEATS))):
        assert small.score(x) == pytest.approx(big.score(x), rel=1e-12, abs=1e-15)
    with pytest.raises(ValueError, match="shape"):
        small.score(np.zeros(len(FEATS) + 1))


def test_one_feature_linear_model_scores_the_very_float_of_the_dot_product(
    tmp_path: Path,
) -> None:
    """An SMA cross (one feature) skips numpy's dot: the same bits, so the same decisions."""
    from algostack.adapters.artifacts.loader import parse_fold
    from algostack.adapters.artifacts.model import EnsembleModel

    store = LocalDirStore(tmp_path)
    rng = np.random.default_rng(11)
    folds = []
    for i in range(3):
        data = dump_native(kind="linear", features=["sma_ratio_10_30"],
                           coef=[float(rng.normal())], intercept=float(rng.normal()),
                           thresholds=TH)  # fmt: skip
        key = f"models/linear/AAPL/m_1-outer_{i}_inner_0.json"
        write_fold(store, key, data)
        folds.append(parse_fold(key, data))
    one = _load(store, "models/linear/AAPL/m_1")
    dot = EnsembleModel(one.spec, folds, plain_python_max=0)
    assert one._score.__name__ == "linear_one" and dot._score.__name__ == "linear"
    for x in rng.normal(scale=3.0, size=(500, 1)):
        assert one.score(x) == dot.score(x)  # bit for bit
    with pytest.raises(ValueError, match="shape"):
        one.score(np.zeros(2))
