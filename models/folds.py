"""Leave-one-device-out folds over the ICBHI recordings (SPRSound is one device throughout).

A fold holds out one stethoscope: its training data are SPRSound train plus the ICBHI
recordings of every patient who never used the held-out device. Patients are dropped whole,
so a patient recorded with two devices (226 in the 43 recordings here) trains in no fold
that scores one of them. The ``"*"`` fold holds out all of ICBHI: trained on SPRSound alone,
scored on every ICBHI recording.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from steth.models.datasets import Recording

ALL_ICBHI = "*"


@dataclass(frozen=True)
class Fold:
    """One held-out device (or ``"*"``): who trains and what is scored."""

    held_out: str
    train: tuple[Recording, ...]  # ICBHI recordings the fold may train on
    test: tuple[Recording, ...]  # the held-out device's ICBHI recordings

    @property
    def name(self) -> str:
        return fold_name(self.held_out)


def icbhi_use(config: dict) -> str:
    """How a recipe (a manifest's ``training.config``) used the ICBHI training recordings:
    ``"weights"`` (trained on them), ``"choices"`` (they chose the checkpoint and
    calibration only) or ``"none"``."""
    if not config.get("use_icbhi", True) or config.get("hold_out_device", "") == ALL_ICBHI:
        return "none"
    return "choices" if config.get("icbhi_role", "train") == "select" else "weights"


def fold_name(held_out: str) -> str:
    """A folder-safe name: the device, or ``all-icbhi`` for the SPRSound-only fold."""
    return "all-icbhi" if held_out == ALL_ICBHI else re.sub(r"[^A-Za-z0-9_-]", "_", held_out)


def icbhi_devices(recordings: Sequence[Recording]) -> list[str]:
    """The stethoscopes present, sorted."""
    return sorted({r.device for r in recordings if r.device})


def held_out_patients(recordings: Sequence[Recording], held_out: str) -> set[str]:
    """Patients with any recording under the held-out device (every patient for ``"*"``)."""
    return {r.patient for r in recordings if held_out == ALL_ICBHI or r.device == held_out}


def fold_training_recordings(recordings: Sequence[Recording], held_out: str
                             ) -> list[Recording]:
    """The ICBHI recordings a fold trains on (all of them when ``held_out`` is empty)."""
    if not held_out:
        return list(recordings)
    dropped = held_out_patients(recordings, held_out)
    return [r for r in recordings if r.patient not in dropped]


def build_folds(recordings: Sequence[Recording]) -> list[Fold]:
    """One fold per device present, then the SPRSound-only fold scored on all of ICBHI."""
    folds = []
    for device in [*icbhi_devices(recordings), ALL_ICBHI]:
        test = tuple(r for r in recordings if device == ALL_ICBHI or r.device == device)
        folds.append(Fold(device, tuple(fold_training_recordings(recordings, device)), test))
    return folds
