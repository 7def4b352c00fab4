"""Streaming breath-cycle detector on the log-mel frames.

Breath sound is loudest mid-inspiration and quietest in the pause before the next breath,
so cycle boundaries are taken at minima of a smoothed band-energy envelope. The breathing
period is estimated causally from the envelope's autocorrelation over the last seconds and
sets how far apart two boundaries must be. A minimum is confirmed once ``lookahead_s`` of
later audio shows nothing lower, so every decision comes at most
``lookahead_s + smooth_s / 2`` seconds after the boundary it places (the decision delay);
a cycle longer than ``max_cycle_s`` is closed anyway.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.features import FeatureConfig, mel_filterbank


@dataclass(frozen=True)
class DetectorConfig:
    """Detector settings. The defaults come from ``steth-detect-eval --tune`` (random search
    on the 43 ICBHI training recordings with audio; no test data involved)."""

    band_low_hz: float = 230.0  # breath-sound energy band of the envelope
    band_high_hz: float = 420.0
    smooth_s: float = 0.48  # centred moving average of the envelope
    lookahead_s: float = 0.40  # confirmation delay of a minimum
    history_s: float = 12.0  # envelope kept for the period estimate
    min_period_s: float = 0.9  # fastest breathing considered (about 67 per minute)
    max_period_s: float = 7.0
    default_period_s: float = 4.1
    min_gap_fraction: float = 0.82  # boundaries at least this share of a period apart
    search_fraction: float = 0.23  # a boundary is the lowest point this share either side
    max_cycle_s: float = 8.0


@dataclass(frozen=True)
class Cycle:
    """A detected breath cycle as a frame range ``[first, last)`` of the feature stream."""

    first: int
    last: int
    forced: bool = False  # closed by max_cycle_s rather than by a minimum


class BreathCycleDetector:
    """Push log-mel frames, get closed cycles back. Causal, fixed memory.

    Parameters
    ----------
    features : FeatureConfig
        The feature stream's configuration (for frame rate and mel centres).
    config : DetectorConfig
        Detector settings, tuned on ICBHI training recordings only.
    """

    def __init__(self, features: FeatureConfig | None = None,
                 config: DetectorConfig | None = None) -> None:
        self.features = features or FeatureConfig()
        self.config = c = config or DetectorConfig()
        fps = self.features.frames_per_second
        self.fps = fps
        fb = mel_filterbank(self.features.sample_rate, self.features.n_fft, self.features.n_mels,
                            self.features.fmin_hz, self.features.fmax_hz)
        bin_hz = np.arange(fb.shape[0]) * self.features.sample_rate / self.features.n_fft
        centres = (fb * bin_hz[:, None]).sum(axis=0)
        self.band = (centres >= c.band_low_hz) & (centres <= c.band_high_hz)
        self.smooth = max(1, round(c.smooth_s * fps) | 1)  # odd length
        self.lookahead = max(1, round(c.lookahead_s * fps))
        self.history = round(c.history_s * fps)
        self.raw: deque[float] = deque(maxlen=self.smooth)
        self.env: deque[float] = deque(maxlen=self.history)  # smoothed envelope
        self.env_start = 0  # frame index of env[0]
        self.frames_seen = 0
        self.last_boundary: int | None = None
        self.period_frames = c.default_period_s * fps
        self.frames_since_period = 0

    @property
    def decision_delay_s(self) -> float:
        return (self.lookahead + self.smooth // 2) / self.fps

    def envelope_value(self, frame: np.ndarray) -> float:
        """Log energy of the breath band of one log-mel frame."""
        return float(np.log(np.exp(frame[self.band]).sum() + 1e-12))

    def push(self, frames: np.ndarray) -> list[Cycle]:
        """Consume new frames ``(n, n_mels)``; return the cycles they close."""
        closed: list[Cycle] = []
        for frame in frames:
            self.raw.append(self.envelope_value(frame))
            self.frames_seen += 1
            if len(self.raw) < self.smooth:
                continue
            # The smoothed value belongs to the centre of the averaging window.
            centre = self.frames_seen - 1 - self.smooth // 2
            if not self.env:
                self.env_start = centre
            elif len(self.env) == self.env.maxlen:
                self.env_start += 1
            self.env.append(float(np.mean(self.raw)))
            cycle = self._step(centre)
            if cycle is not None:
                closed.append(cycle)
        return closed

    def _update_period(self) -> None:
        c = self.config
        env = np.asarray(self.env)
        if env.size < 2 * c.max_period_s * self.fps * 0.5:
            return
        x = env - env.mean()
        lo, hi = int(c.min_period_s * self.fps), min(int(c.max_period_s * self.fps), x.size - 1)
        if hi <= lo:
            return
        spectrum = np.fft.rfft(x, n=2 * x.size)
        ac = np.fft.irfft(spectrum * np.conj(spectrum))[:x.size]
        ac /= ac[0] + 1e-12
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.1:  # a weak peak means no steady rhythm: keep the old estimate
            self.period_frames = 0.7 * self.period_frames + 0.3 * lag

    def _step(self, newest: int) -> Cycle | None:
        c = self.config
        self.frames_since_period += 1
        if self.frames_since_period >= self.fps:  # re-estimate once a second
            self.frames_since_period = 0
            self._update_period()
        candidate = newest - self.lookahead
        if candidate < self.env_start:
            return None
        if self.last_boundary is None:
            self.last_boundary = candidate  # the stream start is not a breath boundary
            return None
        since = candidate - self.last_boundary
        if since >= c.max_cycle_s * self.fps:
            return self._close(candidate, forced=True)
        if since < c.min_gap_fraction * self.period_frames:
            return None
        reach = int(c.search_fraction * self.period_frames)
        lo = max(self.env_start, candidate - reach, self.last_boundary + 1)
        window = np.asarray(self.env)[lo - self.env_start:newest - self.env_start + 1]
        if window.size and lo + int(np.argmin(window)) == candidate:
            return self._close(candidate, forced=False)
        return None

    def _close(self, boundary: int, forced: bool) -> Cycle:
        assert self.last_boundary is not None
        cycle = Cycle(self.last_boundary, boundary, forced)
        self.last_boundary = boundary
        return cycle

    def reset(self) -> None:
        """Forget everything (after a gap in the audio: never stitch across it)."""
        self.raw: deque[float] = deque(maxlen=self.smooth)
        self.env: deque[float] = deque(maxlen=self.history)  # smoothed envelope
        self.env_start = 0  # frame index of env[0]
        self.frames_seen = 0
        self.last_boundary: int | None = None
        self.period_frames = self.config.default_period_s * self.fps
        self.frames_since_period = 0


def detect_cycles(frames: np.ndarray, features: FeatureConfig | None = None,
                  config: DetectorConfig | None = None) -> list[Cycle]:
    """All cycles of a whole recording's frames (the streaming detector run to the end)."""
    return BreathCycleDetector(features, config).push(frames)
