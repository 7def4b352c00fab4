"""Manifest validation: a good model loads, tampering is refused with a clear message."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from steth.edge.features import FeatureConfig
from steth.edge.infer import CycleModel, ModelError, cycle_windows
from steth.edge.manifest import ManifestError, load_manifest, manifest_path_for
from tests.foundation.tiny_model import make_tiny_model


@pytest.fixture()
def model_path(tmp_path):
    return make_tiny_model(tmp_path)


def test_valid_model_loads_and_predicts(model_path):
    model = CycleModel(model_path, expected_feature_hash=FeatureConfig().hash())
    frames = np.random.default_rng(0).standard_normal((300, 64)).astype(np.float32)
    pred = model.predict_cycle(frames)
    assert 0.0 <= pred.p_crackle <= 1.0 and 0.0 <= pred.p_wheeze <= 1.0
    assert sum(pred.subtype_probs) == pytest.approx(1.0, abs=1e-5)


def test_tampered_weights_are_refused(model_path):
    data = bytearray(model_path.read_bytes())
    data[-10] ^= 0xFF
    model_path.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="SHA-256"):
        load_manifest(model_path)


def test_missing_manifest_is_refused(model_path):
    manifest_path_for(model_path).unlink()
    with pytest.raises(ModelError, match="manifest missing"):
        CycleModel(model_path)


def test_edited_feature_config_is_refused(model_path):
    path = manifest_path_for(model_path)
    data = json.loads(path.read_text())
    data["feature_config"]["hop"] = 64
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="feature_hash"):
        load_manifest(model_path)


def test_feature_mismatch_with_pipeline_stops_startup(model_path):
    with pytest.raises(ModelError, match="expects features"):
        CycleModel(model_path, expected_feature_hash="0" * 16)


def test_manifest_for_another_file_is_refused(model_path, tmp_path):
    other = tmp_path / "other.onnx"
    shutil.copy(model_path, other)
    shutil.copy(manifest_path_for(model_path), manifest_path_for(other))
    with pytest.raises(ManifestError, match=r"not other\.onnx"):
        load_manifest(other)


def test_cycle_windows_cover_long_cycles_and_fill_short_ones():
    short = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    w = cycle_windows(short, 25)
    assert w.shape == (1, 25, 2) and (w[0, 10:20] == short).all()
    long = np.zeros((300, 2), dtype=np.float32)
    w = cycle_windows(long, 128)
    assert w.shape[0] == 4  # starts 0, 64, 128 and the tail at 172
