"""Feature-domain augmentation that models our own signal chain: gain and a noise floor.

SPRSound recordings are almost empty above ~1 kHz: their upper mel bands sit near the log
floor. Our device adds a white noise floor (12-bit ADC quantisation, about -77 dBFS, plus the
analog front end's noise) that fills exactly those bands, and a model trained on clean
SPRSound alone loses ~24 points of task 1-1 under 12-bit quantisation
(``steth-bench --condition q12``). Training windows therefore get, in the power domain,

    P' = g * P + sigma^2 * N

with ``g`` a random gain, ``sigma`` a random white-noise level (rms, dBFS) and ``N`` the mel
power of unit-variance white noise passed through the *same* filter, STFT and mel bank as
the features (:class:`edge.features.FeatureExtractor`), frame by frame, so its per-band
fluctuation is realistic. The cached features are ``log(P + floor)``, so this is exact up to
the signal-noise cross term, which averages to zero.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from steth.edge.features import FeatureConfig, FeatureExtractor

NOISE_BANK_SECONDS = 60.0
DEFAULT_FEATURES = FeatureConfig()


@lru_cache(maxsize=4)
def white_noise_mel_power(config: FeatureConfig = DEFAULT_FEATURES) -> np.ndarray:
    """Mel power frames ``(n, n_mels)`` of unit-variance white noise through the features."""
    rng = np.random.default_rng(20261121)
    noise = rng.standard_normal(int(NOISE_BANK_SECONDS * config.sample_rate))
    logmel = FeatureExtractor(config.sample_rate, config).push(noise)
    settled = logmel[64:]  # skip the filter's start-up transient
    return np.maximum(np.exp(settled.astype(np.float64)) - config.log_floor, 0.0)


def add_gain_and_noise(x: np.ndarray, rng: np.random.Generator, spec: dict,
                       config: FeatureConfig = DEFAULT_FEATURES) -> np.ndarray:
    """Apply a random gain and noise floor to log-mel frames ``x`` of shape (T, n_mels).

    ``spec`` keys (all optional): ``gain_db`` (uniform in ±gain_db), ``noise_dbfs``
    ([low, high] rms of the white noise in dBFS, uniform), ``noise_prob`` (share of windows
    that get noise; default 1).
    """
    gain_db = float(spec.get("gain_db", 0.0))
    noise_range = spec.get("noise_dbfs")
    use_noise = bool(noise_range) and rng.random() < float(spec.get("noise_prob", 1.0))
    if not gain_db and not use_noise:
        return x
    power = np.maximum(np.exp(x.astype(np.float64)) - config.log_floor, 0.0)
    if gain_db:
        power *= 10.0 ** (rng.uniform(-gain_db, gain_db) / 10.0)
    if use_noise:
        low, high = noise_range
        sigma2 = 10.0 ** (rng.uniform(low, high) / 10.0)
        bank = white_noise_mel_power(config)
        if bank.shape[0] < x.shape[0]:  # a whole long recording: repeat the noise bank
            bank = np.tile(bank, (-(-x.shape[0] // bank.shape[0]), 1))
        start = int(rng.integers(0, bank.shape[0] - x.shape[0] + 1))
        power += sigma2 * bank[start:start + x.shape[0]]
    return np.log(power + config.log_floor).astype(np.float32)
