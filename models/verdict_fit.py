"""Fit the record-verdict rule on validation recordings (``steth-export --verdict-only``).

The per-cycle thresholds are tuned for the event tasks; a record verdict pools many cycles,
and "one flagged window makes the record abnormal" flags too many Normal records. The rule's
parameters (:class:`edge.labels.VerdictRule`) are therefore chosen separately, on the
patient-disjoint validation split of the SPRSound training data, to maximise the mean of the
record tasks 2-1 and 2-2 — never on a test set. The deployed (int8) model scores the
windows tiled over each recording. The bedside instead pools the cycles its detector finds;
``steth-stream-eval --verdict-rule detected-validation`` fits the same grid on those
(:func:`steth.models.stream_eval.fit_rule_on_detected_validation`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from steth.edge.infer import CycleModel
from steth.edge.labels import CycleFinding, VerdictRule, record_verdict
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
        findings.append(CycleFinding(crackle, wheeze, p.poor_quality(model.thresholds)))
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
    verdicts = [record_verdict(f, rule).label for f in findings]
    s22 = task_scores("2-2", list(labels), verdicts).score
    s21 = task_scores("2-1", [to_task_label("2-1", t) for t in labels],
                      [to_task_label("2-1", v) for v in verdicts]).score
    return {"2-1": s21, "2-2": s22, "mean": (s21 + s22) / 2}


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


def apply_rule_to_manifests(model_paths: Sequence[Path], rule: VerdictRule,
                            scores: dict[str, float], n_records: int) -> list[Path]:
    """Rewrite each model's manifest with the fitted rule (weights and hashes unchanged)."""
    written = []
    for path in model_paths:
        manifest = load_manifest(path)
        fields = {k: v for k, v in manifest.data.items()
                  if k not in ("schema", "weights_file", "weights_sha256")}
        fields["verdict_rule"] = rule.to_dict()
        fields.setdefault("training", {})["verdict_rule_fit"] = {
            "on": "patient-disjoint validation split of SPRSound train (record labels)",
            "records": n_records, "objective": "mean of BioCAS Scores of tasks 2-1 and 2-2",
            "validation_scores": scores}
        written.append(write_manifest(path, fields))
    return written


def sibling_models(model_path: Path) -> list[Path]:
    """Every exported file of the same model (fp32/int8 ONNX, TFLite) that has a manifest."""
    stem = model_path.name.split(".")[0]
    return sorted(p for p in model_path.parent.glob(f"{stem}.*")
                  if not p.name.endswith(".json") and manifest_path_for(p).is_file())
