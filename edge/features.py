"""The one feature pipeline: raw device audio -> filtered 8 kHz audio -> log-mel frames.

Training, evaluation and the edge all call :class:`FeatureExtractor`. It is causal and
stateful: audio may arrive in blocks of any size and the frames come out identical to a
single call on the whole recording (up to float rounding). Frame ``t`` covers the filtered
samples ``[(t + 1) * hop - n_fft, (t + 1) * hop)``, so frame times are tied to sample
indices and cycle boundaries can be turned into frame ranges without guessing.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

import numpy as np

from steth.edge.filter import FilterChain, FilterConfig
from steth.edge.normalise import ChannelNormaliser, NormConfig

FEATURE_PIPELINE_VERSION = 1


def _checked_rfft_kernel() -> Callable[..., np.ndarray] | None:
    """numpy's pocketfft loop behind ``np.fft.rfft`` (even lengths), if it still reproduces
    ``np.fft.rfft`` bit for bit.

    On a streaming block of a few frames ``rfft`` spends a good part of its time handling
    its arguments; the loop is the same transform. The loop is private to numpy, so it is
    used only when it imports and agrees here.
    """
    try:
        kernel = importlib.import_module("numpy.fft._pocketfft_umath").rfft_n_even
    except (ImportError, AttributeError):
        return None
    x = np.sin(np.arange(64.0) * 0.7).reshape(2, 32)
    try:
        y = kernel(x, 1, out=np.empty((2, 17), dtype=np.complex128))
    except (TypeError, ValueError):
        return None
    return kernel if np.array_equal(y, np.fft.rfft(x, axis=1)) else None


_RFFT_KERNEL = _checked_rfft_kernel()


def rfft_rows(frames: np.ndarray) -> np.ndarray:
    """``np.fft.rfft(frames, axis=1)`` of float64 frames ``(n, n_fft)``."""
    n_fft = frames.shape[1]
    if _RFFT_KERNEL is None or n_fft % 2:
        return np.fft.rfft(frames, axis=1)
    out = np.empty((frames.shape[0], n_fft // 2 + 1), dtype=np.complex128)
    return _RFFT_KERNEL(frames, 1, out=out)


class Framing:
    """Rate and frame timing shared by every front end: the filter's target rate and hop."""

    filter: FilterConfig
    hop: int

    @property
    def sample_rate(self) -> int:
        return self.filter.target_rate

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop


