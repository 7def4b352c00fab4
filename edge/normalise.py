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

import numpy as np
from scipy.signal import lfilter

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


def _checked_lfilter_kernel() -> Callable[..., tuple[np.ndarray, np.ndarray]] | None:
    """scipy's C loop behind ``lfilter``, if it still reproduces ``lfilter`` bit for bit.

    On a streaming block of a few frames, ``lfilter`` spends most of its time checking its
    arguments; its loop is the same arithmetic as the recursion in :func:`running_mean`.
    The loop is private to scipy, so it is used only when it imports and agrees here.
    """
    try:
        from scipy.signal._sigtools import _linear_filter as kernel
    except ImportError:
        return None
    alpha = 0.9
    b, a = np.array([1.0 - alpha]), np.array([1.0, -alpha])
    x = np.sin(np.arange(24.0) * 0.7).reshape(6, 4)
    zi = np.full((1, 4), 0.3)
    expected, expected_zf = lfilter(b, a, x, axis=0, zi=zi)
    try:
        y, zf = kernel(b, a, x, 0, zi)
    except (TypeError, ValueError):
        return None
    if np.array_equal(y, expected) and np.array_equal(zf, expected_zf):
        return kernel
    return None


_LFILTER_KERNEL = _checked_lfilter_kernel()


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
    out = np.empty_like(x)
    if n == 0:
        return out, (mean if mean is not None else np.zeros(x.shape[1]))
    # Frames with 1 / (k + 1) > 1 - alpha belong to the cumulative phase.
    switch = max(0, math.ceil(1.0 / (1.0 - alpha)) - 1) if cumulative_start else 0
    n_cum = min(n, max(0, switch - count))
    done = 0
    current = mean
    if n_cum:
        k = np.arange(count, count + n_cum, dtype=np.float64)[:, None]
        previous = 0.0 if current is None else current * count
        out[:n_cum] = (previous + np.cumsum(x[:n_cum], axis=0)) / (k + 1.0)
        current = out[n_cum - 1]
        done = n_cum
    if done < n:
        rest = x[done:]
        if current is None:  # the exponential phase starts at the very first frame
            current = rest[0]
        # m[t] = alpha m[t-1] + (1 - alpha) x[t]; the filter's state for it is alpha m[t-1].
        b, a, zi = np.array([1.0 - alpha]), np.array([1.0, -alpha]), (alpha * current)[None, :]
        if _LFILTER_KERNEL is not None:
            out[done:], _ = _LFILTER_KERNEL(b, a, rest, 0, zi)
        else:
            out[done:], _ = lfilter(b, a, rest, axis=0, zi=zi)
        current = out[-1]
    return out, np.array(current, dtype=np.float64)


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
            # The shipped model's path: hand the frames through without a copy.
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
