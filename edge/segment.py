"""Streaming breath-cycle detector on the log-mel frames.

A cycle runs from one inspiration onset to the next (ICBHI's convention). Three causal stages:

1. :class:`FrameNormaliser` subtracts a per-band running mean (exponential, ``norm_tau_s``)
   from each log-mel frame, so gain and stethoscope colouring drop out.
2. :class:`BoundaryNet` - a tiny causal dilated 1-D convolution stack in plain NumPy (weights
   from a small ``.npz`` pinned by a SHA-256 manifest, trained by ``models.detector_train``)
   - scores every frame for "a cycle boundary was here", ``lookahead`` frames after it: the
   score of frame ``t - lookahead`` is known once frame ``t`` has arrived.
3. :class:`BoundaryPicker` takes a score peak as a boundary once ``peak_frames`` later scores
   are lower, if it clears ``threshold`` and lies at least ``gap_fraction`` of the running
   breath period after the previous boundary (or scores ``rephase_ratio`` times the previous
   boundary's). The period comes from :class:`PeriodTracker` - the running autocorrelation
   of the scores, which follows adults at 12 per minute and infants at 60 without locking
   onto a multiple or a fraction of the breath - and is ``min_period_s`` until the scores
   show a rhythm. A cycle longer than ``max_cycle_s`` is closed anyway (``forced``).

Every boundary is therefore decided exactly ``(lookahead + peak_frames) / fps`` seconds after
the frame it is placed on (:attr:`BreathCycleDetector.decision_delay_s`; 0.48 s with the
committed weights, 24 + 6 frames), and the cost per frame is :attr:`BoundaryNet.macs_per_frame`
multiply-accumulates (23,584 committed) plus, at frames scoring above the threshold, one
product per autocorrelation lag (about 400). At the end of a stream
:meth:`BreathCycleDetector.finish` closes the open cycle at the last frame.

Committed weights (breathseg 0.2.0) and settings, patient-grouped CV over the 43 ICBHI
training recordings (``steth-detect-eval --cv RUN --tune 60``): event F1 0.684 at IoU 0.5,
median onset / offset error 0.097 / 0.079 s (breathseg 0.1.0 with the old picker: 0.663,
0.151 / 0.147 s).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from steth.edge.assets import default_detector_path
from steth.edge.features import FeatureConfig, mel_band_centres_hz
from steth.edge.model_pin import DETECTOR_DECISION_FIELDS, NPZ_MEMBER, ModelPinError, check_pinned
from steth.edge.normalise import running_mean

MANIFEST_SUFFIX = ".manifest.json"
WEIGHTS_FORMAT = "breathseg-causal-conv-v1"
BLOCK_ROWS = 256  # frames the network's buffers take before they move their history back
_ZERO = np.zeros(())  # ReLU's floor as an array: numpy converts a Python 0.0 on every call


class DetectorWeightsError(Exception):
    """The detector weights file is missing, corrupt or does not match its manifest."""


@dataclass(frozen=True)
class DetectorConfig:
    """Peak-picking settings; the network's own settings travel in its manifest.

    ``threshold``, ``gap_fraction``, ``period_peak_ratio`` and ``rephase_ratio`` come from
    ``steth-detect-eval --cv RUN --tune 60``: random search on the held-out scores of the
    patient-grouped fold models over the 43 ICBHI training recordings (no test data).
    ``period_tau_s`` is a recipe choice: of 6, 12, 30, 60 and 120 s, 30 s gave the best
    cross-validated F1 with the old fold models (0.674, against 0.656 at 12 s).
    """

    weights: Path | None = None  # None: the embedded steth.edge.assets detector
    threshold: float = 0.286  # lowest boundary score taken as a boundary
    peak_frames: int = 6  # later frames that must score lower before a peak is taken
    gap_fraction: float = 0.716  # boundaries at least this share of the running period apart
    min_period_s: float = 0.6  # fastest breathing considered (100 per minute; infants 60)
    max_period_s: float = 7.0
    period_tau_s: float = 30.0  # memory of the score autocorrelation behind the period
    period_peak_ratio: float = 0.721  # shortest lag whose autocorrelation peak reaches this
    rephase_ratio: float = 1.279  # a peak this much above the last boundary's may override the gap
    max_cycle_s: float = 8.0
    envelope_band_hz: tuple[float, float] = (230.0, 420.0)  # level display only
    history_s: float = 12.0  # envelope kept for the level display


@dataclass(frozen=True)
class Cycle:
    """A detected breath cycle as a frame range ``[first, last)`` of the feature stream."""

    first: int
    last: int
    forced: bool = False  # closed by max_cycle_s or the stream's end, not by a boundary


# ---------------------------------------------------------------------------- weights


def _sha256(path: Path) -> str:
    from steth.edge.manifest import sha256_file

    return sha256_file(path)


def without_mains_notch(features: FeatureConfig) -> FeatureConfig:
    """The log-mel the detector's weights are pinned to.

    The optional mains notch only removes interference, so weights hold for either setting;
    the classifier's channel normalisation comes after the detector's input.
    """
    unnormalised = features.unnormalised
    return replace(unnormalised, filter=replace(unnormalised.filter, mains_hz=0.0))


def load_weights(path: Path, features: FeatureConfig) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and manifest of a detector weights file, checked against its manifest.

    Raises
    ------
    DetectorWeightsError
        If the file or its manifest is missing or unreadable, the SHA-256 differs, or the
        weights were trained on another feature configuration (the mains notch aside).
    """
    path = Path(path)
    manifest_path = Path(str(path) + MANIFEST_SUFFIX)
    if not path.is_file():
        raise DetectorWeightsError(f"{path}: detector weights not found "
                                   "(reinstall, or retrain with steth-detector-train)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DetectorWeightsError(f"{manifest_path}: cannot read the detector manifest "
                                   f"({exc.__class__.__name__})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != WEIGHTS_FORMAT:
        raise DetectorWeightsError(f"{manifest_path}: not a {WEIGHTS_FORMAT} manifest")
    digest = _sha256(path)
    if digest != manifest.get("weights_sha256"):
        raise DetectorWeightsError(f"{path}: SHA-256 {digest[:12]}... does not match the "
                                   "manifest; the weights file is corrupt or was replaced")
    expected = without_mains_notch(features).hash()
    if manifest.get("feature_hash") != expected:
        raise DetectorWeightsError(f"{path}: trained on features {manifest.get('feature_hash')}"
                                   f", the stream uses {expected}; retrain the detector")
    try:
        check_pinned(path, manifest, DETECTOR_DECISION_FIELDS, manifest_path)
    except ModelPinError as exc:
        raise DetectorWeightsError(str(exc)) from None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k], dtype=np.float64) for k in data.files
                      if k != NPZ_MEMBER}
    except (OSError, ValueError) as exc:
        raise DetectorWeightsError(f"{path}: cannot read detector weights ({exc})") from exc
    return arrays, manifest


