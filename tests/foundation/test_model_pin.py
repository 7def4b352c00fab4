"""Decision fields pinned inside the model file: an edited manifest is refused, naming the field."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from steth.edge.assets import default_detector_path, default_model_path
from steth.edge.features import FeatureConfig
from steth.edge.infer import CycleModel, ModelError
from steth.edge.manifest import ManifestError, load_manifest, manifest_path_for, sha256_file
from steth.edge.model_pin import (
    METADATA_KEY,
    MODEL_DECISION_FIELDS,
    embed,
    embedded,
    field_digests,
)
from steth.edge.segment import DetectorWeightsError, load_weights
from tests.foundation.tiny_model import make_tiny_model

ASSETS = default_model_path().parent


def _copy_with_manifest(name: str, folder: Path) -> Path:
    src = ASSETS / name
    dst = folder / name
    shutil.copy(src, dst)
    shutil.copy(manifest_path_for(src), manifest_path_for(dst))
    return dst


def _edit_manifest(model: Path, edit) -> None:
    path = manifest_path_for(model)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def _set_crackle_threshold(data: dict) -> None:
    data["thresholds"]["crackle"] = 0.01


@pytest.mark.parametrize("name", ["breathnet.int8.onnx", "breathnet.int8.tflite",
                                  "breathnet.fp32.onnx"])
def test_every_shipped_model_carries_its_pinned_fields(name):
    model = ASSETS / name
    data = json.loads(manifest_path_for(model).read_text())
    assert embedded(model) == field_digests(data, MODEL_DECISION_FIELDS)
    load_manifest(model)  # the shipped manifest matches what is pinned


def test_an_edited_threshold_is_refused_naming_the_field(tmp_path):
    model = _copy_with_manifest("breathnet.int8.onnx", tmp_path)
    _edit_manifest(model, _set_crackle_threshold)
    with pytest.raises(ModelError, match=r"field 'thresholds' differs from the one pinned"):
        CycleModel(model, expected_feature_hash=FeatureConfig().hash())


@pytest.mark.parametrize("field, edit", [
    ("calibration", lambda d: d["calibration"]["temperature"].update(findings=0.2)),
    ("verdict_rule", lambda d: d["verdict_rule"].update(
        min_good_cycles=d["verdict_rule"]["min_good_cycles"] + 1)),
    ("version", lambda d: d.update(version="9.9.9")),
])
def test_each_decision_field_is_pinned_in_tflite_too(tmp_path, field, edit):
    model = _copy_with_manifest("breathnet.int8.tflite", tmp_path)
    _edit_manifest(model, edit)
    with pytest.raises(ManifestError, match=f"field '{field}' differs"):
        load_manifest(model)


def test_an_edited_guard_threshold_is_refused(tmp_path):
    n_mels = FeatureConfig().n_mels
    guard = {"mean": [0.0] * n_mels, "precision": np.eye(n_mels).tolist(),
             "threshold": 3.0, "min_seconds": 10.0}
    model = make_tiny_model(tmp_path, extra={"guard": guard})
    load_manifest(model)
    _edit_manifest(model, lambda d: d["guard"].update(threshold=300.0))
    with pytest.raises(ManifestError, match="field 'guard' differs"):
        load_manifest(model)


def test_a_model_without_pinned_fields_is_refused(tmp_path):
    import onnx

    model = _copy_with_manifest("breathnet.int8.onnx", tmp_path)
    proto = onnx.load(str(model))
    kept = [p for p in proto.metadata_props if p.key != METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(model))
    _edit_manifest(model, lambda d: d.update(weights_sha256=sha256_file(model)))
    with pytest.raises(ManifestError, match="carries no pinned decision fields"):
        load_manifest(model)


def test_pinning_again_replaces_the_digests_and_keeps_the_outputs(tmp_path):
    import onnx
    import onnxruntime as ort

    model = _copy_with_manifest("breathnet.int8.onnx", tmp_path)
    x = np.random.default_rng(0).standard_normal((1, 1, 128, 64)).astype(np.float32)
    before = ort.InferenceSession(str(model)).run(None, {"logmel": x})
    embed(model, {"thresholds": "0" * 64})
    embed(model, {"thresholds": "1" * 64})
    keys = [p.key for p in onnx.load(str(model)).metadata_props]
    assert keys.count(METADATA_KEY) == 1
    session = ort.InferenceSession(str(model))
    assert json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY]) == {
        "thresholds": "1" * 64}
    after = session.run(None, {"logmel": x})
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_tflite_pinning_keeps_the_outputs(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    model = _copy_with_manifest("breathnet.int8.tflite", tmp_path)
    x = np.random.default_rng(1).standard_normal((1, 128, 64, 1)).astype(np.float32)

    def run() -> list[np.ndarray]:
        interpreter = Interpreter(model_path=str(model))
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        return [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]

    before = run()
    embed(model, {"thresholds": "2" * 64})
    assert embedded(model) == {"thresholds": "2" * 64}
    assert all(np.array_equal(a, b) for a, b in zip(before, run(), strict=True))


def test_an_edited_detector_manifest_is_refused_naming_the_field(tmp_path):
    src = default_detector_path()
    weights = tmp_path / src.name
    shutil.copy(src, weights)
    manifest = Path(str(weights) + ".manifest.json")
    data = json.loads(Path(str(src) + ".manifest.json").read_text())
    data["lookahead_frames"] = 5
    manifest.write_text(json.dumps(data))
    with pytest.raises(DetectorWeightsError, match="field 'lookahead_frames' differs"):
        load_weights(weights, FeatureConfig())


def test_the_shipped_detector_loads_without_its_pin_as_a_weight():
    arrays, _ = load_weights(default_detector_path(), FeatureConfig())
    assert not any(key.startswith("steth") for key in arrays)


def test_edge_run_refuses_an_edited_manifest_in_one_line(tmp_path):
    model = _copy_with_manifest("breathnet.int8.onnx", tmp_path)
    _edit_manifest(model, _set_crackle_threshold)
    edge_run = Path(sys.executable).with_name("edge-run")
    result = subprocess.run([str(edge_run), "--simulate", "--duration", "2", "--model",
                             str(model), "--no-dashboard"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'thresholds' differs" in lines[0], result.stderr


def test_hello_and_the_saved_session_name_the_detector_and_the_thresholds(tmp_path):
    edge_run = Path(sys.executable).with_name("edge-run")
    record = tmp_path / "sessions"
    result = subprocess.run([str(edge_run), "--simulate", "--duration", "4",
                             "--no-dashboard", "--record", str(record), "--patient", "P007"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    hello = next(json.loads(line) for line in result.stdout.splitlines()
                 if '"hello"' in line)
    model = json.loads(manifest_path_for(default_model_path()).read_text())
    detector = json.loads(Path(str(default_detector_path()) + ".manifest.json").read_text())
    assert hello["model"]["thresholds"] == model["thresholds"]
    assert hello["detector"] == {"name": detector["name"], "version": detector["version"],
                                 "hash": detector["weights_sha256"]}
    (session,) = record.glob("*/session.json")
    meta = json.loads(session.read_text())
    assert meta["model"]["thresholds"] == model["thresholds"]
    assert meta["detector"]["hash"] == detector["weights_sha256"]


def test_the_session_summary_names_the_detector():
    from steth.host.review import take_summary_lines

    meta = {"model": {"name": "breathnet", "version": "1", "hash": "ab" * 32},
            "detector": {"name": "breathseg", "version": "0.1.0", "hash": "cd" * 32}}
    lines = take_summary_lines(meta, {"site": "p1"}, [])
    assert "detector breathseg 0.1.0 cdcdcdcd" in "\n".join(lines)
    assert "detector not recorded" in "\n".join(take_summary_lines({}, {"site": "p1"}, []))
