"""Fit the record verdict on validation recordings.

The per-cycle thresholds are tuned for the event tasks; a record verdict pools many cycles,
and "one flagged window makes the record abnormal" flags too many Normal records. The
verdict (:class:`edge.labels.VerdictRule`) is therefore fitted separately, on the
patient-disjoint validation split of the SPRSound training data, to maximise the mean of the
record tasks 2-1 and 2-2 — never on a test set. It takes one of two forms: the counting rule
(a grid search, :func:`fit_verdict_rule`) or the learned verdict (logistic scores over the
record's cycles and their likelihoods, :func:`fit_learned_verdict`); :func:`choose_verdict`
cross-validates both over the validation patients and keeps the better.

``steth-export`` fits it on what the bedside counts: the cycles the streaming pipeline
detects in the validation records
(:func:`steth.models.stream_eval.fit_rule_on_detected_validation`).
The tiled-window fit (:func:`fit_rule_on_validation`, windows tiled over each recording as
the benchmark forms record verdicts) remains for scoring training runs without streaming.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

from steth.edge.infer import CycleModel
from steth.edge.labels import (
    POOR_QUALITY,
    CycleFinding,
    LearnedVerdict,
    VerdictRule,
    poor_features,
    presence_features,
    record_verdict,
)
from steth.edge.manifest import load_manifest, manifest_path_for, write_manifest
from steth.models.data import split_train_validation, tile_ranges
from steth.models.datasets import DataError, Recording, load_sprsound
from steth.models.feature_cache import FrontEnd, cached_features
from steth.models.metrics import task_scores, to_task_label

MIN_WINDOW_FRAMES = 4


def window_findings(model: CycleModel | Any, frames: np.ndarray) -> list[CycleFinding]:
    """Findings of half-overlapping model windows tiled over a whole recording.

    This is how the benchmark forms record verdicts without annotated boundaries.
    """
    findings = []
    for first, last in tile_ranges(frames.shape[0], model.window):
        if last - first < MIN_WINDOW_FRAMES:
            continue
        p = model.predict_cycle(frames[first:last])
        crackle, wheeze = p.flags(model.thresholds)
        findings.append(CycleFinding(crackle, wheeze, p.poor_quality(model.thresholds),
                                     p.p_crackle, p.p_wheeze))
    return findings


def rule_grid() -> Iterator[VerdictRule]:
    """Candidate rules, simplest first (so ties keep the simpler rule)."""
    for min_fraction, min_cycles, poor, min_good in itertools.product(
            (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6), (1, 2, 3, 4, 5, 6), (0.5, 0.3, 0.7, 0.9, 1.0),
            (1, 2)):
        yield VerdictRule(min_cycles=min_cycles, min_fraction=min_fraction,
                          poor_quality_fraction=poor, min_good_cycles=min_good)


def record_task_scores(findings: Sequence[Sequence[CycleFinding]], labels: Sequence[str],
                       rule: VerdictRule) -> dict[str, float]:
    """BioCAS Scores of tasks 2-1 and 2-2 (and their mean) for one rule."""
    return verdict_scores(labels, [record_verdict(f, rule).label for f in findings])


def fit_verdict_rule(findings: Sequence[Sequence[CycleFinding]],
                     labels: Sequence[str]) -> tuple[VerdictRule, dict[str, float]]:
    """The grid rule with the best validation mean of tasks 2-1 and 2-2.

    Parameters
    ----------
    findings : per record, the window findings from :func:`window_findings`.
    labels : per record, its annotated record class.
    """
    if len(findings) != len(labels) or not labels:
        raise ValueError("need one findings list per labelled validation record")
    best_rule, best = VerdictRule(), {"mean": -1.0}
    for rule in rule_grid():
        scores = record_task_scores(findings, labels, rule)
        if scores["mean"] > best["mean"] + 1e-12:
            best_rule, best = rule, scores
    return best_rule, best


# ------------------------------------------------------------------ learned record verdict

LEARNED_L2 = 1.0  # ridge strength on standardised features: few records, few features
THRESHOLD_QUANTILES = np.linspace(0.02, 0.98, 25)
CV_FOLDS = 5


def _part_targets(labels: Sequence[str]) -> dict[str, np.ndarray]:
    labels_arr = np.asarray(labels)
    return {"crackle": np.isin(labels_arr, ("DAS", "CAS & DAS")),
            "wheeze": np.isin(labels_arr, ("CAS", "CAS & DAS")),
            "poor": labels_arr == POOR_QUALITY}


def record_feature_table(findings: Sequence[Sequence[CycleFinding]]) -> dict[str, np.ndarray]:
    """Per record, the learned verdict's features (:mod:`edge.labels`), one row each."""
    good = [[c for c in f if not c.poor_quality] for f in findings]
    return {"crackle": np.array([presence_features(g, "crackle") for g in good]),
            "wheeze": np.array([presence_features(g, "wheeze") for g in good]),
            "poor": np.array([poor_features(list(f)) for f in findings]),
            "has_good": np.array([bool(g) for g in good])}


def logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = LEARNED_L2) -> np.ndarray:
    """Bias and weights, on the raw feature scale, of an L2-regularised logistic regression.

    Features are standardised for the fit (so one penalty suits them all) and the result
    is mapped back. With one class only there is nothing to learn: a constant score.
    """
    if y.all() or not y.any():
        return np.r_[8.0 if y.all() else -8.0, np.zeros(x.shape[1])]
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    target = y.astype(float)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        score = theta[0] + z @ theta[1:]
        residual = 1.0 / (1.0 + np.exp(-score)) - target
        value = np.mean(np.logaddexp(0.0, score) - target * score)
        value += l2 / (2 * len(target)) * float(theta[1:] @ theta[1:])
        grad = np.r_[residual.mean(), z.T @ residual / len(target)
                     + l2 / len(target) * theta[1:]]
        return float(value), grad

    theta = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B").x
    weights = theta[1:] / scale
    return np.r_[theta[0] - float(mean @ weights), weights]


def _with_offsets(coef: dict[str, np.ndarray], offsets: dict[str, float],
                  max_cycles: int) -> VerdictRule:
    parts = {k: tuple(np.r_[coef[k][0] - offsets[k], coef[k][1:]]) for k in coef}
    return VerdictRule(learned=LearnedVerdict(**parts, max_cycles=max_cycles))


def fit_learned_verdict(findings: Sequence[Sequence[CycleFinding]], labels: Sequence[str]
                        ) -> tuple[VerdictRule, dict[str, float]]:
    """A learned record verdict (:class:`edge.labels.LearnedVerdict`) for these records.

    One logistic regression per part (crackle and wheeze present, over records that are
    not Poor Quality and have a good cycle; Poor Quality, over all), then each part's
    decision threshold, by coordinate ascent over quantiles of its scores, for the best
    mean of the BioCAS Scores of tasks 2-1 and 2-2 on the same records. The cycle count is
    capped, when the verdict is applied, at the longest record fitted on.
    """
    if len(findings) != len(labels) or not labels:
        raise ValueError("need one findings list per labelled record")
    table, targets = record_feature_table(findings), _part_targets(labels)
    usable = table["has_good"] & ~targets["poor"]
    coef = {part: logistic_fit(table[part][usable], targets[part][usable])
            for part in ("crackle", "wheeze")}
    coef["poor"] = logistic_fit(table["poor"], targets["poor"])
    candidates = {}
    for part in coef:
        score = coef[part][0] + table[part] @ coef[part][1:]
        candidates[part] = np.unique(np.r_[0.0, np.quantile(score, THRESHOLD_QUANTILES)])
    offsets = dict.fromkeys(coef, 0.0)
    max_cycles = max(len(f) for f in findings)
    best = record_task_scores(findings, labels, _with_offsets(coef, offsets, max_cycles))
    for _ in range(2):
        for part in ("poor", "crackle", "wheeze"):
            for value in candidates[part]:
                trial = {**offsets, part: float(value)}
                scores = record_task_scores(findings, labels,
                                            _with_offsets(coef, trial, max_cycles))
                if scores["mean"] > best["mean"] + 1e-12:
                    offsets, best = trial, scores
    return _with_offsets(coef, offsets, max_cycles), best


def patient_folds(patients: Sequence[str], k: int = CV_FOLDS, seed: int = 0) -> np.ndarray:
    """A fold index per record; a patient's records share one fold."""
    unique = sorted(set(patients))
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = {unique[i]: n % k for n, i in enumerate(order)}
    return np.array([fold_of[p] for p in patients])


def cross_validated_verdicts(findings: Sequence[Sequence[CycleFinding]],
                             labels: Sequence[str], patients: Sequence[str],
                             fit: Callable[..., tuple[VerdictRule, dict[str, float]]],
                             k: int = CV_FOLDS) -> dict[str, float]:
    """Scores of tasks 2-1 and 2-2 when every record's verdict comes from a verdict fitted
    (by ``fit``) on the other folds' patients only."""
    folds = patient_folds(patients, k)
    verdicts = [""] * len(labels)
    for fold in range(k):
        inside = [i for i in range(len(labels)) if folds[i] != fold]
        rule, _ = fit([findings[i] for i in inside], [labels[i] for i in inside])
        for i in np.flatnonzero(folds == fold):
            verdicts[i] = record_verdict(findings[i], rule).label
    return verdict_scores(labels, verdicts)


def verdict_scores(labels: Sequence[str], verdicts: Sequence[str]) -> dict[str, float]:
    s22 = task_scores("2-2", list(labels), list(verdicts)).score
    s21 = task_scores("2-1", [to_task_label("2-1", t) for t in labels],
                      [to_task_label("2-1", v) for v in verdicts]).score
    return {"2-1": s21, "2-2": s22, "mean": (s21 + s22) / 2}