# ---------------------------------------------------------------------------- stage 1


class FrameNormaliser:
    """Causal per-band mean removal: ``x[t] - m[t]``, ``m`` an exponential running mean.

    The mean starts at the first frame, so a stream is normalised from its first frame on
    (:func:`steth.edge.normalise.running_mean` without its cumulative start).
    """

    def __init__(self, n_bands: int, tau_frames: float) -> None:
        self.alpha = float(np.exp(-1.0 / tau_frames))
        self.n_bands = n_bands
        self.mean: np.ndarray | None = None

    def push(self, frames: np.ndarray) -> np.ndarray:
        x = np.asarray(frames, dtype=np.float64)
        if x.shape[0] == 0:
            return np.zeros((0, self.n_bands))
        mean, self.mean = running_mean(x, self.alpha, 0, self.mean, cumulative_start=False)
        # Row-major whatever the mean's layout: the network's products see what they always saw.
        return np.subtract(x, mean, order="C")

    def reset(self) -> None:
        self.mean = None


# ---------------------------------------------------------------------------- stage 2


class BoundaryNet:
    """Causal dilated convolutions, NumPy only. Streaming state: a few past frames per layer.

    Shapes (C channels, M mel bands): ``in_w (C, M)``; layer ``k``: ``conv{k}_w (C, C, 3)``
    with taps at ``t - 2d, t - d, t`` (dilation ``d``), residual + ReLU; ``out_w (C,)``.
    The torch twin in ``models.detector_train`` has the same layout.
    """

    def __init__(self, arrays: dict[str, np.ndarray], manifest: dict) -> None:
        try:
            self.dilations = [int(d) for d in manifest["dilations"]]
            self.lookahead = int(manifest["lookahead_frames"])
            self.tau_frames = float(manifest["norm_tau_frames"])
            self.in_w, self.in_b = arrays["in_w"], arrays["in_b"]
            self.convs = [(arrays[f"conv{k}_w"], arrays[f"conv{k}_b"])
                          for k in range(len(self.dilations))]
            self.out_w, self.out_b = arrays["out_w"], float(arrays["out_b"].reshape(-1)[0])
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectorWeightsError(f"detector weights lack {exc}; retrain them") from exc
        self.channels, self.n_bands = self.in_w.shape
        for w, _ in self.convs:
            if w.shape != (self.channels, self.channels, 3):
                raise DetectorWeightsError(f"detector conv weights have shape {w.shape}, "
                                           f"expected ({self.channels}, {self.channels}, 3)")
        # The three taps of a layer as one (3C, C) matrix: one product per layer and block.
        self.in_w_t = np.ascontiguousarray(self.in_w.T)
        self.taps_w = [np.concatenate([w[:, :, 0].T, w[:, :, 1].T, w[:, :, 2].T])
                       for w, _ in self.convs]
        # Each layer's inputs live in a buffer of its own: the newest frames are written
        # at ``pos`` behind ``span`` rows of history (the widest tap reach of any layer), so
        # a block's taps are one gather and no block copies the history along.
        self.span = 2 * max(self.dilations, default=0)
        self.inputs = self._buffers(self.span + BLOCK_ROWS)
        self.pos = self.span
        self.tap_rows: dict[int, np.ndarray] = {}  # block length -> (layers, n, 3) rows
        # Biases repeated down the rows: adding arrays of one shape skips numpy's broadcast
        # set-up, which costs more than the sum at a block's few frames.
        self.bias_rows = self._biases(BLOCK_ROWS)

    def _buffers(self, rows: int) -> list[np.ndarray]:
        return [np.zeros((rows, self.channels)) for _ in range(len(self.convs) + 1)]

    def _biases(self, rows: int) -> list[np.ndarray]:
        return [np.tile(b, (rows, 1)) for b in [self.in_b, *(b for _, b in self.convs)]]

    @property
    def macs_per_frame(self) -> int:
        c = self.channels
        return c * self.n_bands + len(self.convs) * 3 * c * c + c

    @property
    def receptive_field(self) -> int:
        return 1 + 2 * sum(self.dilations)

    def _room(self, n: int) -> None:
        """Make rows ``[pos, pos + n)`` free, keeping the ``span`` rows of history before."""
        rows = self.inputs[0].shape[0]
        if self.pos + n <= rows:
            return
        fresh = self._buffers(max(rows, self.span + n))
        for old, new in zip(self.inputs, fresh, strict=True):
            new[:self.span] = old[self.pos - self.span:self.pos]
        self.inputs, self.pos = fresh, self.span
        if n > self.bias_rows[0].shape[0]:
            self.bias_rows = self._biases(n)

    def _taps(self, n: int) -> np.ndarray:
        """Rows of frame ``t``'s taps ``t - 2d, t - d, t`` for every layer, from ``pos``."""
        rows = self.tap_rows.get(n)
        if rows is None:
            reach = np.array([[-2 * d, -d, 0] for d in self.dilations], dtype=np.intp)
            rows = reach[:, None, :] + np.arange(n, dtype=np.intp)[None, :, None]
            self.tap_rows[n] = rows
        return rows + self.pos

    def push(self, x: np.ndarray) -> np.ndarray:
        """Normalised frames ``(n, M)`` -> logits ``(n,)`` of frames ``t - lookahead``."""
        n = x.shape[0]
        self._room(n)
        new = slice(self.pos, self.pos + n)
        # ndarray.dot: the same BLAS product as @, without the generalised-ufunc set-up.
        h = self.inputs[0][new]
        np.asarray(x, dtype=np.float64).dot(self.in_w_t, h)  # (n, C)
        np.add(h, self.bias_rows[0][:n], out=h)
        np.maximum(h, _ZERO, out=h)
        taps = self._taps(n)
        width = 3 * self.channels
        for k, w in enumerate(self.taps_w):
            # In place, the same operations in the same order as h + max(taps W + b, 0).
            y = self.inputs[k].take(taps[k], 0).reshape(n, width).dot(w)
            np.add(y, self.bias_rows[k + 1][:n], out=y)
            np.maximum(y, _ZERO, out=y)
            h = np.add(h, y, out=self.inputs[k + 1][new])
        self.pos += n
        logits = h.dot(self.out_w)
        logits += self.out_b
        return logits  # (n,)

    def reset(self) -> None:
        for buffer in self.inputs:
            buffer[:self.pos] = 0.0
        self.pos = self.span


