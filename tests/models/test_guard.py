"""The unfamiliar-signal guard fires on a simulated device shift and at its set rate on
SPRSound validation audio; the live guard agrees with the fitted one."""

from __future__ import annotations

import numpy as np
import pytest

from steth.edge.features import FeatureConfig, mel_band_centres_hz
from steth.edge.guard import GuardError, GuardModel, SignalGuard, recording_shape
from steth.models.data import split_train_validation
from steth.models.datasets import load_sprsound
from steth.models.device_augment import low_pass_db
from steth.models.feature_cache import cached_features
from steth.models.guard_fit import firing, fit_guard

CONFIG = FeatureConfig()
TO_NATURAL = np.log(10.0) / 10.0


@pytest.fixture(scope="module")
def fitted(shared_data):
    recs = load_sprsound(shared_data, "train")
    train, val = split_train_validation(recs, 0.15, 0)
    guard, info = fit_guard(train, val, CONFIG)
    return guard, info, train, val


def test_the_guard_fires_on_at_most_its_rate_of_sprsound_validation_recordings(fitted):
    guard, info, _, val = fitted
    flags = firing(guard, val, CONFIG)
    rate = np.mean(list(flags.values()))
    assert rate <= 0.05 and rate == pytest.approx(info["validation_fire_rate"])
    assert rate >= 0.03  # the threshold is not so high that it never fires


@pytest.mark.parametrize("device", ["band-limited to 1 kHz", "resonant chest-piece"])
def test_the_guard_fires_on_a_simulated_other_stethoscope(fitted, device):
    guard, _, _, val = fitted
    centres = mel_band_centres_hz(CONFIG)
    u = np.log(centres / centres[0]) / np.log(centres[-1] / centres[0])
    response = (low_pass_db(centres, 1000.0) if device.startswith("band")
                else 12.0 * np.cos(2 * np.pi * u))  # ±12 dB, two swings across the band
    spr_val = [r for r in val if r.dataset == "sprsound"][:40]
    fired = sum(guard.distance(recording_shape(cached_features(r, CONFIG)
                                               + response * TO_NATURAL)) > guard.threshold
                for r in spr_val)
    assert fired >= 0.9 * len(spr_val)


def test_gain_alone_is_not_unfamiliar(fitted):
    guard, _, _, val = fitted
    rec = next(r for r in val if r.dataset == "sprsound")
    logmel = cached_features(rec, CONFIG)
    a = guard.distance(recording_shape(logmel))
    b = guard.distance(recording_shape(logmel + 12.0 * TO_NATURAL))
    assert a == pytest.approx(b)


def test_the_live_guard_waits_then_matches_the_whole_recording(fitted):
    guard, _, _, val = fitted
    rec = next(r for r in val if r.dataset == "sprsound")
    logmel = cached_features(rec, CONFIG)
    live = SignalGuard(guard, CONFIG.frames_per_second)
    live.push(logmel[:10])
    assert live.state is None
    for start in range(10, logmel.shape[0], 37):
        live.push(logmel[start:start + 37])
    assert live.distance == pytest.approx(guard.distance(recording_shape(logmel)))
    live.reset()
    assert live.state is None


def test_a_malformed_guard_section_is_refused(fitted):
    guard = fitted[0]
    data = guard.to_dict()
    assert GuardModel.from_dict(data, CONFIG.n_mels).threshold == guard.threshold
    with pytest.raises(GuardError):
        GuardModel.from_dict({**data, "mean": data["mean"][:-1]}, CONFIG.n_mels)
    with pytest.raises(GuardError):
        GuardModel.from_dict({k: v for k, v in data.items() if k != "threshold"},
                             CONFIG.n_mels)


def test_a_manifests_guard_loads_and_a_broken_one_is_refused(fitted, tmp_path):
    from steth.edge.infer import CycleModel, ModelError
    from steth.edge.manifest import manifest_path_for, write_manifest
    from tests.foundation.tiny_model import make_tiny_model

    guard = fitted[0]
    model_path = make_tiny_model(tmp_path)
    import json

    data = json.loads(manifest_path_for(model_path).read_text())
    fields = {k: v for k, v in data.items() if k not in ("schema", "weights_file",
                                                         "weights_sha256")}
    write_manifest(model_path, {**fields, "guard": guard.to_dict()})
    loaded = CycleModel(model_path).manifest.guard
    assert loaded is not None and loaded.threshold == pytest.approx(guard.threshold)
    broken = {**guard.to_dict(), "precision": [[1.0]]}
    manifest_path_for(model_path).write_text(json.dumps({**data, "guard": broken}))
    with pytest.raises(ModelError, match="guard"):
        CycleModel(model_path)
