"""The official scores: ICBHI 2017 and SPRSound (BioCAS 2022) tasks 1-1, 1-2, 2-1, 2-2.

One implementation, used by training (validation score), the benchmark CLI and the
streaming evaluation.

- ICBHI: Sp = normal recall; Se = exact-class hits over all abnormal cycles;
  Score = (Se + Sp) / 2 over Normal / Crackle / Wheeze / Both.
- BioCAS: SP = correct Normal items / Normal items; SE = exact-class hits over all
  adventitious items (pooled); AS = (SE + SP) / 2; HS = 2·SE·SP / (SE + SP) (0 when both
  are 0); Score = (AS + HS) / 2. For the record tasks Poor Quality records count in neither
  SE nor SP, and any record predicted Poor Quality that is not one is simply wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from steth.edge.labels import EVENT_CLASSES, FOUR_CLASSES, POOR_QUALITY, RECORD_CLASSES

ADVENTITIOUS = "Adventitious"
TASK_LABELS: dict[str, tuple[str, ...]] = {
    "1-1": ("Normal", ADVENTITIOUS),
    "1-2": EVENT_CLASSES,
    "2-1": ("Normal", ADVENTITIOUS, POOR_QUALITY),
    "2-2": RECORD_CLASSES,
    "icbhi": FOUR_CLASSES,
}


@dataclass(frozen=True)
class Scores:
    se: float
    sp: float
    as_: float
    hs: float
    score: float
    n_normal: int
    n_abnormal: int

    def to_dict(self) -> dict:
        return asdict(self)


def _ratio(hits: int, total: int) -> float:
    return hits / total if total else 0.0


def biocas_scores(y_true: Sequence[str], y_pred: Sequence[str], *,
                  normal: str = "Normal", excluded: Sequence[str] = ()) -> Scores:
    """SE, SP, AS, HS and the BioCAS Score.

    Parameters
    ----------
    y_true, y_pred : sequences of class names
    normal : str
        The class that SP is computed on; every other non-excluded class is adventitious.
    excluded : sequence of str
        True classes counted in neither SE nor SP (Poor Quality for the record tasks).
    """
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    n_normal = n_abnormal = hit_normal = hit_abnormal = 0
    for true, pred in zip(y_true, y_pred, strict=True):
        if true in excluded:
            continue
        if true == normal:
            n_normal += 1
            hit_normal += pred == normal
        else:
            n_abnormal += 1
            hit_abnormal += pred == true
    se, sp = _ratio(hit_abnormal, n_abnormal), _ratio(hit_normal, n_normal)
    as_ = (se + sp) / 2.0
    hs = 2.0 * se * sp / (se + sp) if se + sp > 0 else 0.0
    return Scores(se, sp, as_, hs, (as_ + hs) / 2.0, n_normal, n_abnormal)


def icbhi_scores(y_true: Sequence[str], y_pred: Sequence[str]) -> Scores:
    """ICBHI Se, Sp and Score = (Se + Sp) / 2 over the 4 classes (HS reported for context)."""
    s = biocas_scores(y_true, y_pred)
    return Scores(s.se, s.sp, s.as_, s.hs, s.as_, s.n_normal, s.n_abnormal)


def to_task_label(task: str, label: str) -> str:
    """Map a 7-class event or 5-class record label into a task's label space."""
    if task == "1-1":
        return "Normal" if label == "Normal" else ADVENTITIOUS
    if task == "2-1":
        return label if label in ("Normal", POOR_QUALITY) else ADVENTITIOUS
    if label not in TASK_LABELS[task]:
        raise ValueError(f"{label!r} is not a label of task {task}")
    return label


def task_scores(task: str, y_true: Sequence[str], y_pred: Sequence[str]) -> Scores:
    """Score one SPRSound task (or "icbhi") from labels in the task's own space."""
    if task == "icbhi":
        return icbhi_scores(y_true, y_pred)
    excluded = (POOR_QUALITY,) if task in ("2-1", "2-2") else ()
    return biocas_scores(y_true, y_pred, excluded=excluded)


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str],
                     labels: Sequence[str]) -> np.ndarray:
    """Counts with true classes on rows and predictions on columns, in ``labels`` order."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for true, pred in zip(y_true, y_pred, strict=True):
        matrix[index[true], index[pred]] += 1
    return matrix


def per_class_recall(y_true: Sequence[str], y_pred: Sequence[str],
                     labels: Sequence[str]) -> dict[str, float | None]:
    """Recall per true class; None for a class with no items."""
    matrix = confusion_matrix(y_true, y_pred, labels)
    totals = matrix.sum(axis=1)
    return {label: (float(matrix[i, i] / totals[i]) if totals[i] else None)
            for i, label in enumerate(labels)}


def detection_recall_precision(y_true: Sequence[str], y_pred: Sequence[str],
                               target: str) -> tuple[float | None, float | None]:
    """Recall and precision of detecting one class (Poor Quality), None when undefined."""
    tp = sum(t == target and p == target for t, p in zip(y_true, y_pred, strict=True))
    n_true = sum(t == target for t in y_true)
    n_pred = sum(p == target for p in y_pred)
    return (tp / n_true if n_true else None), (tp / n_pred if n_pred else None)


def patient_bootstrap_ci(metric: Callable[[list[str], list[str]], float],
                         y_true: Sequence[str], y_pred: Sequence[str], patients: Sequence[str],
                         *, n_boot: int = 1000, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``metric`` when whole patients are resampled with replacement.

    Items of one patient are correlated (same chest, same device, same day), so resampling
    items would understate the interval.
    """
    by_patient: dict[str, list[int]] = {}
    for i, patient in enumerate(patients):
        by_patient.setdefault(patient, []).append(i)
    groups = list(by_patient.values())
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    for b in range(n_boot):
        chosen = rng.integers(0, len(groups), size=len(groups))
        idx = [i for g in chosen for i in groups[g]]
        values[b] = metric([y_true[i] for i in idx], [y_pred[i] for i in idx])
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def all_normal_baseline(task: str, y_true: Sequence[str]) -> Scores:
    """The trivial model that calls everything Normal (ICBHI 0.50, BioCAS 0.25)."""
    return task_scores(task, y_true, ["Normal"] * len(y_true))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE of binary probabilities: bin-weighted |accuracy - confidence| over equal-width bins.

    Confidence is the probability of the positive class; accuracy is the positive rate in
    the bin (reliability-diagram form, suited to one sigmoid output).
    """
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)
    if probs.size == 0:
        return 0.0
    bins = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(labels[in_bin].mean() - probs[in_bin].mean())
    return float(ece)
