"""Training samples: cycles/events cut from cached whole-recording features, and splits.

A sample is a frame range of one recording with its labels. Poor Quality records have no
events, so they contribute quality-only samples tiled over the recording.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steth.edge.features import FeatureConfig, frame_range
from steth.edge.labels import EVENT_CLASSES, POOR_QUALITY
from steth.models.datasets import ICBHI_SHARED_PATIENTS, Recording
from steth.models.feature_cache import FrontEnd, cached_features

IGNORE = -1


@dataclass(frozen=True)
class Sample:
    rec_index: int
    first: int  # frame range [first, last)
    last: int
    crackle: int  # 0/1, or IGNORE
    wheeze: int
    subtype: int  # index into EVENT_CLASSES, or IGNORE (ICBHI has no subtypes)
    poor: int  # 0/1


def patient_key(rec: Recording) -> str:
    return f"{rec.dataset}:{rec.patient}"


def validation_patients(recordings: Sequence[Recording], fraction: float,
                        seed: int) -> set[str]:
    """A patient-disjoint validation set: a stable hash of (seed, patient) picks patients."""
    chosen = set()
    for key in sorted({patient_key(r) for r in recordings}):
        digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
        if int.from_bytes(digest[:4], "big") / 2**32 < fraction:
            chosen.add(key)
    return chosen


def split_train_validation(recordings: Sequence[Recording], fraction: float = 0.15,
                           seed: int = 0) -> tuple[list[Recording], list[Recording]]:
    """Patient-disjoint train/validation split of the official training data.

    ICBHI patients 156 and 218 sit in both official halves; they are kept in training so
    the validation set never holds an official-test patient.
    """
    val_keys = validation_patients(recordings, fraction, seed)
    val_keys -= {f"icbhi:{p}" for p in ICBHI_SHARED_PATIENTS}
    train = [r for r in recordings if patient_key(r) not in val_keys]
    val = [r for r in recordings if patient_key(r) in val_keys]
    return train, val


def out_of_fold_groups(recordings: Sequence[Recording], k: int, seed: int = 0) -> list[int]:
    """A group in 0..k-1 per recording, every recording of a patient in one group, so a
    model trained without group g gives the recordings of g out-of-fold predictions."""
    patients = sorted({patient_key(r) for r in recordings})
    order = np.random.default_rng(seed).permutation(len(patients))
    group_of = {patients[i]: n % k for n, i in enumerate(order)}
    return [group_of[patient_key(r)] for r in recordings]


def tile_ranges(n_frames: int, window: int) -> list[tuple[int, int]]:
    """Half-overlapping windows over a whole recording (used for record-level quality)."""
    if n_frames <= window:
        return [(0, max(n_frames, 1))]
    hop = window // 2
    return [(s, s + window) for s in range(0, n_frames - window + 1, hop)]


def samples_for(rec_index: int, rec: Recording, n_frames: int, config: FrontEnd,
                window: int) -> list[Sample]:
    if rec.record_label == POOR_QUALITY:
        return [Sample(rec_index, a, b, IGNORE, IGNORE, IGNORE, 1)
                for a, b in tile_ranges(n_frames, window)]
    samples = []
    for event in rec.events:
        first, last = frame_range(event.start, event.end, config)
        last = min(last, n_frames)
        if last - first < 2:
            continue  # an event past the end of the audio (annotation slip)
        subtype = EVENT_CLASSES.index(event.label) if rec.dataset == "sprsound" else IGNORE
        samples.append(Sample(rec_index, first, last, int(event.crackle), int(event.wheeze),
                              subtype, 0))
    return samples


@dataclass
class SampleSet:
    recordings: list[Recording]
    features: list[np.ndarray]
    samples: list[Sample]
    # Log-mel before channel normalisation, kept when training re-runs the front end's
    # second half on a simulated device (models/device_augment.py).
    raw: list[np.ndarray] | None = None

    def frames(self, sample: Sample) -> np.ndarray:
        return self.features[sample.rec_index][sample.first:sample.last]


def build_sample_set(recordings: Sequence[Recording], config: FrontEnd, window: int,
                     cache_root: Path | None = None, keep_raw: bool = False) -> SampleSet:
    features = [cached_features(r, config, cache_root) for r in recordings]
    samples: list[Sample] = []
    for i, (rec, frames) in enumerate(zip(recordings, features, strict=True)):
        samples.extend(samples_for(i, rec, frames.shape[0], config, window))
    raw = None
    if keep_raw:
        if not isinstance(config, FeatureConfig):
            raise ValueError("device augmentation needs the log-mel front end")
        raw = [cached_features(r, config.unnormalised, cache_root) for r in recordings]
    return SampleSet(list(recordings), features, samples, raw)
