"""Other stethoscopes and rooms, simulated on a whole recording's mel power before the front
end's channel normalisation.

Each training recording is heard through one random "device" for the whole recording (a
device does not change mid-recording), then normalised from its first frame exactly as the
edge normalises a stream, and only then cut into cycles. The simulation works on the mel
power ``P`` of the cached log-mel (``log(P + floor)``); for a linear filter that is what the
same filter on the audio gives, up to the mel bank's smoothing inside one band:

- ``eq_db``: a random smooth response over log frequency (a chest-piece, membrane or
  microphone), peak deviation up to ±``eq_db``;
- ``tilt_db``: a spectral tilt, ±``tilt_db`` between the lowest and the highest band;
- ``band_limit_hz``: with ``band_limit_prob``, a low-pass at a random cutoff in the range
  (the 4 kHz-sampled devices, and resampling to 4 kHz, end at or below 2 kHz);
- ``quant_snr_db``: with ``quant_prob``, white noise at a random level below the
  recording's own mean power (coarse or adaptive quantisation such as IMA-ADPCM scales its
  error with the signal);
- ``heart_bpm``: with ``heart_prob``, heart sounds: thumps of 60–120 ms below 150 Hz at a
  random rate, ``heart_db`` relative to the recording's low-band power;
- ``friction_prob``: handling and friction bursts, broadband, 50–300 ms, a few per minute;
- ``ambient_snr_db``: with ``ambient_prob``, room noise with a random spectral slope.

Every part draws from ``rng`` only, so a seed fixes the device.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from steth.edge.features import FeatureConfig, mel_band_centres_hz

DB = math.log(10.0) / 10.0  # dB to natural-log power


def smooth_eq_db(centres_hz: np.ndarray, peak_db: float, rng: np.random.Generator
                 ) -> np.ndarray:
    """A random smooth curve over log frequency, scaled so its largest |value| is peak_db."""
    u = np.log(centres_hz / centres_hz[0]) / np.log(centres_hz[-1] / centres_hz[0])  # 0..1
    curve = np.zeros_like(u)
    for k in range(1, 4):  # a few slow cosines: resonances, not ripple
        curve += rng.normal() / k * np.cos(np.pi * k * u + rng.uniform(0, 2 * np.pi))
    top = np.max(np.abs(curve))
    return curve / top * peak_db * rng.uniform(0.3, 1.0) if top > 0 else curve


def tilt_db(centres_hz: np.ndarray, span_db: float, rng: np.random.Generator) -> np.ndarray:
    """A straight line over log frequency from 0 to a random ±span_db at the top band."""
    u = np.log(centres_hz / centres_hz[0]) / np.log(centres_hz[-1] / centres_hz[0])
    return u * rng.uniform(-span_db, span_db)


def low_pass_db(centres_hz: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """An 8th-order-like roll-off above the cutoff (−48 dB per octave), floored at −80 dB."""
    octaves = np.log2(np.maximum(centres_hz, 1.0) / cutoff_hz)
    return np.maximum(-48.0 * np.clip(octaves, 0.0, None), -80.0)


def heart_thumps(n_frames: int, fps: float, centres_hz: np.ndarray, rate_bpm: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Relative power (T, M) of heart sounds: S1/S2 thumps below 150 Hz at ``rate_bpm``."""
    out = np.zeros((n_frames, centres_hz.size))
    low = np.exp(-0.5 * (np.maximum(centres_hz - 60.0, 0.0) / 45.0) ** 2)  # mostly < 150 Hz
    period = 60.0 / rate_bpm * fps
    t = rng.uniform(0, period)
    while t < n_frames:
        for offset, weight in ((0.0, 1.0), (0.3 * period, 0.6)):  # S1, then a softer S2
            start = int(t + offset)
            length = max(1, int(rng.uniform(0.06, 0.12) * fps))
            if start < n_frames:
                out[start:start + length] += weight * low
        t += period * rng.uniform(0.95, 1.05)
    return out


def friction_bursts(n_frames: int, fps: float, n_bands: int, rng: np.random.Generator
                    ) -> np.ndarray:
    """Relative power (T, M) of broadband handling bursts, a few per minute."""
    out = np.zeros((n_frames, n_bands))
    n = rng.poisson(max(1.0, 4.0 * n_frames / fps / 60.0))
    for _ in range(n):
        start = int(rng.integers(0, max(1, n_frames)))
        length = max(1, int(rng.uniform(0.05, 0.3) * fps))
        shape = np.exp(rng.normal(0.0, 0.5, n_bands))
        out[start:start + length] += rng.uniform(0.5, 4.0) * shape
    return out


def simulate_device(logmel: np.ndarray, rng: np.random.Generator, spec: dict[str, Any],
                    config: FeatureConfig) -> np.ndarray:
    """One random device and room applied to a whole recording's log-mel ``(T, n_mels)``.

    Returns log-mel of the same shape (before channel normalisation). ``spec`` keys are
    those of the module docstring; a missing key switches its part off.
    """
    x = np.asarray(logmel, dtype=np.float64)
    if x.shape[0] == 0 or not spec:
        return x.astype(np.float32)
    centres = mel_band_centres_hz(config)
    fps = config.frames_per_second
    power = np.maximum(np.exp(x) - config.log_floor, 0.0)
    mean_power = float(power.mean()) + 1e-20
    response_db = np.zeros(centres.size)
    if spec.get("eq_db"):
        response_db += smooth_eq_db(centres, float(spec["eq_db"]), rng)
    if spec.get("tilt_db"):
        response_db += tilt_db(centres, float(spec["tilt_db"]), rng)
    if spec.get("band_limit_hz") and rng.random() < float(spec.get("band_limit_prob", 0.3)):
        low, high = spec["band_limit_hz"]
        response_db += low_pass_db(centres, rng.uniform(low, high))
    power = power * np.exp(response_db * DB)[None, :]
    added = np.zeros_like(power)
    if spec.get("heart_bpm") and rng.random() < float(spec.get("heart_prob", 0.5)):
        lo_db, hi_db = spec.get("heart_db", (-10.0, 6.0))
        low_bands = centres < 200.0
        level = float(power[:, low_bands].mean()) if low_bands.any() else mean_power
        thumps = heart_thumps(power.shape[0], fps, centres, rng.uniform(*spec["heart_bpm"]),
                              rng)
        added += thumps * level * math.exp(rng.uniform(lo_db, hi_db) * DB)
    if rng.random() < float(spec.get("friction_prob", 0.0)):
        added += friction_bursts(power.shape[0], fps, centres.size, rng) * mean_power
    if spec.get("ambient_snr_db") and rng.random() < float(spec.get("ambient_prob", 0.5)):
        slope = rng.uniform(-2.0, 0.0)  # pink-to-brown room noise: dB per octave * 3
        shape = (centres / centres[0]) ** slope
        snr = rng.uniform(*spec["ambient_snr_db"])
        noise = shape / shape.mean() * mean_power * math.exp(-snr * DB)
        added += noise[None, :] * rng.exponential(1.0, power.shape)  # chi-square-like
    if spec.get("quant_snr_db") and rng.random() < float(spec.get("quant_prob", 0.5)):
        snr = rng.uniform(*spec["quant_snr_db"])
        level = float(power.mean()) * math.exp(-snr * DB)
        added += level * rng.exponential(1.0, power.shape)  # white: the same in every band
    return np.log(power + added + config.log_floor).astype(np.float32)
