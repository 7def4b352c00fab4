"""The channel normalisation: a fixed device response drops out, streaming equals one shot,
and training's cached frames are the edge's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.signal import firwin2, freqz, lfilter

from steth.edge.features import (
    FeatureConfig,
    FeatureExtractor,
    mel_filterbank,
    recording_features,
)
from steth.edge.normalise import ChannelNormaliser, NormConfig, normalise_recording, running_mean
from steth.models.datasets import load_audio, load_sprsound
from steth.models.feature_cache import cached_features

MEAN = FeatureConfig(norm=NormConfig(kind="mean"))
PCEN = FeatureConfig(norm=NormConfig(kind="pcen"))
TO_DB = 10.0 / np.log(10.0)


def long_recording(shared_data):
    recs = sorted(load_sprsound(shared_data, "train"), key=lambda r: r.rec_id)
    for rec in recs:
        audio, rate = load_audio(rec.audio_path)
        if audio.size / rate >= 12.0:
            return rec, audio, rate
    raise AssertionError("no SPRSound recording of 12 s")


def smooth_eq_taps(rate: int) -> np.ndarray:
    """A linear-phase FIR with a smooth response between -12 and +12 dB."""
    freqs = np.array([0.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, rate / 2])
    gains_db = np.array([12.0, 12.0, -6.0, 8.0, -12.0, 6.0, 6.0])
    return firwin2(1023, freqs / (rate / 2), 10 ** (gains_db / 20.0))


def apply(taps: np.ndarray, audio: np.ndarray) -> np.ndarray:
    delay = (taps.size - 1) // 2
    return lfilter(taps, [1.0], np.concatenate([audio, np.zeros(delay)]))[delay:]


def band_response_db(taps: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The FIR's power gain averaged over each mel band's filter, in dB."""
    fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin_hz,
                        config.fmax_hz)
    _, h = freqz(taps, worN=fb.shape[0], fs=config.sample_rate, include_nyquist=True)
    return 10 * np.log10((np.abs(h) ** 2) @ fb)


def after_warm_up(frames: np.ndarray) -> np.ndarray:
    return frames[int(MEAN.norm.warmup_s * MEAN.frames_per_second) + 8:]


def test_a_fixed_eq_moves_the_unnormalised_log_mel_by_the_full_eq():
    rate = 8000
    rng = np.random.default_rng(0)
    t = np.arange(15 * rate) / rate
    noise = 0.01 * rng.standard_normal(t.size) * (1 + 0.8 * np.sin(2 * np.pi * 0.3 * t))
    taps = smooth_eq_taps(rate)
    shift = after_warm_up(recording_features(apply(taps, noise), rate)
                          - recording_features(noise, rate))
    expected = band_response_db(taps, FeatureConfig())
    measured = np.median(shift, axis=0) * TO_DB
    assert expected.max() > 10.0 and expected.min() < -10.0
    assert np.abs(measured - expected).max() < 1.5
    normalised = after_warm_up(recording_features(apply(taps, noise), rate, MEAN)
                               - recording_features(noise, rate, MEAN))
    assert (np.abs(np.median(normalised, axis=0)) * TO_DB).max() < 0.5


def test_a_fixed_eq_moves_the_normalised_log_mel_of_a_recording_by_under_half_a_db(
        shared_data):
    _, audio, rate = long_recording(shared_data)
    coloured = apply(smooth_eq_taps(rate), audio)
    shift = after_warm_up(recording_features(coloured, rate, MEAN)
                          - recording_features(audio, rate, MEAN))
    per_band_db = np.abs(np.median(shift, axis=0)) * TO_DB
    assert per_band_db.max() < 0.5, per_band_db.round(2)


def test_a_log_domain_offset_is_removed_exactly_and_pcen_nearly():
    rng = np.random.default_rng(3)
    frames = rng.normal(-12.0, 1.0, size=(900, 64))
    offset = np.linspace(-12.0, 12.0, 64) / TO_DB
    mean_a = normalise_recording(frames, MEAN.norm, 62.5)
    mean_b = normalise_recording(frames + offset, MEAN.norm, 62.5)
    assert np.abs(mean_a - mean_b).max() < 1e-4
    # PCEN keeps G ** (1 - alpha) of a gain G: 12 dB becomes 0.24 dB before compression.
    pcen_a = normalise_recording(frames, PCEN.norm, 62.5)[125:]
    pcen_b = normalise_recording(frames + offset, PCEN.norm, 62.5)[125:]
    relative = np.median(np.abs(pcen_b - pcen_a) / np.abs(pcen_a), axis=0)
    assert relative.max() < 0.1  # measured 0.064 at ±12 dB: PCEN removes most, not all


