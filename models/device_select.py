"""Choose a run's epoch and fit its thresholds on stethoscopes its weights never heard.

A recipe with ``icbhi_role = "select"`` learns its weights from SPRSound alone (one
stethoscope) and keeps every epoch's weights. The ICBHI recordings it may use (in a
leave-one-device-out fold: the held-in stethoscopes' patients) are then stand-ins for an
unseen stethoscope: the epoch, the temperatures and the crackle/wheeze thresholds are the
ones that do best on the mean of two Scores — SPRSound validation (the mean of tasks 1-1 and
1-2) and the ICBHI Score of those recordings' cycles. With no ICBHI recordings to select on
(the SPRSound-only fold) the choice falls back to SPRSound validation alone, as a plain run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from steth.edge.infer import CyclePrediction
from steth.edge.labels import four_class_from_flags
from steth.models.data import IGNORE, SampleSet, build_sample_set
from steth.models.datasets import Recording
from steth.models.metrics import icbhi_scores
from steth.models.train import (
    TrainConfig,
    epoch_checkpoint_name,
    event_predictions,
    event_scores,
    predict_logits,
    run_dir,
    training_recordings,
)
from steth.models.zoo import build_net

THRESHOLD_GRID = tuple(float(t) for t in np.round(np.arange(0.2, 0.81, 0.05), 2))
SELECTION_FILE = "selection.json"


@dataclass(frozen=True)
class Selection:
    """The chosen epoch and calibration, with the Scores that chose them."""

    epoch: int
    temperatures: dict[str, float]
    thresholds: dict[str, float]
    sprsound_validation: dict[str, float]  # tasks 1-1, 1-2 and their mean
    icbhi_selection_score: float | None  # None: no ICBHI recordings to select on
    icbhi_selection_cycles: int
    icbhi_selection_patients: int
    objective: float

    def to_dict(self) -> dict:
        return asdict(self)


def icbhi_truth(samples: Sequence) -> list[str]:
    """The four-class label of each ICBHI cycle sample."""
    return [four_class_from_flags(bool(s.crackle), bool(s.wheeze)) for s in samples]


def icbhi_score(truth: list[str], preds: list[CyclePrediction],
                thresholds: dict[str, float]) -> float:
    """ICBHI Score of cycle predictions under ``thresholds``."""
    return icbhi_scores(truth, [p.finding(thresholds) for p in preds]).score


def objective(sprsound_mean: float, icbhi: float | None) -> float:
    """What the choice maximises: both Scores weigh the same; SPRSound alone without ICBHI."""
    return sprsound_mean if icbhi is None else (sprsound_mean + icbhi) / 2


def best_calibration(spr_samples: list, spr_logits: dict[str, np.ndarray],
                     icbhi_samples: list, icbhi_logits: dict[str, np.ndarray] | None,
                     temperatures: dict[str, float]
                     ) -> tuple[float, dict[str, float], dict[str, float], float | None]:
    """Thresholds on the grid maximising :func:`objective`, and the Scores they reach."""
    spr_preds = event_predictions(spr_logits, {}, temperatures)
    icbhi_preds = (event_predictions(icbhi_logits, {}, temperatures)
                   if icbhi_logits is not None and icbhi_samples else [])
    truth = icbhi_truth(icbhi_samples)
    best: tuple[float, dict[str, float], dict[str, float], float | None] = (
        -1.0, {}, {}, None)
    for tc in THRESHOLD_GRID:
        for tw in THRESHOLD_GRID:
            th = {"crackle": tc, "wheeze": tw, "quality": 0.5}
            spr = event_scores(spr_samples, spr_preds, th)
            icbhi = icbhi_score(truth, icbhi_preds, th) if icbhi_preds else None
            value = objective(spr["mean"], icbhi)
            if value > best[0]:
                best = (value, th, spr, icbhi)
    return best


def epoch_logits(cfg: TrainConfig, weights: Path, sets: Sequence[SampleSet]
                 ) -> list[dict[str, np.ndarray]]:
    """One checkpoint's logits on each sample set."""
    model = build_net(cfg.arch, cfg.net)
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    return [predict_logits(model, s, s.samples, cfg.window) for s in sets]


def kept_epochs(run: Path) -> list[int]:
    """Epochs whose weights the run kept (1-based), in order."""
    history = json.loads((run / "history.json").read_text())
    epochs = [h["epoch"] for h in history if (run / epoch_checkpoint_name(h["epoch"])).is_file()]
    if not epochs:
        raise FileNotFoundError(f"{run} kept no epoch weights (train with keep_epochs = true)")
    return epochs


def select(cfg: TrainConfig, data_root: Path, selection_recordings: Sequence[Recording],
           fit_temperatures) -> Selection:
    """Score every kept epoch on SPRSound validation and ``selection_recordings``.

    ``fit_temperatures(logits, samples)`` is the export's temperature fit, applied to the
    SPRSound validation logits (and the ICBHI ones, when there are any).
    """
    run = run_dir(cfg)
    feat = cfg.feature_config()
    _, val_recordings = training_recordings(cfg, data_root)
    spr = build_sample_set(val_recordings, feat, cfg.window)
    icbhi = build_sample_set(list(selection_recordings), feat, cfg.window)
    icbhi_samples = [s for s in icbhi.samples if s.crackle != IGNORE]
    best: Selection | None = None
    for epoch in kept_epochs(run):
        sets = [spr, icbhi] if icbhi_samples else [spr]
        logits = epoch_logits(cfg, run / epoch_checkpoint_name(epoch), sets)
        icbhi_logits = None
        temps = fit_temperatures(logits[0], spr.samples)
        if icbhi_samples:
            known = [i for i, s in enumerate(icbhi.samples) if s.crackle != IGNORE]
            icbhi_logits = {k: v[known] for k, v in logits[1].items()}
            both = {k: np.concatenate([logits[0][k], icbhi_logits[k]]) for k in logits[0]}
            temps = fit_temperatures(both, spr.samples + icbhi_samples)
        value, th, spr_scores, icbhi_value = best_calibration(
            spr.samples, logits[0], icbhi_samples, icbhi_logits, temps)
        if best is None or value > best.objective:
            best = Selection(epoch, temps, th, spr_scores, icbhi_value, len(icbhi_samples),
                             len({r.patient for r in selection_recordings}), value)
        print(f"epoch {epoch}: objective {value:.3f} SPRSound {spr_scores['mean']:.3f} "
              f"ICBHI {icbhi_value if icbhi_value is None else round(icbhi_value, 3)} "
              f"thresholds {th['crackle']}/{th['wheeze']}", flush=True)
    assert best is not None
    return best