# ---------------------------------------------------------------------------- stage 3


class PeriodTracker:
    """Causal breath period: the shortest strong peak of the scores' running autocorrelation.

    A period taken from the accepted cycles locks in: once every other boundary is rejected
    the cycles measure twice the period and the gap rule built on it keeps rejecting them
    (infants at 60 per minute), and once expiration onsets are taken the cycles measure part
    of the period and the gap rule keeps admitting them (adults at 12 per minute). The
    autocorrelation of the scores does not depend on which peaks were taken. With peaks of
    heights ``a`` (inspiration) and ``b`` (expiration) per breath, lag ``P`` scores
    ``a^2 + b^2`` and a shorter lag at most ``a * b``, which is at most half of that; the
    multiples of ``P`` score no more than ``P``. So the period is the shortest lag whose
    local peak reaches ``ratio`` of the largest.

    Only the part of a score above ``floor`` (the picker's threshold) counts, so the
    baseline between boundaries adds nothing. Cost per frame: one product per lag when
    the score is above the floor, and the decay is applied only then or when read.
    """

    def __init__(self, min_lag: int, max_lag: int, tau_frames: float, floor: float,
                 ratio: float) -> None:
        self.lags = np.arange(min_lag, max_lag + 1)
        self.min_lag, self.n_lags = min_lag, self.lags.size
        self.decay = float(np.exp(-1.0 / tau_frames))
        self.floor, self.ratio = floor, ratio
        self.size = max_lag + 1
        self.reset()

    def reset(self) -> None:
        # Ring of the last max_lag + 1 excesses, newest first and written twice, ``size``
        # apart: the excess ``L`` frames back is at ``pos + L``, so every lag's partner is
        # one slice (no index arithmetic per frame).
        self.excess = np.zeros(2 * self.size)
        self.acf = np.zeros(self.n_lags)
        self.product = np.zeros(self.n_lags)
        self.pos = 0
        self.pending = 0  # frames whose decay is not yet applied to acf

    def push(self, score: float) -> None:
        self.pos = pos = (self.pos - 1) % self.size
        x = score - self.floor
        if not x > 0.0:  # max(0.0, x) without the call, NaN included
            x = 0.0
        self.excess[pos] = self.excess[pos + self.size] = x
        self.pending += 1
        if x > 0.0:
            self._catch_up()
            first = pos + self.min_lag
            np.multiply(self.excess[first:first + self.n_lags], x, out=self.product)
            self.acf += self.product

    def _catch_up(self) -> None:
        if self.pending:
            self.acf *= self.decay ** self.pending
            self.pending = 0

    def period(self) -> float | None:
        """Period in frames; None until two scores above the floor have been seen."""
        self._catch_up()
        acf = self.acf
        best = float(acf.max())
        if best <= 0.0:
            return None
        padded = np.concatenate([[-np.inf], acf, [-np.inf]])
        peaks = (acf >= padded[:-2]) & (acf >= padded[2:]) & (acf >= self.ratio * best)
        return float(self.lags[int(np.argmax(peaks))])