@dataclass(frozen=True)
class FeatureConfig(Framing):
    """Everything that changes the numbers a model sees; hashed into the manifest and cache."""

    filter: FilterConfig = field(default_factory=FilterConfig)
    n_fft: int = 512  # 64 ms at 8 kHz: resolves wheeze harmonics, still shows crackles
    hop: int = 128  # 16 ms
    n_mels: int = 64
    fmin_hz: float = 50.0
    fmax_hz: float = 2000.0
    log_floor: float = 1e-8
    version: int = FEATURE_PIPELINE_VERSION
    # Causal channel normalisation of the classifier's frames (edge/normalise.py). The
    # breath-cycle detector reads the frames before it (it has its own running mean).
    norm: NormConfig = field(default_factory=NormConfig)

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.norm == NormConfig():
            # Without normalisation the dictionary, and so the hash, is what it was before
            # the field existed: models exported then still load.
            del data["norm"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        data = dict(data)
        data["filter"] = FilterConfig(**data.get("filter", {}))
        data["norm"] = NormConfig(**data.get("norm", {}))
        return cls(**data)

    @property
    def unnormalised(self) -> FeatureConfig:
        """The same log-mel without channel normalisation (what the detector reads)."""
        return replace(self, norm=NormConfig())

    def hash(self) -> str:
        """A short, stable hash of the configuration (first 16 hex digits of SHA-256)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                   fmax: float) -> np.ndarray:
    """Triangular mel filters, shape ``(n_fft // 2 + 1, n_mels)``, each summing to one.

    Raises
    ------
    ValueError
        If a filter covers no FFT bin (too many mels for the FFT size).
    """
    bin_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bin_hz[None, :]) / (upper - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)  # (n_mels, n_bins)
    sums = weights.sum(axis=1, keepdims=True)
    if np.any(sums == 0):
        raise ValueError(f"{n_mels} mel bands are too many for n_fft={n_fft}: some are empty")
    return (weights / sums).T.astype(np.float32)


def mel_band_centres_hz(config: FeatureConfig) -> np.ndarray:
    """Centre frequency of each mel band: the filter-weighted mean of its FFT bins."""
    fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin_hz,
                        config.fmax_hz)
    bin_hz = np.arange(fb.shape[0]) * config.sample_rate / config.n_fft
    return (fb * bin_hz[:, None]).sum(axis=0)


class FeatureExtractor:
    """Streaming front end: ``push`` raw audio blocks, get log-mel frames back.

    Parameters
    ----------
    in_rate : int
        Sample rate of the audio that will be pushed (the device's or the file's).
    config : FeatureConfig
        Feature settings; the defaults are what the shipped models expect.
    """

    def __init__(self, in_rate: int, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        c = self.config
        self.filters = FilterChain(in_rate, c.filter)
        self.window = np.hanning(c.n_fft + 1)[:-1]  # periodic Hann
        self.mel = mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin_hz, c.fmax_hz)
        self.pending = np.zeros(c.n_fft - c.hop, dtype=np.float64)  # zeros before the start
        self.frames_out = 0
        self.normaliser = ChannelNormaliser(c.norm, c.frames_per_second, c.log_floor)

    def normalise(self, logmel: np.ndarray) -> np.ndarray:
        """The classifier's frames: :meth:`push`'s log-mel through the channel normaliser."""
        return self.normaliser.push(logmel)

    def push(self, raw: np.ndarray) -> np.ndarray:
        """Filter a block of float audio (±1 full scale); return new frames ``(n, n_mels)``."""
        filtered = self.filters.process(raw)
        return self.push_filtered(filtered)

    def push_filtered(self, filtered: np.ndarray) -> np.ndarray:
        """Frame already-filtered 8 kHz audio; used when the caller also needs the samples."""
        c = self.config
        buffer = np.concatenate([self.pending, filtered])
        n_frames = (buffer.size - (c.n_fft - c.hop)) // c.hop
        if n_frames <= 0:
            self.pending = buffer
            return np.zeros((0, c.n_mels), dtype=np.float32)
        # Frame k is buffer[k*hop : k*hop + n_fft]: a strided view of the buffer, built
        # directly (sliding_window_view's argument handling costs more than the frames).
        step = buffer.itemsize
        windows = np.ndarray((n_frames, c.n_fft), dtype=buffer.dtype, buffer=buffer,
                             strides=(c.hop * step, step))
        power = np.abs(rfft_rows(windows * self.window))
        np.square(power, out=power)
        logmel = power.astype(np.float32).dot(self.mel)  # @'s BLAS product, less set-up
        logmel += c.log_floor
        np.log(logmel, out=logmel)
        self.pending = buffer[n_frames * c.hop:]
        self.frames_out += n_frames
        return logmel


def pcm16_to_float(samples: np.ndarray) -> np.ndarray:
    """Device PCM16 to float64 audio at ±1 full scale."""
    x = np.asarray(samples)
    # Integers divided by a float come out float64 in one pass: no separate conversion.
    return (x if x.dtype.kind in "iu" else x.astype(np.float64)) / 32768.0


def float_to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio at ±1 full scale to PCM16 (rounded, clipped): the inverse of the above."""
    return np.clip(np.round(np.asarray(audio) * 32768.0), -32768, 32767).astype(np.int16)


def recording_features(audio: np.ndarray, sample_rate: int,
                       config: FeatureConfig | None = None) -> np.ndarray:
    """The classifier's frames of a whole recording, through the same path as the edge.

    Log-mel, then the config's channel normalisation run from the first frame (a no-op when
    the config has none).
    """
    extractor = FeatureExtractor(sample_rate, config)
    return extractor.normalise(extractor.push(audio))


def frame_range(start_s: float, end_s: float, config: FeatureConfig) -> tuple[int, int]:
    """Frames whose right edge lies inside ``[start_s, end_s)`` of the 8 kHz signal."""
    fps = config.frames_per_second
    first = max(0, int(np.ceil(start_s * fps)) - 1)
    last = max(first + 1, int(np.ceil(end_s * fps)) - 1)
    return first, last
