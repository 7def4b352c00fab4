"""Score the streaming breath-cycle detector (``steth-detect-eval``).

Matching rule: detected and annotated intervals are paired one-to-one, greedily by
decreasing IoU, and a pair counts when its IoU reaches the threshold.

- ICBHI (contiguous cycle annotations, training recordings with audio): event precision,
  recall and F1 at IoU >= 0.5, and median |onset error| and |offset error| of matched pairs.
- SPRSound test (annotated segments cover only part of each recording): recall of annotated
  events at IoU >= 0.3, and the share of detected time that lies outside every annotation.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.features import FeatureConfig
from edge.segment import DetectorConfig, detect_cycles
from models.datasets import DataError, Recording, default_data_root, load_icbhi, load_sprsound
from models.feature_cache import cached_features

Interval = tuple[float, float]


def iou(a: Interval, b: Interval) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def match(detected: list[Interval], truth: list[Interval],
          threshold: float) -> list[tuple[int, int]]:
    """One-to-one pairs (detected index, truth index) with IoU >= threshold, best first."""
    pairs = sorted(((iou(d, t), i, j) for i, d in enumerate(detected)
                    for j, t in enumerate(truth) if iou(d, t) >= threshold), reverse=True)
    used_d: set[int] = set()
    used_t: set[int] = set()
    out = []
    for _, i, j in pairs:
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
            out.append((i, j))
    return out


def detected_intervals(frames: np.ndarray, features: FeatureConfig,
                       config: DetectorConfig) -> list[Interval]:
    fps = features.frames_per_second
    # Frame t ends at (t + 1) / fps seconds; a cycle [first, last) spans these edges.
    return [((c.first + 1) / fps, (c.last + 1) / fps)
            for c in detect_cycles(frames, features, config)]


@dataclass
class IcbhiDetection:
    recordings: int
    annotated: int
    detected: int
    matched: int
    precision: float
    recall: float
    f1: float
    median_onset_error_s: float
    median_offset_error_s: float


def score_icbhi(recordings: list[Recording], config: DetectorConfig) -> IcbhiDetection:
    features = FeatureConfig()
    n_true = n_det = n_match = 0
    onset, offset = [], []
    for rec in recordings:
        frames = cached_features(rec, features)
        detected = detected_intervals(frames, features, config)
        truth = [(c.start, c.end) for c in rec.events]
        pairs = match(detected, truth, 0.5)
        n_true, n_det, n_match = n_true + len(truth), n_det + len(detected), n_match + len(pairs)
        onset += [abs(detected[i][0] - truth[j][0]) for i, j in pairs]
        offset += [abs(detected[i][1] - truth[j][1]) for i, j in pairs]
    precision = n_match / n_det if n_det else 0.0
    recall = n_match / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return IcbhiDetection(len(recordings), n_true, n_det, n_match, precision, recall, f1,
                          float(np.median(onset)) if onset else float("nan"),
                          float(np.median(offset)) if offset else float("nan"))


def score_sprsound(recordings: list[Recording], config: DetectorConfig) -> dict:
    features = FeatureConfig()
    n_events = n_recalled = 0
    detected_time = outside_time = 0.0
    for rec in recordings:
        if not rec.events:
            continue
        frames = cached_features(rec, features)
        detected = detected_intervals(frames, features, config)
        truth = [(e.start, e.end) for e in rec.events]
        n_events += len(truth)
        n_recalled += len(match(detected, truth, 0.3))
        for d in detected:
            covered = sum(max(0.0, min(d[1], t[1]) - max(d[0], t[0])) for t in truth)
            detected_time += d[1] - d[0]
            outside_time += max(0.0, (d[1] - d[0]) - covered)
    return {"events": n_events, "recall_iou_0.3": n_recalled / n_events if n_events else 0.0,
            "detected_seconds": detected_time,
            "share_outside_annotations": outside_time / detected_time if detected_time else 0.0}


SEARCH_SPACE = {
    "band_low_hz": (60.0, 300.0), "band_high_hz": (400.0, 1800.0), "smooth_s": (0.1, 0.6),
    "lookahead_s": (0.2, 0.6), "min_gap_fraction": (0.4, 0.85),
    "search_fraction": (0.2, 0.6), "default_period_s": (2.0, 4.5),
}


def tune(recordings: list[Recording], trials: int, seed: int = 0) -> DetectorConfig:
    """Random search of the detector settings on ICBHI training recordings (F1 at IoU 0.5)."""
    rng = np.random.default_rng(seed)
    best_config, best = DetectorConfig(), score_icbhi(recordings, DetectorConfig()).f1
    for trial in range(trials):
        values = {k: float(rng.uniform(*r)) for k, r in SEARCH_SPACE.items()}
        config = DetectorConfig(**values)
        f1 = score_icbhi(recordings, config).f1
        if f1 > best:
            best, best_config = f1, config
            print(f"trial {trial}: F1 {f1:.3f} {values}", file=sys.stderr, flush=True)
    return best_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-detect-eval",
        description="Score the streaming breath-cycle detector on ICBHI cycles (F1 at IoU "
                    ">= 0.5) and SPRSound test events (recall at IoU >= 0.3).")
    parser.add_argument("--data", type=Path, default=default_data_root())
    parser.add_argument("--sprsound-limit", type=int, default=0,
                        help="first N SPRSound test recordings (0 = all)")
    parser.add_argument("--tune", type=int, default=0, metavar="TRIALS",
                        help="random-search the settings on ICBHI training recordings first")
    args = parser.parse_args(argv)
    config = DetectorConfig()
    if args.tune:
        config = tune(load_icbhi(args.data, "train"), args.tune)
    try:
        icbhi = score_icbhi(load_icbhi(args.data, "train"), config)
        spr_recs = load_sprsound(args.data, "test")
        if args.sprsound_limit:
            spr_recs = spr_recs[:args.sprsound_limit]
        spr = score_sprsound(spr_recs, config)
    except DataError as exc:
        print(f"steth-detect-eval: {exc}", file=sys.stderr)
        return 2
    report = {"detector": asdict(config), "icbhi_train": asdict(icbhi), "sprsound_test": spr}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