@dataclass(frozen=True)
class VerdictChoice:
    """The record verdict chosen on validation records: the counting rule or the learned
    one, whichever scores better in patient-grouped cross-validation, refitted on all."""

    kind: str  # "rule" or "learned"
    rule: VerdictRule
    cv_scores: dict[str, dict[str, float]]  # per kind
    fitted_scores: dict[str, float]  # the chosen verdict on the records it was fitted on
    records: int

    def to_dict(self) -> dict:
        return {"kind": self.kind, "rule": self.rule.to_dict(),
                "cross_validated": self.cv_scores, "fitted_in_sample": self.fitted_scores,
                "records": self.records, "folds": CV_FOLDS,
                "objective": "mean of BioCAS Scores of tasks 2-1 and 2-2"}


def choose_verdict(findings: Sequence[Sequence[CycleFinding]], labels: Sequence[str],
                   patients: Sequence[str]) -> VerdictChoice:
    """Cross-validate the counting rule and the learned verdict on the same records; keep
    the better (the rule on a tie: it is the simpler) and refit it on every record."""
    fits = {"rule": fit_verdict_rule, "learned": fit_learned_verdict}
    cv = {kind: cross_validated_verdicts(findings, labels, patients, fit)
          for kind, fit in fits.items()}
    kind = "learned" if cv["learned"]["mean"] > cv["rule"]["mean"] + 1e-12 else "rule"
    rule, scores = fits[kind](findings, labels)
    return VerdictChoice(kind, rule, cv, scores, len(labels))


def validation_records(data_root: Path, val_fraction: float, seed: int) -> list[Recording]:
    """The labelled records of a run's patient-disjoint SPRSound validation split.

    Only the official training half is read, so no test record can be among them.
    """
    _, val = split_train_validation(load_sprsound(data_root, "train"), val_fraction, seed)
    return [r for r in val if r.record_label is not None]


def manifest_validation_split(manifest: Mapping[str, Any]) -> tuple[float, int]:
    """(val_fraction, seed) of the validation split of the run a model was exported from.

    Read from the manifest's training record with ``TrainConfig.validation_seed``'s rule
    (``split_seed``, else ``seed``): the recipe file may name another seed than the one
    exported (``steth-export --seed``), and the training code would pull in torch.
    """
    config = manifest.get("training", {}).get("config", {})
    seed = config.get("split_seed")
    seed = config.get("seed") if seed is None else seed
    if "val_fraction" not in config or seed is None:
        raise DataError("the model's manifest records no training config with val_fraction "
                        "and seed: its validation split is unknown")
    return float(config["val_fraction"]), int(seed)


def fit_rule_on_validation(model: CycleModel | Any, frontend: FrontEnd, data_root: Path,
                           val_fraction: float, seed: int
                           ) -> tuple[VerdictRule, dict[str, float], dict[str, float], int]:
    """Fit the record rule for ``model`` on the SPRSound validation records of a run.

    The records are the patient-disjoint validation split the run was selected on (same
    fraction and seed), scored through ``frontend``'s cached features. Returns the rule,
    its validation scores, the default rule's validation scores, and the record count.
    """
    val = validation_records(data_root, val_fraction, seed)
    findings = [window_findings(model, cached_features(r, frontend)) for r in val]
    labels = [str(r.record_label) for r in val]
    rule, scores = fit_verdict_rule(findings, labels)
    return rule, scores, record_task_scores(findings, labels, VerdictRule()), len(val)


TILED_VALIDATION = "patient-disjoint validation split of SPRSound train (record labels)"


def apply_rule_to_manifests(model_paths: Sequence[Path], rule: VerdictRule,
                            scores: dict[str, float], n_records: int, *,
                            on: str = TILED_VALIDATION, choice: dict | None = None
                            ) -> list[Path]:
    """Rewrite each model's manifest with the fitted verdict (weights and hashes unchanged
    but for the decision digests, which the rewrite pins afresh)."""
    written = []
    for path in model_paths:
        manifest = load_manifest(path)
        fields = {k: v for k, v in manifest.data.items()
                  if k not in ("schema", "weights_file", "weights_sha256")}
        fields["verdict_rule"] = rule.to_dict()
        fit = {"on": on, "records": n_records,
               "objective": "mean of BioCAS Scores of tasks 2-1 and 2-2",
               "validation_scores": scores}
        if choice is not None:
            fit["choice"] = choice
        fields.setdefault("training", {})["verdict_rule_fit"] = fit
        written.append(write_manifest(path, fields))
    return written


def sibling_models(model_path: Path) -> list[Path]:
    """Every exported file of the same model (fp32/int8 ONNX, TFLite) that has a manifest."""
    stem = model_path.name.split(".")[0]
    return sorted(p for p in model_path.parent.glob(f"{stem}.*")
                  if not p.name.endswith(".json") and manifest_path_for(p).is_file())