@pytest.mark.parametrize("kind", ["mean", "pcen"])
def test_streaming_in_blocks_equals_one_shot(kind):
    rng = np.random.default_rng(1)
    frames = rng.normal(-10.0, 2.0, size=(2500, 64))
    config = NormConfig(kind=kind)
    whole = normalise_recording(frames, config, 62.5)
    norm = ChannelNormaliser(config, 62.5)
    parts, i = [], 0
    while i < frames.shape[0]:
        k = int(rng.integers(1, 400))
        parts.append(norm.push(frames[i:i + k]))
        i += k
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-5, atol=1e-5)


def test_reset_starts_over_and_settling_covers_the_warm_up():
    config = NormConfig(kind="mean", warmup_s=2.0)
    norm = ChannelNormaliser(config, 62.5)
    rng = np.random.default_rng(2)
    first, second = rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 5.0
    assert norm.settling_at(norm.count)
    norm.push(first[:124])
    assert norm.settling_at(norm.count)
    norm.push(first[124:])
    assert not norm.settling_at(norm.count)
    norm.reset()
    assert norm.settling_at(norm.count)
    np.testing.assert_allclose(norm.push(second), normalise_recording(second, config, 62.5),
                               atol=1e-6)
    assert norm.settling_at(124) and not norm.settling_at(125)
    off = ChannelNormaliser(NormConfig(), 62.5)
    assert not off.settling_at(off.count) and not off.settling_at(0)


def test_the_running_mean_is_cumulative_then_exponential():
    x = np.arange(1.0, 41.0)[:, None]
    alpha = 0.9  # switch to exponential after 1 / (1 - alpha) = 10 frames
    mean, last = running_mean(x, alpha, 0, None)
    np.testing.assert_allclose(mean[:10, 0], np.cumsum(x[:10, 0]) / np.arange(1, 11))
    expected = mean[9, 0]
    for value in x[10:, 0]:
        expected = alpha * expected + (1 - alpha) * value
    assert mean[-1, 0] == pytest.approx(expected) and last[0] == pytest.approx(expected)


def test_no_normalisation_keeps_the_shipped_feature_hash():
    assert FeatureConfig().hash() == FeatureConfig(norm=NormConfig()).hash()
    assert MEAN.hash() != FeatureConfig().hash() and MEAN.unnormalised == FeatureConfig()
    assert FeatureConfig.from_dict(MEAN.to_dict()) == MEAN


def test_cached_training_frames_equal_the_edges_streamed_frames(shared_data, tmp_path):
    rec, audio, rate = long_recording(shared_data)
    cached = cached_features(rec, MEAN, tmp_path)
    # As edge/pipeline.py does it: filter, frame, normalise, block by block.
    extractor = FeatureExtractor(rate, MEAN)
    rng = np.random.default_rng(0)
    out, i = [], 0
    while i < audio.size:
        k = int(rng.integers(64, 2048))
        frames = extractor.push_filtered(extractor.filters.process(audio[i:i + k]))
        out.append(extractor.normalise(frames))
        i += k
    streamed = np.concatenate(out)
    assert streamed.shape == cached.shape
    np.testing.assert_allclose(streamed, cached, atol=2e-4)


@pytest.mark.parametrize("cumulative_start", [True, False])
@pytest.mark.parametrize("alpha", [0.97, float(np.exp(-1 / 250)), float(np.exp(-1 / 500))])
def test_the_running_mean_is_the_same_through_scipy_s_section_loop_and_lfilter(
        cumulative_start, alpha):
    from steth.edge import normalise

    x = np.random.default_rng(5).normal(-12.0, 4.0, size=(300, 8))
    cuts = [0, 1, 7, 13, 40, 41, 300]
    results = []
    for kernel in (normalise._ONE_POLE_KERNEL, None):
        original, normalise._ONE_POLE_KERNEL = normalise._ONE_POLE_KERNEL, kernel
        try:
            mean, parts = None, []
            for a, b in itertools.pairwise(cuts):
                out, mean = running_mean(x[a:b], alpha, a, mean, cumulative_start)
                parts.append(out)
            results.append(np.concatenate(parts))
        finally:
            normalise._ONE_POLE_KERNEL = original
    assert np.array_equal(results[0], results[1])
    assert normalise._ONE_POLE_KERNEL is not None  # scipy's loop passed its check here
