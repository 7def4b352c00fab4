"""A tiny ONNX model built with the ``onnx`` helper API (no torch), for manifest tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steth.edge.features import FeatureConfig
from steth.edge.labels import EVENT_CLASSES, VerdictRule
from steth.edge.manifest import write_manifest


def make_tiny_model(folder: Path, window: int = 128, config: FeatureConfig | None = None,
                    extra: dict | None = None) -> Path:
    """Mean over time, then linear layers to findings (2), subtype (7), quality (1).

    ``config`` sets the feature config the manifest declares (default: the shipped one);
    ``extra`` adds manifest fields (e.g. a guard).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    config = config or FeatureConfig()
    rng = np.random.default_rng(0)
    inits = []
    nodes = [helper.make_node("ReduceMean", ["logmel"], ["pooled"], axes=[1, 2], keepdims=0)]
    outputs = []
    for name, n in (("findings", 2), ("subtype", 7), ("quality", 1)):
        w = rng.standard_normal((config.n_mels, n)).astype(np.float32) * 0.01
        inits.append(numpy_helper.from_array(w, f"w_{name}"))
        nodes.append(helper.make_node("MatMul", ["pooled", f"w_{name}"], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", n]))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info(
            "logmel", TensorProto.FLOAT, ["batch", 1, window, config.n_mels])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = Path(folder) / "tiny.onnx"
    onnx.save(model, str(path))
    write_manifest(path, {
        "name": "tiny-test-model", "version": "0.0.1", "format": "onnx", "precision": "fp32",
        "feature_config": config.to_dict(), "feature_hash": config.hash(),
        "sample_rate": config.sample_rate,
        "input": {"name": "logmel", "shape": [1, 1, window, config.n_mels], "dtype": "float32"},
        "outputs": {"findings": {"labels": ["crackle", "wheeze"], "activation": "sigmoid"},
                    "subtype": {"labels": list(EVENT_CLASSES), "activation": "softmax"},
                    "quality": {"labels": ["poor"], "activation": "sigmoid"}},
        "thresholds": {"crackle": 0.5, "wheeze": 0.5, "quality": 0.5},
        "calibration": {"calibrated": False}, "verdict_rule": VerdictRule().to_dict(),
        **(extra or {}),
    })
    return path