class BoundaryPicker:
    """Boundary scores (one per frame, in order) -> closed cycles. See the module docstring."""

    def __init__(self, config: DetectorConfig, fps: float) -> None:
        self.config = c = config
        self.fps = fps
        self.peak = int(c.peak_frames)
        self.threshold = c.threshold
        self.max_cycle = round(c.max_cycle_s * fps)
        self.tracker = PeriodTracker(round(c.min_period_s * fps), round(c.max_period_s * fps),
                                     c.period_tau_s * fps, c.threshold, c.period_peak_ratio)
        self.reset()

    def reset(self) -> None:
        self.scores: deque[float] = deque(maxlen=2 * self.peak + 1)
        self.next_frame = 0  # frame index the next score belongs to
        self.last_boundary: int | None = None
        self.last_score = 0.0  # score of the last boundary
        self.before_last: int | None = None  # the boundary before it
        self.provisional = 0  # stream start: a cycle from here is only ever closed by force
        self.tracker.reset()

    @property
    def period_frames(self) -> float:
        """Running breath period in frames (see :class:`PeriodTracker`); until the scores
        show a rhythm, the shortest period (no default can suit both adults and infants)."""
        period = self.tracker.period()
        return self.config.min_period_s * self.fps if period is None else period

    def push(self, scores: np.ndarray) -> list[Cycle]:
        return [cycle for cycle, _ in self.push_decided(scores)]

    def push_decided(self, scores: np.ndarray) -> list[tuple[Cycle, int]]:
        """Closed cycles, each with how many of ``scores`` had been read when it closed."""
        closed: list[tuple[Cycle, int]] = []
        for n, score in enumerate(scores.tolist(), start=1):
            self.scores.append(score)
            if len(self.scores) == self.scores.maxlen:
                # The tracker reads each score once it leaves the peak window, so the
                # period judging a candidate does not count the candidate's own pairs (a
                # fresh split would otherwise vouch for itself early in a stream).
                self.tracker.push(self.scores[0])
            self.next_frame += 1
            cycle = self._step()
            if cycle is not None:
                closed.append((cycle, n))
        return closed

    def _step(self) -> Cycle | None:
        candidate = self.next_frame - 1 - self.peak  # frame whose peak status is now known
        if candidate < 0:
            return None
        start = self.last_boundary if self.last_boundary is not None else self.provisional
        if candidate - start >= self.max_cycle:
            return self._close(candidate, forced=True)
        centre = len(self.scores) - 1 - self.peak
        value = self.scores[centre]
        if value < self.threshold:
            return None  # most frames: no need to look at the window
        window = list(self.scores)
        if (max(window[centre + 1:], default=-np.inf) > value
                or max(window[:centre], default=-np.inf) >= value):
            return None
        if self.last_boundary is not None and not self._far_enough(candidate, value):
            return None
        self.last_score = value
        return self._close(candidate, forced=False)

    def _far_enough(self, candidate: int, value: float) -> bool:
        """The gap rule, with one exception: the gap alone would keep the phase of whichever
        peak came first (an expiration onset taken while the period was unknown would be
        followed by every later one). So a peak inside the gap still counts if it scores
        ``rephase_ratio`` times the last boundary and lies one period (within a quarter)
        after the boundary before it: then the last one was the wrong phase."""
        c = self.config
        assert self.last_boundary is not None
        gap = candidate - self.last_boundary
        if gap < c.min_period_s * self.fps:
            return False
        period = self.period_frames  # read only here, at peaks: it is the costly part
        if gap >= c.gap_fraction * period:
            return True
        if value < c.rephase_ratio * self.last_score:
            return False
        return (self.before_last is None
                or abs(candidate - self.before_last - period) <= 0.25 * period)

    def finish(self, end_frame: int) -> list[Cycle]:
        """End of stream: close the open cycle at ``end_frame`` (forced) if it is long enough."""
        start = self.last_boundary
        if start is None or end_frame - start < self.config.min_period_s * self.fps:
            return []
        self.last_boundary = end_frame
        return [Cycle(start, end_frame, True)]

    def _close(self, boundary: int, forced: bool) -> Cycle | None:
        previous = self.last_boundary
        self.last_boundary, self.before_last = boundary, previous
        if forced:
            self.last_score = 0.0  # not a peak: any real one after min_period_s counts
        if previous is None:
            # The first boundary opens the first cycle; only a forced close emits the
            # stretch from the stream start (so a stream without breaths still yields cycles).
            return Cycle(self.provisional, boundary, True) if forced else None
        return Cycle(previous, boundary, forced)


