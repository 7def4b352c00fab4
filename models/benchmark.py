"""Score an exported model on a test split (``steth-bench``): the numbers every issue quotes.

Event tasks (1-1, 1-2, and the ICBHI Score on SPRSound mapped to 4 classes) use the
annotated event boundaries. Record tasks (2-1, 2-2) do NOT use annotations: the whole
recording is tiled into half-overlapping model windows, each window is scored, and the
shared record rule (:func:`edge.labels.record_verdict`) turns them into a verdict.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.features import FeatureConfig, frame_range
from edge.infer import CycleModel, CyclePrediction, ModelError
from edge.labels import CycleFinding, event_to_four_class, record_verdict
from models.data import tile_ranges
from models.datasets import DataError, Recording, default_data_root, load_icbhi, load_sprsound
from models.feature_cache import cached_features
from models.metrics import (
    TASK_LABELS,
    all_normal_baseline,
    confusion_matrix,
    detection_recall_precision,
    patient_bootstrap_ci,
    per_class_recall,
    task_scores,
    to_task_label,
)
from models.robustness import CONDITIONS

SUBSETS = ("inter", "intra", "combined")
AudioTransform = Callable[[np.ndarray, int], np.ndarray]


@dataclass
class Collected:
    """Per-item truths and predictions, with the patient of each item."""

    items: dict[str, list[tuple[str, str, str, str]]] = field(default_factory=dict)
    cycle_ms: list[float] = field(default_factory=list)

    def add(self, task: str, subset: str, patient: str, true: str, pred: str) -> None:
        self.items.setdefault(task, []).append((subset, patient, true, pred))


def record_prediction(model: CycleModel, frames: np.ndarray) -> tuple[str, int]:
    """Record verdict from windows tiled over the whole recording (no annotations used)."""
    findings = []
    for first, last in tile_ranges(frames.shape[0], model.window):
        if last - first < 4:
            continue
        p = model.predict_cycle(frames[first:last])
        crackle, wheeze = p.flags(model.thresholds)
        findings.append(CycleFinding(crackle, wheeze, p.poor_quality(model.thresholds)))
    verdict = record_verdict(findings, model.manifest.verdict_rule)
    return verdict.label, verdict.n_cycles


def features_for(rec: Recording, config: FeatureConfig,
                 transform: AudioTransform | None) -> np.ndarray:
    if transform is None:
        return cached_features(rec, config)
    from edge.features import recording_features
    from models.datasets import load_audio

    audio, rate = load_audio(rec.audio_path)
    return recording_features(transform(audio, rate), rate, config)


def score_sprsound(model: CycleModel, recordings: list[Recording], collected: Collected,
                   transform: AudioTransform | None, progress: Callable[[], None]) -> None:
    config = model.manifest.feature_config
    th = model.thresholds
    for rec in recordings:
        frames = features_for(rec, config, transform)
        subset = rec.subset or "?"
        for event in rec.events:
            first, last = frame_range(event.start, event.end, config)
            last = min(last, frames.shape[0])
            if last - first < 4:
                continue
            t0 = time.perf_counter()
            pred: CyclePrediction = model.predict_cycle(frames[first:last])
            collected.cycle_ms.append((time.perf_counter() - t0) * 1000.0)
            predicted = pred.event_class(th)
            collected.add("1-2", subset, rec.patient, event.label, predicted)
            collected.add("1-1", subset, rec.patient, to_task_label("1-1", event.label),
                          to_task_label("1-1", predicted))
            collected.add("icbhi", subset, rec.patient, event_to_four_class(event.label),
                          pred.finding(th))
        verdict, _ = record_prediction(model, frames)
        assert rec.record_label is not None
        collected.add("2-2", subset, rec.patient, rec.record_label, verdict)
        collected.add("2-1", subset, rec.patient, to_task_label("2-1", rec.record_label),
                      to_task_label("2-1", verdict))
        progress()


def score_icbhi(model: CycleModel, recordings: list[Recording], collected: Collected,
                progress: Callable[[], None]) -> None:
    config = model.manifest.feature_config
    for rec in recordings:
        frames = cached_features(rec, config)
        for cycle in rec.events:
            first, last = frame_range(cycle.start, cycle.end, config)
            last = min(last, frames.shape[0])
            if last - first < 4:
                continue
            pred = model.predict_cycle(frames[first:last])
            collected.add("icbhi-test", "icbhi", rec.patient, cycle.label,
                          pred.finding(model.thresholds))
        progress()


def summarise(collected: Collected, n_boot: int) -> dict:
    result: dict = {}
    for task, items in collected.items.items():
        space = "icbhi" if task.startswith("icbhi") else task
        subsets = sorted({s for s, *_ in items}) + (["combined"] if task != "icbhi-test" else [])
        per_subset = {}
        for subset in subsets:
            rows = [r for r in items if subset == "combined" or r[0] == subset]
            true = [r[2] for r in rows]
            pred = [r[3] for r in rows]
            scores = task_scores(space, true, pred)
            entry = {**scores.to_dict(), "n": len(rows),
                     "all_normal_score": all_normal_baseline(space, true).score}
            if subset == "combined" or task == "icbhi-test":
                labels = TASK_LABELS[space]
                entry["ci95"] = patient_bootstrap_ci(
                    lambda t, p, s=space: task_scores(s, t, p).score, true, pred,
                    [r[1] for r in rows], n_boot=n_boot)
                entry["confusion"] = confusion_matrix(true, pred, labels).tolist()
                entry["labels"] = list(labels)
                entry["per_class_recall"] = per_class_recall(true, pred, labels)
                if space in ("2-1", "2-2"):
                    entry["poor_quality_recall_precision"] = detection_recall_precision(
                        true, pred, "Poor Quality")
            per_subset[subset] = entry
        result[task] = per_subset
    return result


def model_size(path: Path) -> dict:
    info: dict = {"file_bytes": path.stat().st_size}
    try:
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path)).graph
        info["parameters"] = int(sum(numpy_helper.to_array(t).size for t in graph.initializer
                                     if numpy_helper.to_array(t).size > 1))
    except ImportError:
        info["parameters"] = None
    return info


def print_table(result: dict, meta: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{meta['model']} on {meta['split']} ({meta['condition']})")
    for col in ("task", "subset", "n", "SE", "SP", "Score", "95% CI", "all-Normal"):
        table.add_column(col, justify="right" if col not in ("task", "subset") else "left")
    for task, subsets in result.items():
        for subset, e in subsets.items():
            ci = e.get("ci95")
            table.add_row(task, subset, str(e["n"]), f"{e['se']:.3f}", f"{e['sp']:.3f}",
                          f"{e['score']:.3f}", f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "",
                          f"{e['all_normal_score']:.3f}")
    console = Console()
    console.print(table)
    console.print(f"parameters {meta['parameters']}, file {meta['file_bytes'] / 1024:.0f} KiB, "
                  f"per cycle median {meta['cycle_ms_median']:.2f} ms, "
                  f"p95 {meta['cycle_ms_p95']:.2f} ms (one thread)")


def run(model_path: Path, data_root: Path, split: str, *, limit: int = 0, n_boot: int = 1000,
        transform: AudioTransform | None = None, condition: str = "clean",
        show_progress: bool = True) -> dict:
    model = CycleModel(model_path, expected_feature_hash=FeatureConfig().hash(), threads=1)
    collected = Collected()
    recordings = load_sprsound(data_root, "test") if split in SUBSETS else []
    if split in ("inter", "intra"):
        recordings = [r for r in recordings if r.subset == split]
    if limit:
        recordings = recordings[:limit]
    icbhi = load_icbhi(data_root, "test") if split in ("combined", "icbhi") else []
    from rich.progress import Progress

    with Progress(disable=not show_progress, transient=True) as bar:
        job = bar.add_task("scoring", total=len(recordings) + len(icbhi))
        step = lambda: bar.advance(job)  # noqa: E731
        if split != "icbhi":
            score_sprsound(model, recordings, collected, transform, step)
        score_icbhi(model, icbhi, collected, step)
    ms = collected.cycle_ms or [float("nan")]
    meta = {"model": model.manifest.name, "version": model.manifest.version,
            "precision": model.manifest.data["precision"], "split": split,
            "condition": condition, "sprsound_recordings": len(recordings),
            "icbhi_test_recordings": len(icbhi), **model_size(model_path),
            "cycle_ms_median": statistics.median(ms),
            "cycle_ms_p95": float(np.percentile(ms, 95)), "thresholds": model.thresholds}
    return {"meta": meta, "results": summarise(collected, n_boot)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-bench",
        description="Score an exported model (with its manifest) on SPRSound 2022 test "
                    "(inter/intra/combined) and the ICBHI test recordings present.")
    parser.add_argument("model", type=Path, help="an .onnx/.tflite file with its manifest")
    parser.add_argument("--data", type=Path, default=default_data_root(),
                        help="data root (default: $STETH_DATA or ../shared/data)")
    parser.add_argument("--split", choices=[*SUBSETS, "icbhi"], default="combined")
    parser.add_argument("--limit", type=int, default=0, help="first N recordings only")
    parser.add_argument("--bootstrap", type=int, default=1000, help="patient resamples")
    parser.add_argument("--condition", choices=sorted(CONDITIONS), default="clean",
                        help="pass test audio through part of the product's signal chain "
                             "first (see models/robustness.py)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        report = run(args.model, args.data, args.split, limit=args.limit,
                     n_boot=args.bootstrap, transform=CONDITIONS[args.condition],
                     condition=args.condition, show_progress=not args.no_progress)
    except (ModelError, DataError) as exc:
        print(f"steth-bench: {exc}", file=sys.stderr)
        return 2
    print_table(report["results"], report["meta"])
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


