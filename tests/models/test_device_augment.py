"""Each part of the simulated device and room does what models/device_augment.py states."""

from __future__ import annotations

import numpy as np
import pytest

from steth.edge.features import FeatureConfig, mel_band_centres_hz
from steth.models.device_augment import (
        friction_bursts,
    heart_thumps,
    low_pass_db,
    simulate_device,
    smooth_eq_db,
    tilt_db,
)

CONFIG = FeatureConfig()
CENTRES = mel_band_centres_hz(CONFIG)
FPS = CONFIG.frames_per_second
TO_DB = 10.0 / np.log(10.0)


def flat_logmel(n_frames: int = 1000, level: float = 1e-4) -> np.ndarray:
    rng = np.random.default_rng(7)
    power = level * rng.exponential(1.0, (n_frames, CONFIG.n_mels))
    return np.log(power + CONFIG.log_floor).astype(np.float32)


@pytest.mark.parametrize("seed", range(20))
def test_the_eq_curve_is_smooth_and_within_its_peak(seed):
    curve = smooth_eq_db(CENTRES, 12.0, np.random.default_rng(seed))
    assert 12.0 * 0.3 - 1e-9 <= np.abs(curve).max() <= 12.0 + 1e-9
    # Smooth over log frequency: at most three slow cosines, so few turning points.
    turns = np.count_nonzero(np.diff(np.sign(np.diff(curve))) != 0)
    assert turns <= 6


def test_the_tilt_is_a_line_over_log_frequency_from_zero():
    line = tilt_db(CENTRES, 12.0, np.random.default_rng(1))
    u = np.log(CENTRES / CENTRES[0])
    assert line[0] == 0.0 and abs(line[-1]) <= 12.0
    np.testing.assert_allclose(line, u / u[-1] * line[-1], atol=1e-9)


def test_eq_and_tilt_shift_the_log_mel_by_the_drawn_response():
    x = flat_logmel()
    spec = {"eq_db": 12.0, "tilt_db": 12.0}
    out = simulate_device(x, np.random.default_rng(3), spec, CONFIG)
    rng = np.random.default_rng(3)
    expected = smooth_eq_db(CENTRES, 12.0, rng) + tilt_db(CENTRES, 12.0, rng)
    np.testing.assert_allclose((out - x).mean(axis=0) * TO_DB, expected, atol=0.1)
    assert np.abs(expected).max() > 3.0


def test_a_band_limit_passes_below_its_cutoff_and_removes_an_octave_above():
    response = low_pass_db(CENTRES, 1000.0)
    assert np.all(response[CENTRES <= 1000.0] == 0.0)
    assert np.all(response[CENTRES >= 2000.0] <= -40.0) or CENTRES.max() < 2000.0
    above = CENTRES >= 1500.0
    assert np.all(response[above] <= -48.0 * np.log2(1.5) + 1e-9)


def test_quantisation_noise_scales_with_the_signal():
    spec = {"quant_snr_db": [20.0, 20.0], "quant_prob": 1.0}
    quiet, loud = flat_logmel(level=1e-6), flat_logmel(level=1e-2)
    added_quiet = np.exp(simulate_device(quiet, np.random.default_rng(5), spec, CONFIG)) \
        - np.exp(quiet)
    added_loud = np.exp(simulate_device(loud, np.random.default_rng(5), spec, CONFIG)) \
        - np.exp(loud)
    ratio = added_loud.mean() / added_quiet.mean()
    assert ratio == pytest.approx(1e4, rel=0.02)
    # 20 dB below the recording's mean power, the same in every band (white).
    assert added_loud.mean() / np.exp(loud).mean() == pytest.approx(0.01, rel=0.1)


@pytest.mark.parametrize("bpm", [60.0, 150.0])
def test_heart_sounds_beat_at_their_rate_below_150_hz(bpm):
    n = int(30 * FPS)
    thumps = heart_thumps(n, FPS, CENTRES, bpm, np.random.default_rng(2))
    envelope = thumps.sum(axis=1)
    onsets = np.flatnonzero((envelope[1:] > 0) & (envelope[:-1] == 0))
    beats = 30.0 * bpm / 60.0
    assert 1.6 * beats <= onsets.size + 1 <= 2.2 * beats + 2  # S1 and S2 per beat
    per_band = thumps.sum(axis=0)
    assert per_band[CENTRES > 200.0].sum() < 0.02 * per_band.sum()


def test_friction_bursts_are_broadband_and_50_to_300_ms_long():
    n = int(120 * FPS)
    bursts = friction_bursts(n, FPS, CONFIG.n_mels, np.random.default_rng(4))
    active = bursts.sum(axis=1) > 0
    assert active.any()
    assert np.all(bursts[active] > 0)  # every band takes part
    assert active.mean() < 0.5


def test_ambient_noise_sits_at_its_snr_below_the_signal():
    x = flat_logmel(level=1e-3)
    spec = {"ambient_snr_db": [20.0, 20.0], "ambient_prob": 1.0}
    added = np.exp(simulate_device(x, np.random.default_rng(8), spec, CONFIG)) - np.exp(x)
    assert added.mean() / np.exp(x).mean() == pytest.approx(0.01, rel=0.15)


def test_a_seed_fixes_the_device_and_no_spec_changes_nothing():
    x = flat_logmel()
    spec = {"eq_db": 12.0, "tilt_db": 12.0, "band_limit_hz": [1000.0, 2000.0],
            "band_limit_prob": 1.0, "quant_snr_db": [15.0, 40.0], "heart_bpm": [60.0, 150.0],
            "friction_prob": 1.0, "ambient_snr_db": [10.0, 35.0]}
    a = simulate_device(x, np.random.default_rng(9), spec, CONFIG)
    b = simulate_device(x, np.random.default_rng(9), spec, CONFIG)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(simulate_device(x, np.random.default_rng(9), {}, CONFIG), x,
                               atol=1e-6)
