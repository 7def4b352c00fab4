"""Feature parity: streaming blocks == cached training features; zero-phase is caught."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import signal

from steth.edge.features import FeatureConfig, FeatureExtractor, mel_filterbank, recording_features
from steth.edge.filter import FilterChain, bandpass_sos
from steth.models.datasets import load_audio, load_icbhi, load_sprsound
from steth.models.feature_cache import cached_features

WARMUP_FRAMES = 32  # 0.5 s: filters and framing have settled


def push_in_random_blocks(audio: np.ndarray, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    extractor = FeatureExtractor(rate)
    out, i = [], 0
    while i < audio.size:
        n = int(rng.integers(1, 4000))
        out.append(extractor.push(audio[i:i + n]))
        i += n
    return np.concatenate(out)


@pytest.fixture(scope="module")
def real_recordings(shared_data):
    spr = load_sprsound(shared_data, "test")[:2]
    icbhi = load_icbhi(shared_data, "train")
    by_rate = {}
    for rec in icbhi:
        by_rate.setdefault(load_audio(rec.audio_path)[1], rec)
    return spr + list(by_rate.values())  # 8 kHz, 4 kHz and 44.1 kHz sources


def test_random_blocks_equal_cached_training_features(real_recordings, tmp_path):
    config = FeatureConfig()
    assert len(real_recordings) >= 4
    for k, rec in enumerate(real_recordings):
        audio, rate = load_audio(rec.audio_path)
        cached = cached_features(rec, config, tmp_path)
        streamed = push_in_random_blocks(audio, rate, seed=k)
        assert streamed.shape == cached.shape
        np.testing.assert_allclose(streamed[WARMUP_FRAMES:], cached[WARMUP_FRAMES:], atol=1e-5,
                                   err_msg=f"{rec.key} at {rate} Hz")


def zero_phase_features(audio: np.ndarray, rate: int, config: FeatureConfig) -> np.ndarray:
    """The tempting offline variant: sosfiltfilt instead of the causal filter."""
    chain = FilterChain(rate, config.filter)
    resampled = chain.resampler.process(audio)
    filtered = signal.sosfiltfilt(bandpass_sos(config.sample_rate), resampled)
    return FeatureExtractor(rate, config).push_filtered(filtered)


def test_zero_phase_variant_fails_the_parity_check(real_recordings):
    config = FeatureConfig()
    rec = real_recordings[0]
    audio, rate = load_audio(rec.audio_path)
    streamed = push_in_random_blocks(audio, rate, seed=99)
    offline = zero_phase_features(audio, rate, config)
    assert streamed.shape == offline.shape
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(streamed[WARMUP_FRAMES:], offline[WARMUP_FRAMES:], atol=1e-5)


def test_passband_and_stopband_of_the_filter_chain():
    rate = 8000
    t = np.arange(rate * 2) / rate
    def gain_db(freq: float) -> float:
        y = FilterChain(rate).process(np.sin(2 * np.pi * freq * t))[rate:]
        return 20 * np.log10(np.sqrt(2) * y.std())
    assert abs(gain_db(500.0)) < 0.5
    assert gain_db(20.0) < -15.0
    assert gain_db(3500.0) < -20.0


def test_4khz_source_is_resampled_before_the_2khz_band_edge():
    rate = 4000
    t = np.arange(rate * 2) / rate
    frames = recording_features(np.sin(2 * np.pi * 1000 * t), rate)
    assert np.isfinite(frames).all()
    peak_mel = frames[40:].mean(axis=0).argmax()
    config = FeatureConfig()
    centres = (mel_filterbank(8000, config.n_fft, config.n_mels, config.fmin_hz,
                              config.fmax_hz).T * np.arange(config.n_fft // 2 + 1)
               * 8000 / config.n_fft).sum(axis=1)
    assert abs(centres[peak_mel] - 1000) < 60


def test_feature_hash_changes_with_config():
    assert FeatureConfig().hash() == FeatureConfig().hash()
    assert FeatureConfig().hash() != FeatureConfig(n_mels=32).hash()


def test_too_many_mels_is_a_clear_error():
    with pytest.raises(ValueError, match="too many"):
        mel_filterbank(8000, 64, 64, 50.0, 2000.0)


def test_the_streaming_band_pass_equals_scipy_sosfilt_bit_for_bit_in_any_blocks():
    from steth.edge import filter as edge_filter

    sos = bandpass_sos(8000)
    x = np.random.default_rng(3).normal(0.0, 0.1, 8000)
    expected = signal.sosfilt(sos, x)
    for kernel in (edge_filter._SOSFILT_KERNEL, None):  # the fast loop and the public call
        streaming = edge_filter.SosFilter(sos)
        original, edge_filter._SOSFILT_KERNEL = edge_filter._SOSFILT_KERNEL, kernel
        try:
            cuts = [0, 1, 161, 800, 801, 4000, 8000]
            out = np.concatenate([streaming.process(x[a:b]) for a, b in itertools.pairwise(cuts)])
        finally:
            edge_filter._SOSFILT_KERNEL = original
        assert np.array_equal(out, expected)
    assert edge_filter._SOSFILT_KERNEL is not None  # scipy's loop passed its check here


def test_the_frames_are_the_same_through_numpy_s_fft_loop_and_rfft():
    from steth.edge import features

    x = np.random.default_rng(4).normal(0.0, 0.1, 8000)
    cuts = [0, 1, 300, 800, 1700, 1701, 8000]
    results = []
    for kernel in (features._RFFT_KERNEL, None):  # numpy's loop and the public call
        original, features._RFFT_KERNEL = features._RFFT_KERNEL, kernel
        try:
            extractor = FeatureExtractor(8000)
            results.append(np.concatenate([extractor.push_filtered(x[a:b])
                                           for a, b in itertools.pairwise(cuts)]))
        finally:
            features._RFFT_KERNEL = original
    assert results[0].dtype == np.float32 and results[0].shape == (62, 64)
    assert np.array_equal(results[0], results[1])
    assert features._RFFT_KERNEL is not None  # numpy's loop passed its check here
