"""Causal per-band channel normalisation: the numbers the classifier sees, minus the device.

A stethoscope (chest-piece, membrane, microphone, analog front end) colours the sound with a
fixed frequency response ``G(f)``: the mel power becomes ``G_m * P_m[t]``, and the log-mel
``log G_m + log P_m[t]``. Two causal normalisers take that out, both computed over the whole
stream from its start (or its last reset) so that training, the benchmark and the edge cut
cycles out of the same normalised frames:

``mean``
    log-mel minus a per-band running mean (exponential, time constant ``tau_s``). A fixed
    ``log G_m`` is removed exactly; gain too.
``pcen``
    per-channel energy normalisation (Wang et al., 2017): the mel power divided by a
    per-band running mean raised to ``pcen_alpha``, then root-compressed. A fixed gain
    ``G_m`` survives only as ``G_m ** (1 - pcen_alpha)``.

Both running means start as cumulative means (the first frame counts fully, the second half,
...), so the estimate is usable after a few frames; until ``warmup_s`` has passed since the
start or the last :meth:`ChannelNormaliser.reset` the output is *settling*. The edge resets
on a gap in the audio and on a new auscultation site.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import lfilter

from steth.edge.filter import _SOSFILT_KERNEL

NORMALISERS = ("none", "mean", "pcen")


@dataclass(frozen=True)
class NormConfig:
    """Which channel normalisation, and its constants (part of the feature hash)."""

    kind: str = "none"  # one of NORMALISERS
    tau_s: float = 8.0  # time constant of the running per-band mean
    warmup_s: float = 2.0  # output before this much audio is marked settling
    pcen_alpha: float = 0.98
    pcen_delta: float = 2.0
    pcen_r: float = 0.5
    pcen_eps: float = 1e-12

    def __post_init__(self) -> None:
        if self.kind not in NORMALISERS:
            raise ValueError(f"channel normalisation must be one of {NORMALISERS}, "
                             f"not {self.kind!r}")
        if self.tau_s <= 0 or self.warmup_s < 0:
            raise ValueError("tau_s must be positive and warmup_s not negative")

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


@lru_cache(maxsize=8)
def _one_pole_section(alpha: float) -> np.ndarray:
    """``m[t] = alpha m[t-1] + (1 - alpha) x[t]`` as one second-order section."""
    return np.array([[1.0 - alpha, 0.0, 0.0, 1.0, -alpha, 0.0]])


def _checked_one_pole_kernel() -> Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None:
    """scipy's section loop behind ``sosfilt``, if on one pole it reproduces ``lfilter``
    bit for bit.

    ``lfilter`` along the frames of a streaming block runs its general N-d loop once per
    band, and that set-up is most of its time at a few frames; the section loop takes the
    bands as signals of one call, with the same products and sums per sample. The
    loop is private to scipy, so it is used only when it imports and agrees here.
    """
    kernel = _SOSFILT_KERNEL
    if kernel is None:
        return None
    alpha = 0.9
    x = np.sin(np.arange(24.0) * 0.7).reshape(6, 4)
    zi = np.linspace(-0.3, 0.4, 4)
    expected, _ = lfilter([1.0 - alpha], [1.0, -alpha], x, axis=0, zi=zi[None, :])
    signals, state = np.ascontiguousarray(x.T), np.zeros((4, 1, 2))
    state[:, 0, 0] = zi
    try:
        kernel(_one_pole_section(alpha), signals, state)
    except (TypeError, ValueError):
        return None
    return kernel if np.array_equal(signals.T, expected) else None


_ONE_POLE_KERNEL = _checked_one_pole_kernel()


def _exponential_mean(x: np.ndarray, alpha: float, mean: np.ndarray) -> np.ndarray:
    """``m[t] = alpha m[t-1] + (1 - alpha) x[t]`` per column of ``x`` (T, M), from
    ``m[-1] = mean``; the filter's state for it is ``alpha m[t-1]``."""
    if _ONE_POLE_KERNEL is None:
        zi = alpha * mean
        return lfilter([1.0 - alpha], [1.0, -alpha], x, axis=0, zi=zi[None, :])[0]
    signals = np.array(x.T, dtype=np.float64, order="C")  # a band per row, filtered in place
    state = np.zeros((x.shape[1], 1, 2))
    state[:, 0, 0] = alpha * mean
    _ONE_POLE_KERNEL(_one_pole_section(alpha), signals, state)
    return signals.T


