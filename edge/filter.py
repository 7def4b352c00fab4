"""Causal, stateful filters: resampling to the model rate, 60–2000 Hz band-pass, mains notch.

Every filter here keeps its own state between calls, so feeding a signal in blocks of any
size gives the same output as feeding it at once. Training features are computed through
these same objects (see :mod:`edge.features`), so the edge sees exactly what training saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal

BAND_LOW_HZ = 60.0
BAND_HIGH_HZ = 2000.0


def _checked_sosfilt_kernel() -> Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None:
    """scipy's in-place section loop behind ``sosfilt``, if it still behaves as ``sosfilt``.

    A streaming block of 100 ms spends most of ``sosfilt``'s time in argument checks and
    copies; the loop itself is the same arithmetic. The loop is private to scipy, so it is
    used only when it imports and reproduces the public function bit for bit here.
    """
    try:
        from scipy.signal._sosfilt import _sosfilt as kernel
    except ImportError:
        return None
    sos = signal.butter(2, [0.1, 0.3], btype="bandpass", output="sos")
    x = np.sin(np.arange(64) * 0.7)
    zi = np.full((sos.shape[0], 2), 0.25)
    expected, expected_zi = signal.sosfilt(sos, x, zi=zi)
    try:
        y, state = x.copy().reshape(1, -1), zi.copy()[None]
        kernel(sos, y, state)
    except (TypeError, ValueError):
        return None
    if np.array_equal(y[0], expected) and np.array_equal(state[0], expected_zi):
        return kernel
    return None


_SOSFILT_KERNEL = _checked_sosfilt_kernel()


class SosFilter:
    """A streaming IIR filter in second-order sections (``scipy.signal.sosfilt`` with state).

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
        Second-order sections, e.g. from :func:`scipy.signal.butter` with ``output="sos"``.
    """

    def __init__(self, sos: np.ndarray) -> None:
        self.sos = np.asarray(sos, dtype=np.float64)
        self.zi = np.zeros((self.sos.shape[0], 2), dtype=np.float64)
        self.state = self.zi[None]  # the kernel's view of zi: one signal

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter one block and carry the state forward."""
        if x.size == 0:
            return np.zeros(0, dtype=np.float64)
        if _SOSFILT_KERNEL is not None:
            y = np.array(x, dtype=np.float64, ndmin=2)  # a copy of one row, filtered in place
            _SOSFILT_KERNEL(self.sos, y, self.state)  # in place: y and the state
            return y[0]
        y, self.zi[...] = signal.sosfilt(self.sos, np.asarray(x, dtype=np.float64), zi=self.zi)
        return y

    def reset(self) -> None:
        self.zi[:] = 0.0


def bandpass_sos(sample_rate: int, low_hz: float = BAND_LOW_HZ, high_hz: float = BAND_HIGH_HZ,
                 order: int = 4) -> np.ndarray:
    """Butterworth band-pass sections; the upper edge is clamped below Nyquist."""
    nyquist = sample_rate / 2.0
    high = min(high_hz, 0.95 * nyquist)
    return signal.butter(order, [low_hz, high], btype="bandpass", fs=sample_rate, output="sos")


def notch_sos(sample_rate: int, mains_hz: float, quality: float = 30.0) -> np.ndarray:
    """A mains-hum notch (50 or 60 Hz) and its second harmonic, as second-order sections."""
    sections = []
    for harmonic in (mains_hz, 2.0 * mains_hz):
        if harmonic < sample_rate / 2.0:
            b, a = signal.iirnotch(harmonic, quality, fs=sample_rate)
            sections.append(signal.tf2sos(b, a))
    return np.vstack(sections)


@lru_cache(maxsize=16)
def _resampler_design(up: int, down: int, taps_per_phase: int) -> np.ndarray:
    """Low-pass prototype for a rational resampler, scaled by ``up`` to keep unit gain."""
    cutoff = 1.0 / max(up, down)  # relative to the upsampled Nyquist frequency
    n_taps = taps_per_phase * up
    h = signal.firwin(n_taps, 0.9 * cutoff, window=("kaiser", 8.0))
    return (h * up).astype(np.float64)


