"""Choose a run's epoch and fit its thresholds on stethoscopes its weights never heard.

A recipe with ``icbhi_role = "select"`` learns its weights from SPRSound alone (one
stethoscope) and keeps every epoch's weights. The ICBHI recordings it may use (in a
leave-one-device-out fold: the held-in stethoscopes' patients) are then stand-ins for an
unseen stethoscope: the epoch, the temperatures and the crackle/wheeze thresholds are the
ones that do best on the mean of two Scores — SPRSound validation (the mean of tasks 1-1 and
1-2) and the ICBHI Score of those recordings' cycles. With no ICBHI recordings to select on
(the SPRSound-only fold) the choice falls back to SPRSound validation alone, as a plain run.

Besides each epoch, the candidates include uniform weight averages of the last few epochs
(stochastic weight averaging, with the batch-norm statistics re-estimated on training
batches): averages along the training path are known to shift less under a change of domain
than any one epoch's weights.
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
    make_batch,
    predict_logits,
    run_dir,
    sampling_weights,
    training_recordings,
)
from steth.models.zoo import build_net

# The crackle/wheeze threshold grid of every calibration (steth-export's too).
THRESHOLD_GRID = tuple(float(t) for t in np.round(np.arange(0.2, 0.81, 0.05), 2))
SELECTION_FILE = "selection.json"
BN_REFRESH_BATCHES = 50


@dataclass(frozen=True)
class Candidate:
    """Weights to try: one epoch's, or the average of several epochs'."""

    epochs: tuple[int, ...]

    @property
    def label(self) -> str:
        if len(self.epochs) == 1:
            return f"epoch {self.epochs[0]}"
        return f"mean of epochs {self.epochs[0]}-{self.epochs[-1]}"


def candidates(epochs: Sequence[int], max_average: int) -> list[Candidate]:
    """Every kept epoch, then averages of the last 2 ... ``max_average`` of them."""
    found = [Candidate((e,)) for e in epochs]
    found += [Candidate(tuple(epochs[-m:])) for m in range(2, max_average + 1)
              if m <= len(epochs)]
    return found


@dataclass(frozen=True)
class Selection:
    """The chosen weights and calibration, with the Scores that chose them."""

    epochs: tuple[int, ...]  # one epoch, or the epochs whose weights were averaged
    label: str
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


def averaged_state(paths: Sequence[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of several state dicts (integer buffers from the last one)."""
    states = [torch.load(p, weights_only=True) for p in paths]
    out = {}
    for key, last in states[-1].items():
        out[key] = (torch.stack([s[key] for s in states]).mean(dim=0)
                    if last.is_floating_point() else last.clone())
    return out


@torch.no_grad()
def refresh_batchnorm(model: torch.nn.Module, cfg: TrainConfig, train_set: SampleSet,
                      n_batches: int = BN_REFRESH_BATCHES) -> None:
    """Re-estimate batch-norm statistics on training batches as training draws them (an
    average of weights is not an average of the activations the old statistics describe)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative mean over the refresh batches
    rng = np.random.default_rng([cfg.seed, 7919])
    weights = sampling_weights(train_set.samples)
    model.train()
    for _ in range(n_batches):
        picks = rng.choice(len(train_set.samples), size=cfg.batch_size, p=weights)
        batch = make_batch([train_set.samples[i] for i in picks], train_set, cfg, rng, True)
        model(batch["x"])
    model.eval()


def candidate_model(cfg: TrainConfig, run: Path, candidate: Candidate,
                    train_set: SampleSet | None) -> torch.nn.Module:
    """The candidate's network in eval mode (averages get fresh batch-norm statistics)."""
    model = build_net(cfg.arch, cfg.net)
    paths = [run / epoch_checkpoint_name(e) for e in candidate.epochs]
    if len(paths) == 1:
        model.load_state_dict(torch.load(paths[0], weights_only=True))
    else:
        model.load_state_dict(averaged_state(paths))
        assert train_set is not None
        refresh_batchnorm(model, cfg, train_set)
    model.eval()
    return model


def kept_epochs(run: Path) -> list[int]:
    """Epochs whose weights the run kept (1-based), in order."""
    history = json.loads((run / "history.json").read_text())
    epochs = [h["epoch"] for h in history if (run / epoch_checkpoint_name(h["epoch"])).is_file()]
    if not epochs:
        raise FileNotFoundError(f"{run} kept no epoch weights (train with keep_epochs = true)")
    return epochs


def select(cfg: TrainConfig, data_root: Path, selection_recordings: Sequence[Recording],
           fit_temperatures) -> tuple[Selection, dict[str, torch.Tensor]]:
    """Score every candidate on SPRSound validation and ``selection_recordings``; the best
    one's choice and weights.

    ``fit_temperatures(logits, samples)`` is the export's temperature fit, applied to the
    SPRSound validation logits and the ICBHI ones together (SPRSound alone without ICBHI).
    """
    run = run_dir(cfg)
    feat = cfg.feature_config()
    train_recordings, val_recordings = training_recordings(cfg, data_root)
    spr = build_sample_set(val_recordings, feat, cfg.window)
    icbhi = build_sample_set(list(selection_recordings), feat, cfg.window)
    known = [i for i, s in enumerate(icbhi.samples) if s.crackle != IGNORE]
    icbhi_samples = [icbhi.samples[i] for i in known]
    tried = candidates(kept_epochs(run), cfg.select_average_max)
    train_set = (build_sample_set(train_recordings, feat, cfg.window,
                                  keep_raw=bool(cfg.device_augment))
                 if any(len(c.epochs) > 1 for c in tried) else None)
    best: tuple[Selection, dict[str, torch.Tensor]] | None = None
    for candidate in tried:
        model = candidate_model(cfg, run, candidate, train_set)
        spr_logits = predict_logits(model, spr, spr.samples, cfg.window)
        icbhi_logits = None
        if icbhi_samples:
            icbhi_logits = predict_logits(model, icbhi, icbhi_samples, cfg.window)
            both = {k: np.concatenate([spr_logits[k], icbhi_logits[k]]) for k in spr_logits}
            temps = fit_temperatures(both, spr.samples + icbhi_samples)
        else:
            temps = fit_temperatures(spr_logits, spr.samples)
        value, th, spr_scores, icbhi_value = best_calibration(
            spr.samples, spr_logits, icbhi_samples, icbhi_logits, temps)
        if best is None or value > best[0].objective:
            best = (Selection(candidate.epochs, candidate.label, temps, th, spr_scores,
                              icbhi_value, len(icbhi_samples),
                              len({r.patient for r in selection_recordings}), value),
                    {k: v.clone() for k, v in model.state_dict().items()})
        shown = "-" if icbhi_value is None else f"{icbhi_value:.3f}"
        print(f"{candidate.label}: objective {value:.3f} SPRSound {spr_scores['mean']:.3f} "
              f"ICBHI {shown} thresholds {th['crackle']}/{th['wheeze']}", flush=True)
    assert best is not None
    return best