def running_mean(x: np.ndarray, alpha: float, count: int, mean: np.ndarray | None,
                 cumulative_start: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-column running mean of ``x`` (T, M), continuing from ``count`` frames and ``mean``.

    Frame ``k`` (counted from the start) is weighted ``max(1 / (k + 1), 1 - alpha)``: a
    cumulative mean at first, an exponential one (time constant ``1 / (1 - alpha)`` frames)
    once that is the larger weight. Without ``cumulative_start`` it is exponential from the
    first frame, which starts the mean at that frame (the detector's normaliser). Returns
    the mean after every frame and the last one.

    Examples
    --------
    >>> m, last = running_mean(np.array([[1.0], [3.0], [5.0]]), 0.9, 0, None)
    >>> m.ravel().tolist()
    [1.0, 2.0, 3.0]
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n == 0:
        return np.empty_like(x), (mean if mean is not None else np.zeros(x.shape[1]))
    # Frames with 1 / (k + 1) > 1 - alpha belong to the cumulative phase.
    switch = max(0, math.ceil(1.0 / (1.0 - alpha)) - 1) if cumulative_start else 0
    n_cum = min(n, max(0, switch - count))
    if n_cum == 0:  # the exponential phase: every streaming block after the first seconds
        out = _exponential_mean(x, alpha, x[0] if mean is None else mean)
        return out, np.array(out[-1], dtype=np.float64)
    out = np.empty_like(x)
    k = np.arange(count, count + n_cum, dtype=np.float64)[:, None]
    previous = 0.0 if mean is None else mean * count
    out[:n_cum] = (previous + np.cumsum(x[:n_cum], axis=0)) / (k + 1.0)
    if n_cum < n:
        out[n_cum:] = _exponential_mean(x[n_cum:], alpha, out[n_cum - 1])
    return out, np.array(out[-1], dtype=np.float64)


class ChannelNormaliser:
    """Streaming :class:`NormConfig` normaliser over log-mel frames ``(T, n_bands)``.

    Parameters
    ----------
    config : NormConfig
        Which normalisation and its constants.
    frames_per_second : float
        Frame rate of the log-mel stream.
    log_floor : float
        The feature config's floor inside ``log(power + floor)`` (PCEN works on power).

    Examples
    --------
    >>> norm = ChannelNormaliser(NormConfig(kind="mean"), 62.5)
    >>> frames = np.random.default_rng(0).normal(size=(200, 4))
    >>> shifted = frames + np.array([3.0, -2.0, 0.5, 1.0])  # a fixed device response
    >>> a = norm.push(frames); norm.reset(); b = norm.push(shifted)
    >>> bool(np.allclose(a, b))
    True
    """

    def __init__(self, config: NormConfig, frames_per_second: float,
                 log_floor: float = 1e-8) -> None:
        self.config = config
        self.alpha = math.exp(-1.0 / (config.tau_s * frames_per_second))
        self.warmup_frames = round(config.warmup_s * frames_per_second)
        self.log_floor = log_floor
        self.count = 0
        self.mean: np.ndarray | None = None

    def settling_at(self, frame: int) -> bool:
        """Whether frame ``frame`` (counted from the start or the last reset) lies in the
        warm-up. Without normalisation nothing settles: the frames are the log-mel itself."""
        return self.config.kind != "none" and frame < self.warmup_frames

    def reset(self) -> None:
        """Forget the running statistics (after a gap, or at a new auscultation site)."""
        self.count = 0
        self.mean = None

    def push(self, logmel: np.ndarray) -> np.ndarray:
        """Normalise the next frames; returns float32 ``(T, n_bands)``."""
        kind = self.config.kind
        if kind == "none":
            # No normalisation: float32 frames are handed through without a copy.
            frames = np.asarray(logmel, dtype=np.float32)
            self.count += frames.shape[0]
            return frames
        x = np.asarray(logmel, dtype=np.float64)
        if x.shape[0] == 0:
            return x.astype(np.float32)
        if kind == "mean":
            mean, self.mean = running_mean(x, self.alpha, self.count, self.mean)
            self.count += x.shape[0]
            return (x - mean).astype(np.float32)
        c = self.config
        power = np.maximum(np.exp(x) - self.log_floor, 0.0)
        smooth, self.mean = running_mean(power, self.alpha, self.count, self.mean)
        self.count += x.shape[0]
        gain = power / (c.pcen_eps + smooth) ** c.pcen_alpha
        return ((gain + c.pcen_delta) ** c.pcen_r - c.pcen_delta ** c.pcen_r).astype(np.float32)


def normalise_recording(logmel: np.ndarray, config: NormConfig, frames_per_second: float,
                        log_floor: float = 1e-8) -> np.ndarray:
    """The normalised frames of a whole recording, from its first frame (as the edge does)."""
    return ChannelNormaliser(config, frames_per_second, log_floor).push(logmel)