class StreamingResampler:
    """Causal polyphase resampler by the rational factor ``up/down``.

    Output sample ``m`` lies at upsampled position ``m*down`` and uses only input samples
    at or before it, so the output is causal and block-size invariant. The price is a
    group delay of about ``taps_per_phase/2`` input samples, which cycle timing accounts for
    via :attr:`delay_out_samples`.
    """

    def __init__(self, in_rate: int, out_rate: int, taps_per_phase: int = 24) -> None:
        ratio = Fraction(out_rate, in_rate)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.in_rate, self.out_rate = in_rate, out_rate
        self.passthrough = self.up == 1 and self.down == 1
        self.taps_per_phase = taps_per_phase
        if not self.passthrough:
            h = _resampler_design(self.up, self.down, taps_per_phase)
            # phases[p, j] = h[p + j*up]: the taps that multiply x[i0 - j] for phase p.
            self.phases = h.reshape(taps_per_phase, self.up).T.copy()  # (up, taps_per_phase)
        self.history = np.zeros(taps_per_phase - 1, dtype=np.float64)
        self.consumed = 0  # input samples seen so far
        self.produced = 0  # output samples emitted so far

    @property
    def delay_out_samples(self) -> float:
        """Approximate group delay of the anti-alias filter, in output samples."""
        if self.passthrough:
            return 0.0
        return (self.taps_per_phase * self.up - 1) / 2.0 / self.down

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample one block; returns every output sample whose inputs have arrived."""
        x = np.asarray(x, dtype=np.float64)
        if self.passthrough:
            return x.copy()
        buffer = np.concatenate([self.history, x])
        total_in = self.consumed + x.size
        # Output m needs input index floor(m*down/up) <= total_in - 1.
        last_m = (total_in * self.up - 1) // self.down if total_in > 0 else -1
        m = np.arange(self.produced, last_m + 1, dtype=np.int64)
        out = np.zeros(m.size, dtype=np.float64)
        if m.size:
            pos = m * self.down
            phase = pos % self.up
            newest = pos // self.up - (self.consumed - self.history.size)  # index into buffer
            offsets = np.arange(self.taps_per_phase, dtype=np.int64)
            idx = newest[:, None] - offsets[None, :]  # (n_out, taps_per_phase)
            out = np.einsum("ij,ij->i", buffer[idx], self.phases[phase])
        keep = self.taps_per_phase - 1
        self.history = buffer[-keep:] if keep else buffer[:0]
        self.consumed = total_in
        self.produced = last_m + 1
        return out


@dataclass(frozen=True)
class FilterConfig:
    """What the front of the DSP chain does to raw device audio."""

    target_rate: int = 8000
    band_low_hz: float = BAND_LOW_HZ
    band_high_hz: float = BAND_HIGH_HZ
    order: int = 4
    mains_hz: float = 0.0  # 0 disables the notch; 50 or 60 to enable


class FilterChain:
    """Resample to the model rate, then band-pass (and optionally notch), all streaming.

    Resampling comes first so that low-rate recordings (ICBHI's 4 kHz files) are never
    band-passed at an edge at or above their own Nyquist frequency.
    """

    def __init__(self, in_rate: int, config: FilterConfig | None = None) -> None:
        self.config = config or FilterConfig()
        self.resampler = StreamingResampler(in_rate, self.config.target_rate)
        self.bandpass = SosFilter(bandpass_sos(self.config.target_rate, self.config.band_low_hz,
                                               self.config.band_high_hz, self.config.order))
        self.notch = (SosFilter(notch_sos(self.config.target_rate, self.config.mains_hz))
                      if self.config.mains_hz else None)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter one block of float audio (full scale ±1) at the input rate."""
        # The band-pass copies what it filters, so audio at the target rate goes straight in.
        passthrough = self.resampler.passthrough
        resampled = np.asarray(x, dtype=np.float64) if passthrough else self.resampler.process(x)
        y = self.bandpass.process(resampled)
        if self.notch is not None:
            y = self.notch.process(y)
        return y
