"""The feature-domain gain/noise augmentation reproduces what our signal chain does to audio."""

from __future__ import annotations

import numpy as np

from steth.edge.features import FeatureConfig, recording_features
from steth.models.chain_augment import add_gain_and_noise
from steth.models.datasets import load_audio, load_sprsound
from steth.models.robustness import quantise_bits

TWELVE_BIT_NOISE_DBFS = 20 * np.log10(2.0 ** -11 / np.sqrt(12))  # about -77 dBFS


def test_noise_in_the_feature_domain_matches_real_12_bit_quantisation(shared_data):
    config = FeatureConfig()
    rec = load_sprsound(shared_data, "test")[0]
    audio, rate = load_audio(rec.audio_path)
    clean = recording_features(audio, rate, config)
    quantised = recording_features(quantise_bits(audio, 12), rate, config)
    level = [TWELVE_BIT_NOISE_DBFS, TWELVE_BIT_NOISE_DBFS]
    augmented = add_gain_and_noise(clean, np.random.default_rng(0), {"noise_dbfs": level})
    upper = slice(32, 64)  # the bands where SPRSound is nearly empty and quantisation shows
    shift_real = (quantised[:, upper] - clean[:, upper]).mean()
    error = np.abs(augmented[:, upper].mean(axis=0) - quantised[:, upper].mean(axis=0))
    print(f"12-bit quantisation raises the upper bands by {shift_real:.2f} nats; "
          f"augmentation's per-band mean error {error.mean():.2f} (max {error.max():.2f})")
    assert shift_real > 2.0  # the effect is real on this data ...
    assert error.max() < 0.6  # ... and the augmentation reproduces it band by band


def test_gain_shifts_loud_bands_by_the_log_gain_and_spares_nothing_else():
    rng = np.random.default_rng(1)
    x = rng.uniform(-4.0, 0.0, size=(50, 64)).astype(np.float32)  # far above the 1e-8 floor
    out = add_gain_and_noise(x, np.random.default_rng(2), {"gain_db": 12.0})
    shift = out - x
    assert np.allclose(shift, shift.flat[0], atol=1e-4)  # one gain for the whole window
    assert 0.0 < abs(shift.flat[0]) <= 12.0 / 10.0 * np.log(10) + 1e-4


def test_without_gain_or_noise_the_window_is_untouched():
    x = np.random.default_rng(3).normal(size=(20, 64)).astype(np.float32)
    assert add_gain_and_noise(x, np.random.default_rng(4), {"eq_db": 6.0}) is x