# ---------------------------------------------------------------------------- the detector


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, the same operations in place of a fresh array."""
    z = np.negative(x)
    np.exp(z, out=z)
    z += 1.0
    return np.divide(1.0, z, out=z)


class BreathCycleDetector:
    """Push log-mel frames, get closed cycles back. Causal, fixed memory.

    Parameters
    ----------
    features : FeatureConfig
        The feature stream's configuration (frame rate, mel bands; must match the weights').
    config : DetectorConfig
        Peak-picking settings and the weights file.

    Raises
    ------
    DetectorWeightsError
        If the weights file is missing, corrupt or trained on other features.
    """

    def __init__(self, features: FeatureConfig | None = None,
                 config: DetectorConfig | None = None) -> None:
        self.features = features or FeatureConfig()
        self.config = c = config or DetectorConfig()
        self.fps = self.features.frames_per_second
        arrays, manifest = load_weights(c.weights or default_detector_path(), self.features)
        self.net = BoundaryNet(arrays, manifest)
        # What events and sessions name the detector by (its weights pinned by the hash).
        self.identity = {"name": str(manifest.get("name", "?")),
                         "version": str(manifest.get("version", "?")),
                         "hash": str(manifest["weights_sha256"])}
        self.normaliser = FrameNormaliser(self.features.n_mels, self.net.tau_frames)
        self.picker = BoundaryPicker(c, self.fps)
        centres = mel_band_centres_hz(self.features)
        self.band = (centres >= c.envelope_band_hz[0]) & (centres <= c.envelope_band_hz[1])
        self.env: deque[float] = deque(maxlen=round(c.history_s * self.fps))
        self.frames_pushed = 0  # since the last reset

    @property
    def decision_delay_s(self) -> float:
        """Longest time from a boundary's frame to the push that returns its cycle."""
        return (self.net.lookahead + self.picker.peak) / self.fps

    @property
    def period_frames(self) -> float:
        """Running breath period (:class:`PeriodTracker`), in frames."""
        return self.picker.period_frames

    def boundary_scores(self, frames: np.ndarray) -> np.ndarray:
        """Scores in [0, 1] of frames ``t - lookahead`` for the pushed frames ``t``."""
        return _sigmoid(self.net.push(self.normaliser.push(frames)))

    def push(self, frames: np.ndarray) -> list[Cycle]:
        """Consume new frames ``(n, n_mels)``; return the cycles they close."""
        return [cycle for cycle, _ in self.push_decided(frames)]

    def push_decided(self, frames: np.ndarray) -> list[tuple[Cycle, int]]:
        """:meth:`push`, each cycle with how many of ``frames`` had been read when it
        closed, so a caller pushing a long block can read other streaming state (the signal
        guard) as it was at that frame, as a frame-by-frame push would have."""
        if frames.shape[0] == 0:
            return []
        # Envelope for the level display (the detector itself reads the scores).
        # exp on a contiguous copy: numpy's vector exp runs on contiguous arrays only, and a
        # strided view would take the scalar one (other last bits).
        power = np.asarray(frames, dtype=np.float64)[:, self.band]
        np.exp(power, out=power)
        band = np.add.reduce(power, axis=1)
        band += 1e-12
        self.env.extend(np.log(band, out=band).tolist())
        scores = self.boundary_scores(frames)
        # The first `lookahead` scores refer to frames before the stream start.
        skip = max(0, self.net.lookahead - self.frames_pushed)
        self.frames_pushed += frames.shape[0]
        return [(cycle, skip + n) for cycle, n in self.picker.push_decided(scores[skip:])]

    def finish(self) -> list[Cycle]:
        """The stream has ended: the open cycle ends at the last frame (``forced``).

        Without this a recording's last cycle is lost: its closing boundary would need
        ``decision_delay_s`` of audio after the end.
        """
        return self.picker.finish(self.frames_pushed - 1)

    def reset(self) -> None:
        """Forget everything (after a gap in the audio: never stitch across it)."""
        self.normaliser.reset()
        self.net.reset()
        self.picker.reset()
        self.env.clear()
        self.frames_pushed = 0


def detect_cycles(frames: np.ndarray, features: FeatureConfig | None = None,
                  config: DetectorConfig | None = None) -> list[Cycle]:
    """All cycles of a whole recording's frames: the streaming detector run to the end,
    then :meth:`BreathCycleDetector.finish`."""
    detector = BreathCycleDetector(features, config)
    return detector.push(frames) + detector.finish()
