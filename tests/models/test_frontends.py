"""Paper front ends (models/frontends.py): frame alignment with the log-mel path, tone and
click placement, hashing, row normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from steth.edge.features import FeatureConfig, recording_features
from steth.edge.filter import FilterConfig
from steth.models.frontends import (
    WAVELETS,
    HybridConfig,
    WaveletConfig,
    row_normalise,
    wavelet_peak,
    wavelet_spectrum,
)

RATE = 8000
HOP = 128


def tone(freq: float, seconds: float = 2.0, amplitude: float = 0.3, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


@pytest.mark.parametrize("rate, n_samples", [(8000, 8000 * 2 + 37), (8000, 1000), (4000, 9001)])
@pytest.mark.parametrize("config", [WaveletConfig(), HybridConfig()], ids=["wavelet", "hybrid"])
def test_frame_count_matches_recording_features(config, rate: int, n_samples: int) -> None:
    audio = np.random.default_rng(1).normal(0, 0.05, n_samples)
    expected = recording_features(audio, rate).shape[0]
    frames = config.compute(audio, rate)
    assert frames.shape[0] == expected
    assert frames.shape[1] == config.n_bins
    assert frames.dtype == np.float32
    if config.channels > 1:
        assert frames.shape[2] == config.channels
    assert config.frames_per_second == FeatureConfig().frames_per_second


def test_hybrid_mel_channel_is_the_edge_log_mel_path() -> None:
    audio = np.random.default_rng(6).normal(0, 0.05, RATE * 2 + 77)
    config = HybridConfig(n_fft=512, fmin_hz=50.0, row_norm=False)  # edge's log-mel settings
    np.testing.assert_allclose(config.compute(audio, RATE)[..., 0],
                               recording_features(audio, RATE), atol=1e-5)


def click_audio(position: int, n_samples: int = 8000) -> np.ndarray:
    audio = np.zeros(n_samples)
    audio[position] = 1.0
    return audio


def logmel_frames_covering(sample: int) -> range:
    """Frames of edge's log-mel path whose window [(t+1)·hop − n_fft, (t+1)·hop) holds sample."""
    n_fft = FeatureConfig().n_fft
    return range(sample // HOP, (sample + n_fft) // HOP)


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_wavelet_click_lands_in_the_frame_holding_it(wavelet: str) -> None:
    position = 20 * HOP + 40
    frames = WaveletConfig(wavelet=wavelet).compute(click_audio(position), RATE)
    top_row = frames[:, -1]  # ~2 kHz: the shortest wavelet, sharpest in time
    peak = int(np.argmax(top_row))
    assert peak == position // HOP
    assert peak in logmel_frames_covering(position)


def test_hybrid_click_lands_in_the_frame_holding_it() -> None:
    position = 20 * HOP + 40
    frames = HybridConfig(row_norm=False).compute(click_audio(position), RATE)
    cqt_top = frames[:, -1, 2]  # highest constant-Q bin: a 128-sample window
    assert int(np.argmax(cqt_top)) == position // HOP
    for channel in range(3):  # every channel's loudest frame is one whose window holds it
        assert int(np.argmax(frames[:, 40, channel])) in logmel_frames_covering(position)


def nearest(centres: np.ndarray, freq: float) -> int:
    return int(np.argmin(np.abs(np.log(centres / freq))))


@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("freq", [150.0, 400.0, 1200.0])
def test_wavelet_tone_peaks_at_its_scale_with_its_amplitude(wavelet: str, freq: float) -> None:
    config = WaveletConfig(wavelet=wavelet)
    frames = config.compute(tone(freq), RATE)
    profile = frames[40:-40].mean(axis=0)  # away from the edges
    assert abs(int(np.argmax(profile)) - nearest(config.centre_frequencies(), freq)) <= 1
    # L1 normalisation: a sinusoid of amplitude A reads about A at its own scale
    assert np.exp(profile.max()) == pytest.approx(0.3, rel=0.1)


@pytest.mark.parametrize("freq", [150.0, 400.0, 1200.0])
def test_hybrid_tone_peaks_at_its_bin_in_every_channel(freq: float) -> None:
    config = HybridConfig(row_norm=False)
    frames = config.compute(tone(freq), RATE)
    profile = frames[40:-40].mean(axis=0)  # (n_bins, 3)
    centres = config.centre_frequencies()
    for channel in range(3):
        peak = int(np.argmax(profile[:, channel]))
        assert abs(peak - nearest(centres[channel], freq)) <= 1, f"channel {channel}"


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_mother_wavelet_spectra_peak_at_two_and_vanish_below_zero(wavelet: str) -> None:
    omega = np.linspace(-5, 30, 70001)
    spectrum = wavelet_spectrum(wavelet, omega)
    assert spectrum.max() == pytest.approx(2.0, rel=1e-4)
    assert omega[np.argmax(spectrum)] == pytest.approx(wavelet_peak(wavelet), abs=1e-3)
    assert np.all(spectrum[omega <= 0] == 0.0)


def test_morse_defaults_are_matlabs_and_bump_has_compact_support() -> None:
    config = WaveletConfig(wavelet="morse")
    assert (config.morse_gamma, config.morse_beta) == (3.0, 20.0)  # time-bandwidth 60
    assert wavelet_peak("morse") == pytest.approx((20 / 3) ** (1 / 3))
    omega = np.array([4.3, 4.41, 5.0, 5.59, 5.7])
    assert np.count_nonzero(wavelet_spectrum("bump", omega)) == 3  # only |ω − 5| < 0.6


def test_hash_is_stable_and_follows_every_setting() -> None:
    assert WaveletConfig().hash() == WaveletConfig().hash()
    assert HybridConfig().hash() == HybridConfig().hash()
    # the warmed caches are keyed by these: changing a default must be a deliberate act
    assert WaveletConfig().hash() == "df0337b1e09b0d42"
    assert HybridConfig().hash() == "ff3bb15d9b042991"
    variants = {WaveletConfig().hash(), WaveletConfig(wavelet="morse").hash(),
                WaveletConfig(wavelet="amor").hash(), WaveletConfig(n_scales=48).hash(),
                WaveletConfig(version=2).hash(), HybridConfig().hash(),
                HybridConfig(row_norm=False).hash(), HybridConfig(n_fft=512).hash(),
                FeatureConfig().hash()}
    assert len(variants) == 9
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in variants)


def test_filter_table_from_toml_becomes_a_filter_config() -> None:
    config = WaveletConfig(filter={"mains_hz": 50.0})
    assert config.filter == FilterConfig(mains_hz=50.0)
    assert config.hash() != WaveletConfig().hash()
    with pytest.raises(ValueError, match="wavelet"):
        WaveletConfig(wavelet="haar")


def test_row_normalisation_gives_zero_mean_unit_variance_rows() -> None:
    audio = np.random.default_rng(2).normal(0, 0.1, RATE * 3) + tone(300, 3.0)
    frames = HybridConfig().compute(audio, RATE)  # row_norm on by default
    np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=1e-3)


def test_row_normalisation_ignores_per_row_offset_and_scale() -> None:
    x = np.random.default_rng(3).normal(size=(50, 8, 3))
    offset = np.random.default_rng(4).normal(size=(1, 8, 3))
    scale = np.random.default_rng(5).uniform(0.5, 4.0, size=(1, 8, 3))
    np.testing.assert_allclose(row_normalise(x * scale + offset), row_normalise(x), atol=1e-4)
