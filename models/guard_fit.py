"""Fit the "unfamiliar signal" guard (edge/guard.py) on a run's own training data.

The guard's mean and covariance come from the spectrum shapes of the training recordings;
its threshold is the distance exceeded by at most ``fire_rate`` of the SPRSound validation
recordings, each measured over the whole recording (what a session's saved flag ends on).
Nothing of a test set is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from steth.edge.features import FeatureConfig
from steth.edge.guard import GuardModel, recording_shape
from steth.models.datasets import Recording
from steth.models.feature_cache import cached_features

DEFAULT_FIRE_RATE = 0.05
DEFAULT_MIN_SECONDS = 5.0
SHRINKAGE = 0.2


def shapes_of(recordings: Sequence[Recording], config: FeatureConfig) -> np.ndarray:
    """Spectrum shapes ``(n, M)`` of whole recordings, from their unnormalised log-mel."""
    raw = config.unnormalised
    return np.stack([recording_shape(cached_features(r, raw)) for r in recordings])


def shrunk_precision(shapes: np.ndarray, shrinkage: float = SHRINKAGE) -> np.ndarray:
    """Inverse of the sample covariance shrunk toward its mean variance (well conditioned)."""
    cov = np.cov(shapes, rowvar=False)
    target = np.eye(cov.shape[0]) * np.trace(cov) / cov.shape[0]
    return np.linalg.inv((1.0 - shrinkage) * cov + shrinkage * target)


def fit_guard(train: Sequence[Recording], validation: Sequence[Recording],
              config: FeatureConfig, fire_rate: float = DEFAULT_FIRE_RATE,
              min_seconds: float = DEFAULT_MIN_SECONDS) -> tuple[GuardModel, dict]:
    """The guard fitted on ``train``, its threshold set on ``validation``'s SPRSound part.

    Returns the guard and a record of the fit (counts, the validation firing rate).
    """
    train_shapes = shapes_of(train, config)
    spr_val = [r for r in validation if r.dataset == "sprsound"]
    if len(train_shapes) < 10 or not spr_val:
        raise ValueError("the guard needs at least 10 training and some SPRSound validation "
                         "recordings")
    mean = train_shapes.mean(axis=0)
    precision = shrunk_precision(train_shapes)
    provisional = GuardModel(mean, precision, 1.0, min_seconds)
    val_distances = np.array([provisional.distance(s) for s in shapes_of(spr_val, config)])
    # The (k+1)-th largest distance: exactly k = floor(rate * n) recordings lie above it.
    k = int(np.floor(fire_rate * val_distances.size))
    threshold = float(np.sort(val_distances)[::-1][min(k, val_distances.size - 1)])
    guard = GuardModel(mean, precision, threshold, min_seconds)
    fired = float(np.mean(val_distances > threshold))
    return guard, {"training_recordings": len(train_shapes),
                   "sprsound_validation_recordings": len(spr_val),
                   "validation_fire_rate": fired, "target_fire_rate": fire_rate}


def firing(guard: GuardModel, recordings: Sequence[Recording], config: FeatureConfig
           ) -> dict[str, bool]:
    """Whether the guard flags each recording (over the whole recording), by key."""
    shapes = shapes_of(recordings, config)
    return {r.key: guard.distance(s) > guard.threshold
            for r, s in zip(recordings, shapes, strict=True)}
