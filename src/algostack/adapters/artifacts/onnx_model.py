"""ONNX folds through onnxruntime: one single-threaded session per fold, created once.

Metadata (the graph's ``metadata_props``): ``algostack.features`` (JSON list),
``algostack.thresholds`` (JSON object), ``algostack.timeframe``, and optionally
``algostack.score_output`` / ``algostack.score_column`` naming the output and column that
hold the score. Without them: an output named ``probabilities`` gives column 1 (the positive
class of a binary classifier), otherwise the first output, column 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson

from algostack.adapters.artifacts.model import (
    ArtifactError,
    Fold,
    OnnxGraph,
    check_metadata,
    parse_thresholds,
)

META_FEATURES = "algostack.features"
META_THRESHOLDS = "algostack.thresholds"
META_TIMEFRAME = "algostack.timeframe"
META_OUTPUT = "algostack.score_output"
META_COLUMN = "algostack.score_column"


def session_options() -> Any:
    """One thread, sequential execution, full graph optimisation: the per-bar fast path."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return opts


def _json_meta(key: str, meta: dict[str, str], name: str) -> Any:
    if name not in meta:
        raise ArtifactError(
            f"{key}: ONNX metadata_props lacks {name!r} (export with "
            "algostack.adapters.artifacts.export.export_sklearn, or add it)"
        )
    try:
        return orjson.loads(meta[name])
    except orjson.JSONDecodeError:
        raise ArtifactError(f"{key}: ONNX metadata {name!r} is not valid JSON") from None


def parse_onnx(key: str, data: bytes) -> Fold:
    """Load one ONNX fold; ``ArtifactError`` naming ``key`` on any problem."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors on bad protobufs
        raise ArtifactError(f"{key}: not a loadable ONNX model ({_first_line(exc)})") from None
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    features, timeframe = check_metadata(
        key, _json_meta(key, meta, META_FEATURES), meta.get(META_TIMEFRAME, "")
    )
    thresholds = parse_thresholds(key, _json_meta(key, meta, META_THRESHOLDS))
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise ArtifactError(f"{key}: expected one input tensor, found {len(inputs)}")
    inp = inputs[0]
    width = inp.shape[-1] if inp.shape else None
    if isinstance(width, int) and width != len(features):
        raise ArtifactError(
            f"{key}: the graph takes {width} inputs but metadata lists {len(features)} features"
        )
    dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64}.get(inp.type)
    if dtype is None:
        raise ArtifactError(f"{key}: input type {inp.type} is not float or double")
    outputs = {o.name: o for o in sess.get_outputs()}
    out_name = meta.get(META_OUTPUT) or ("probabilities" if "probabilities" in outputs else "")
    if not out_name:
        out_name = next(iter(outputs))
    if out_name not in outputs:
        raise ArtifactError(f"{key}: score output {out_name!r} not in {sorted(outputs)}")
    default_col = "1" if out_name == "probabilities" else "0"
    try:
        col = int(meta.get(META_COLUMN, default_col))
    except ValueError:
        raise ArtifactError(f"{key}: {META_COLUMN} must be an integer") from None
    in_name = inp.name
    buf = np.zeros((1, len(features)), dtype=dtype)
    run = sess.run
    fetch = [out_name]

    # score a zero row once: a graph that cannot produce its score fails here, naming the key
    try:
        out = run(fetch, {in_name: buf})[0]
        flat = np.asarray(out).reshape(len(buf), -1)
        if col >= flat.shape[1]:
            raise ArtifactError(f"{key}: score column {col} but output {out_name!r} is {out.shape}")
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{key}: scoring a zero row failed ({_first_line(exc)})") from None

    def score_row(x: np.ndarray) -> float:
        buf[0] = x
        return float(run(fetch, {in_name: buf})[0].reshape(-1)[col])

    graph = OnnxGraph(data, in_name, out_name, col)
    return Fold(key, "onnx", features, thresholds, timeframe, score_row, onnx=graph)


def fuse(
    graphs: Sequence[OnnxGraph], width: int, scorers: Sequence[Callable[[np.ndarray], float]]
) -> Callable[[np.ndarray], float] | None:
    """Fuse fold graphs into one session returning every fold's score output, or ``None``.

    Each ``session.run`` costs several microseconds of fixed overhead, so one call for all
    folds is much cheaper than one per fold. The fused scorer is checked against the per-fold
    scorers on probe vectors; any difference or failure falls back (``None``).
    """
    import onnx
    from onnx import compose, helper

    try:
        models = [onnx.load_from_string(g.data) for g in graphs]
        opsets: dict[str, int] = {}
        for m in models:
            for op in m.opset_import:
                if opsets.setdefault(op.domain, op.version) != op.version:
                    return None  # folds built for different opsets: keep them apart
        first = models[0]
        nodes: list[Any] = []
        inits: list[Any] = []
        outputs: list[Any] = []
        value_info: list[Any] = []
        common = first.graph.input[0]
        for i, (m, g) in enumerate(zip(models, graphs, strict=True)):
            pm = compose.add_prefix(m, prefix=f"f{i}_")
            in_name = f"f{i}_{g.input_name}"
            for node in pm.graph.node:
                node.input[:] = [common.name if x == in_name else x for x in node.input]
                nodes.append(node)
            inits.extend(pm.graph.initializer)
            value_info.extend(pm.graph.value_info)
            outputs.extend(o for o in pm.graph.output if o.name == f"f{i}_{g.output_name}")
        graph = helper.make_graph(nodes, "algostack_folds", [common], outputs, inits)
        graph.value_info.extend(value_info)
        fused_model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()]
        )
        fused_model.ir_version = first.ir_version
        import onnxruntime as ort

        sess = ort.InferenceSession(
            fused_model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception:  # any fusing problem: fall back to one session per fold
        return None
    fetch = [o.name for o in outputs]
    cols = [g.column for g in graphs]
    dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64}[sess.get_inputs()[0].type]
    buf = np.zeros((1, width), dtype=dtype)
    feed = {common.name: buf}
    run = sess.run
    count = float(len(graphs))

    def score(x: np.ndarray) -> float:
        buf[0] = x
        total = 0.0
        for out, col in zip(run(fetch, feed), cols, strict=True):
            total += float(out.reshape(-1)[col])
        return total / count

    rng = np.random.default_rng(0)
    for probe in (np.zeros(width), rng.normal(size=width), rng.normal(size=width) * 10):
        want = sum(s(probe) for s in scorers) / count
        if not abs(score(probe) - want) <= 1e-6 * max(1.0, abs(want)):
            return None
    return score


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
