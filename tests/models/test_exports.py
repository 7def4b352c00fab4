"""The committed deployable model: manifests, int8 vs fp32 agreement, a score floor on a
fixed slice of the SPRSound test set, and gain invariance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from steth.edge.assets import ASSETS_DIR
from steth.edge.features import FeatureConfig, frame_range, recording_features
from steth.edge.infer import CycleModel
from steth.edge.manifest import load_manifest
from steth.models.benchmark import run
from steth.models.datasets import load_audio, load_sprsound
from steth.models.feature_cache import cached_features

EXPORTS = ASSETS_DIR  # the deployable model files
TRAINING_OUTPUTS = Path(__file__).resolve().parents[2] / "models" / "exports"
SLICE = 60  # the first 60 SPRSound test recordings (sorted ids): a fixed, unselected slice
TASK_1_1_FLOOR = 0.70  # all-Normal scores 0.25
MAX_GAIN_DECISION_CHANGES = 0.20
CARD_TOLERANCE = 0.02  # the slice scores must stay within this of the model card's


def shipped_features() -> FeatureConfig:
    """The committed model's front end (with its channel normalisation, if any)."""
    return load_manifest(EXPORTS / "breathnet.int8.onnx").feature_config


def committed_models() -> list[Path]:
    return sorted(EXPORTS.glob("*.onnx"))


def test_every_committed_model_matches_its_manifest():
    models = committed_models()
    assert {p.name for p in models} >= {"breathnet.int8.onnx", "breathnet.fp32.onnx"}
    for path in models:
        manifest = load_manifest(path, expected_feature_hash=FeatureConfig().hash())
        assert manifest.data["precision"] in path.name


@pytest.fixture(scope="module")
def slice_events(shared_data):
    recs = load_sprsound(shared_data, "test")[:30]
    config = shipped_features()
    out = []
    for rec in recs:
        frames = cached_features(rec, config)
        for event in rec.events:
            first, last = frame_range(event.start, event.end, config)
            if min(last, frames.shape[0]) - first >= 4:
                out.append(frames[first:min(last, frames.shape[0])])
    return out


def test_int8_agrees_with_fp32_on_real_recordings(slice_events):
    fp32 = CycleModel(EXPORTS / "breathnet.fp32.onnx")
    int8 = CycleModel(EXPORTS / "breathnet.int8.onnx")
    assert len(slice_events) > 50
    diffs, same = [], 0
    for frames in slice_events:
        a, b = fp32.predict_cycle(frames), int8.predict_cycle(frames)
        diffs += [abs(a.p_crackle - b.p_crackle), abs(a.p_wheeze - b.p_wheeze)]
        same += a.finding(fp32.thresholds) == b.finding(int8.thresholds)
    assert float(np.mean(diffs)) < 0.05
    assert same / len(slice_events) >= 0.9


def model_card() -> dict:
    return json.loads((TRAINING_OUTPUTS / "breathnet.card.json").read_text())


def test_model_card_describes_the_committed_weights():
    card = model_card()
    manifest = load_manifest(EXPORTS / card["model"], expected_feature_hash=FeatureConfig().hash())
    assert card["weights_sha256"] == manifest.weights_sha256
    assert card["slice"]["recordings"] == SLICE
    text = (TRAINING_OUTPUTS / "breathnet.card.md").read_text()
    assert manifest.version in text and "does not diagnose" in text


def test_int8_model_beats_the_floor_and_matches_its_card_on_a_fixed_test_slice(shared_data):
    report = run(EXPORTS / "breathnet.int8.onnx", shared_data, "combined", limit=SLICE,
                 n_boot=20, show_progress=False)
    task = report["results"]["1-1"]["combined"]
    assert task["all_normal_score"] == pytest.approx(0.25)
    assert task["score"] >= TASK_1_1_FLOOR, task
    for name, stated in model_card()["slice"]["scores"].items():
        measured = report["results"][name]["combined"]["score"]
        assert abs(measured - stated) <= CARD_TOLERANCE, (name, measured, stated)


def test_plus_minus_12_db_changes_few_decisions(shared_data):
    model = CycleModel(EXPORTS / "breathnet.int8.onnx")
    config = model.manifest.feature_config
    changed = total = 0
    for rec in load_sprsound(shared_data, "test")[:12]:
        audio, rate = load_audio(rec.audio_path)
        variants = [recording_features(np.clip(audio * g, -1, 1), rate, config)
                    for g in (1.0, 10 ** (12 / 20), 10 ** (-12 / 20))]
        for event in rec.events:
            first, last = frame_range(event.start, event.end, config)
            last = min(last, variants[0].shape[0])
            if last - first < 4:
                continue
            base, *others = (model.predict_cycle(v[first:last]).finding(model.thresholds)
                             for v in variants)
            total += 2
            changed += sum(o != base for o in others)
    assert total >= 40
    # Stated share: at most 20 %. Measured 5 of 42 (12 %) for the committed model: the
    # absolute log floor (1e-8) of the feature config compresses quiet bins at -12 dB. A
    # floor relative to the signal needs a new feature config and a retrain.
    print(f"gain ±12 dB: {changed} of {total} decisions changed")
    assert changed / total <= MAX_GAIN_DECISION_CHANGES, f"{changed} of {total} changed"


def test_streaming_evaluation_scores_every_task_without_annotated_boundaries(shared_data):
    from steth.models.stream_eval import evaluate

    recs = load_sprsound(shared_data, "test")[:6]
    report = evaluate(CycleModel(EXPORTS / "breathnet.int8.onnx"), recs, n_boot=10)
    assert report["recordings"] == 6 and report["detected_cycles"] > 0
    assert set(report["results"]) == {"1-1", "1-2", "2-1", "2-2"}
    combined = report["results"]["2-2"]["combined"]
    assert combined["n"] == 6 and 0.0 <= combined["score"] <= 1.0
