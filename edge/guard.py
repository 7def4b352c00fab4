"""The "unfamiliar signal" guard: is this stream's long-term spectrum like the training data's?

A stethoscope the model never heard, a different room or a different body shows first in the
long-term shape of the spectrum: the per-band mean of the log-mel *before* channel
normalisation, with its overall level removed (a louder or quieter recording is not
unfamiliar). :func:`spectrum_shape` computes it; the guard measures its Mahalanobis distance
from the training recordings' shapes (mean and shrunk covariance, fitted by
``steth.models.guard_fit`` on a fold's training data only and stored in the model manifest)
and flags the stream when the distance passes a threshold set on validation recordings.

The flag says the findings are less reliable; it never means Poor Quality, and findings stay
visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class GuardError(ValueError):
    """A manifest's guard section is malformed."""


def spectrum_shape(logmel_sum: np.ndarray, n_frames: int) -> np.ndarray:
    """Long-term per-band mean log-mel minus its mean over bands, from a running sum."""
    mean = np.asarray(logmel_sum, dtype=np.float64) / max(1, n_frames)
    return mean - mean.mean()


def recording_shape(logmel: np.ndarray) -> np.ndarray:
    """:func:`spectrum_shape` of a whole recording's unnormalised log-mel ``(T, M)``."""
    frames = np.asarray(logmel, dtype=np.float64)
    return spectrum_shape(frames.sum(axis=0), frames.shape[0])


@dataclass(frozen=True)
class GuardModel:
    """The training data's spectrum shapes: their mean and the inverse shrunk covariance."""

    mean: np.ndarray  # (M,)
    precision: np.ndarray  # (M, M)
    threshold: float  # distance above which a stream is unfamiliar
    min_seconds: float  # audio needed before the guard decides

    def distance(self, shape: np.ndarray) -> float:
        """Mahalanobis distance of a spectrum shape from the training shapes."""
        d = np.asarray(shape, dtype=np.float64) - self.mean
        return float(np.sqrt(max(0.0, d @ self.precision @ d)))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "precision": self.precision.tolist(),
                "threshold": self.threshold, "min_seconds": self.min_seconds}

    @classmethod
    def from_dict(cls, data: Any, n_bands: int) -> GuardModel:
        """Read a manifest's ``guard`` section.

        Raises
        ------
        GuardError
            If a field is missing or has the wrong shape.
        """
        try:
            mean = np.asarray(data["mean"], dtype=np.float64)
            precision = np.asarray(data["precision"], dtype=np.float64)
            threshold = float(data["threshold"])
            min_seconds = float(data["min_seconds"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GuardError(f"guard section unreadable ({exc.__class__.__name__}: {exc})"
                             ) from None
        if mean.shape != (n_bands,) or precision.shape != (n_bands, n_bands):
            raise GuardError(f"guard fitted on {mean.shape} bands, the features have {n_bands}")
        if not (threshold > 0 and min_seconds >= 0):
            raise GuardError("guard threshold must be positive")
        return cls(mean, precision, threshold, min_seconds)


class SignalGuard:
    """The live guard: accumulates the stream's log-mel and says whether it is unfamiliar.

    ``state`` is ``None`` until ``min_seconds`` of audio have been seen since the start or the
    last :meth:`reset`, then ``True`` (unfamiliar) or ``False``.
    """

    def __init__(self, model: GuardModel, frames_per_second: float) -> None:
        self.model = model
        self.min_frames = round(model.min_seconds * frames_per_second)
        self.total = np.zeros(model.mean.shape[0])
        self.count = 0

    def reset(self) -> None:
        self.total[:] = 0.0
        self.count = 0

    def push(self, logmel: np.ndarray) -> None:
        frames = np.asarray(logmel, dtype=np.float64)
        if frames.size:
            self.total += np.add.reduce(frames, axis=0)
            self.count += frames.shape[0]

    @property
    def distance(self) -> float | None:
        if self.count < max(1, self.min_frames):
            return None
        return self.model.distance(spectrum_shape(self.total, self.count))

    @property
    def state(self) -> bool | None:
        distance = self.distance
        return None if distance is None else distance > self.model.threshold
