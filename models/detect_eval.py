"""Score the streaming breath-cycle detector (``steth-detect-eval``).

Matching rule: detected and annotated intervals are paired one-to-one, greedily by
decreasing IoU, and a pair counts when its IoU reaches the threshold.

- ICBHI (contiguous cycle annotations, the 43 training recordings with audio): event
  precision, recall and F1 at IoU >= 0.5, and median |onset error| and |offset error| of
  matched pairs. ``--cv RUN`` gives the honest number: patient-grouped cross-validation with
  the fold models of ``steth-detector-train --cv`` (each fold's model and, with ``--tune``,
  its peak-picking settings never saw the fold's patients; the search starts from
  :func:`neutral`, not from the shipped settings). The report splits F1 and errors by the
  annotated cycles' breath rate (``by_breath_rate``: <12, 12-20, 20-30, >30 per minute) and
  adds ``f1_in_annotated_span`` (unpaired detections wholly outside the annotated stretch
  not counted). Without ``--cv`` the ICBHI score of the committed weights is an all-data
  fit (they were trained on these recordings).
- SPRSound test (annotated segments cover only part of each recording): recall of annotated
  events at IoU >= 0.3, and the share of detected time that lies outside every annotation.
  Never used for training or tuning.

Every recording runs through the streaming detector from its first frame; at its end the
open cycle is closed at the last frame (:meth:`edge.segment.BreathCycleDetector.finish`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from steth.edge.features import FeatureConfig
from steth.edge.segment import (
    BoundaryPicker,
    BreathCycleDetector,
    Cycle,
    DetectorConfig,
    DetectorWeightsError,
    detect_cycles,
)
from steth.models.datasets import DataError, Recording, default_data_root, load_icbhi, load_sprsound
from steth.models.feature_cache import cached_features

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


def cycle_intervals(cycles: list[Cycle], fps: float) -> list[Interval]:
    # Frame t ends at (t + 1) / fps seconds; a cycle [first, last) spans these edges.
    return [((c.first + 1) / fps, (c.last + 1) / fps) for c in cycles]


def detected_intervals(frames: np.ndarray, features: FeatureConfig,
                       config: DetectorConfig) -> list[Interval]:
    """Cycles of the streaming detector run over a whole recording, in seconds."""
    return cycle_intervals(detect_cycles(frames, features, config), features.frames_per_second)


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
    by_breath_rate: dict[str, dict] = field(default_factory=dict)  # see rate_bands
    # Secondary: F1 not counting unpaired detections outside the annotated span.
    f1_in_annotated_span: float = float("nan")


@dataclass
class RecordingMatch:
    annotated: int
    detected: int
    onset_errors: list[float]
    offset_errors: list[float]
    truth_rates: list[float] = field(default_factory=list)  # per min, every annotated cycle
    matched_rates: list[float] = field(default_factory=list)  # the annotated one of each pair
    unmatched_rates: list[float] = field(default_factory=list)  # every unpaired detection
    outside_span: int = 0  # unpaired detections wholly before or after the annotated span


def breath_rate(interval: Interval) -> float:
    """Breaths per minute of one cycle."""
    return 60.0 / max(interval[1] - interval[0], 1e-6)


def match_icbhi(detected: list[Interval], rec: Recording) -> RecordingMatch:
    truth = [(c.start, c.end) for c in rec.events]
    pairs = match(detected, truth, 0.5)
    paired = {i for i, _ in pairs}
    # A few recordings are annotated from well after their start (157_1b1_Lr from 31.8 s):
    # what is detected there cannot be judged either way.
    outside = sum(1 for i, d in enumerate(detected) if i not in paired
                  and (d[1] <= truth[0][0] or d[0] >= truth[-1][1])) if truth else 0
    return RecordingMatch(len(truth), len(detected),
                          [abs(detected[i][0] - truth[j][0]) for i, j in pairs],
                          [abs(detected[i][1] - truth[j][1]) for i, j in pairs],
                          [breath_rate(t) for t in truth],
                          [breath_rate(truth[j]) for _, j in pairs],
                          [breath_rate(d) for i, d in enumerate(detected) if i not in paired],
                          outside)


def _f1(n_match: int, n_det: int, n_true: int) -> float:
    """F1 from counts: 2 matched / (detected + annotated)."""
    return 2 * n_match / (n_det + n_true) if n_det + n_true else 0.0


def summarise_icbhi(results: list[RecordingMatch]) -> IcbhiDetection:
    n_true = sum(r.annotated for r in results)
    n_det = sum(r.detected for r in results)
    onset = [e for r in results for e in r.onset_errors]
    offset = [e for r in results for e in r.offset_errors]
    n_match = len(onset)
    outside = sum(r.outside_span for r in results)
    precision = n_match / n_det if n_det else 0.0
    recall = n_match / n_true if n_true else 0.0
    return IcbhiDetection(len(results), n_true, n_det, n_match, precision, recall,
                          _f1(n_match, n_det, n_true),
                          float(np.median(onset)) if onset else float("nan"),
                          float(np.median(offset)) if offset else float("nan"),
                          rate_bands(results), _f1(n_match, n_det - outside, n_true))


# Breath-rate bands (per minute) of the annotated cycles: adults at rest breathe 12-20,
# children 20-30 and faster, infants up to 60.
RATE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<12", 0.0, 12.0), ("12-20", 12.0, 20.0), ("20-30", 20.0, 30.0), (">30", 30.0, np.inf))


def _band_of(rate: float) -> str:
    return next(name for name, lo, hi in RATE_BANDS if lo <= rate < hi)


def rate_bands(results: list[RecordingMatch]) -> dict[str, dict]:
    """F1 and median errors per breath-rate band of the annotated cycle.

    A pair counts in its annotated cycle's band; an unpaired detection counts against the
    band of its own rate (that is the rate it claimed), an unpaired annotation against its.
    """
    out: dict[str, dict] = {}
    for name, _, _ in RATE_BANDS:
        truth = sum(_band_of(x) == name for r in results for x in r.truth_rates)
        pairs = [(on, off) for r in results
                 for x, on, off in zip(r.matched_rates, r.onset_errors, r.offset_errors,
                                       strict=True) if _band_of(x) == name]
        spurious = sum(_band_of(x) == name for r in results for x in r.unmatched_rates)
        precision = len(pairs) / (len(pairs) + spurious) if pairs or spurious else 0.0
        recall = len(pairs) / truth if truth else 0.0
        out[name] = {"annotated": truth, "matched": len(pairs), "unpaired_detections": spurious,
                     "precision": precision, "recall": recall,
                     "f1": _f1(len(pairs), len(pairs) + spurious, truth),
                     "median_onset_error_s": float(np.median([p[0] for p in pairs]))
                     if pairs else float("nan"),
                     "median_offset_error_s": float(np.median([p[1] for p in pairs]))
                     if pairs else float("nan")}
    return out


def score_icbhi(recordings: list[Recording], config: DetectorConfig) -> IcbhiDetection:
    """F1 at IoU >= 0.5 of the streaming detector on ICBHI cycles."""
    features = FeatureConfig()
    return summarise_icbhi([match_icbhi(detected_intervals(cached_features(rec, features),
                                                           features, config), rec)
                            for rec in recordings])


def score_sprsound(recordings: list[Recording], config: DetectorConfig) -> dict:
    """Recall of annotated events at IoU >= 0.3 and share of detected time outside them."""
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
    return {"recordings": sum(1 for r in recordings if r.events), "events": n_events,
            "recall_iou_0.3": n_recalled / n_events if n_events else 0.0,
            "detected_seconds": detected_time,
            "share_outside_annotations": outside_time / detected_time if detected_time else 0.0}


# gap_fraction from 0.5: an expiration onset lies at 30-45 % of the breath, so a smaller gap
# admits it (ICBHI's irregular cycles alone would pull the gap to about 0.44 and split
# steady breathing at every expiration). rephase_ratio up to 1.3: the inspiration peak
# scores about 1.2-1.6 times the expiration one, and a larger ratio keeps a wrong phase.
SEARCH_SPACE = {
    "threshold": (0.1, 0.8), "gap_fraction": (0.5, 0.9), "period_peak_ratio": (0.5, 1.0),
    "rephase_ratio": (1.0, 1.3),
}


def neutral(config: DetectorConfig) -> DetectorConfig:
    """``config`` at the middle of the search space: where cross-validated tuning starts,
    so that no fold starts from settings tuned on scores that include its own patients
    (the shipped defaults are such settings)."""
    return replace(config, **{k: round((lo + hi) / 2, 3) for k, (lo, hi) in SEARCH_SPACE.items()})


@dataclass
class Scored:
    """A recording with the network's boundary scores (frame i has score i)."""

    rec: Recording
    scores: np.ndarray
    n_frames: int


def score_recording(rec: Recording, config: DetectorConfig) -> Scored:
    features = FeatureConfig()
    detector = BreathCycleDetector(features, config)
    frames = cached_features(rec, features)
    return Scored(rec, detector.boundary_scores(frames)[detector.net.lookahead:],
                  frames.shape[0])


def pick_cycles(scored: Scored, config: DetectorConfig) -> list[Cycle]:
    """What :func:`edge.segment.detect_cycles` returns, from cached scores."""
    picker = BoundaryPicker(config, FeatureConfig().frames_per_second)
    return picker.push(scored.scores) + picker.finish(scored.n_frames - 1)


def f1_of(scored: list[Scored], config: DetectorConfig) -> IcbhiDetection:
    fps = FeatureConfig().frames_per_second
    return summarise_icbhi([match_icbhi(cycle_intervals(pick_cycles(s, config), fps), s.rec)
                            for s in scored])


def tune_on(scored: list[Scored], trials: int, base: DetectorConfig,
            seed: int = 0) -> DetectorConfig:
    """Random search of the peak-picking settings (F1 at IoU 0.5) on scored recordings."""
    rng = np.random.default_rng(seed)
    best_config, best = base, f1_of(scored, base).f1
    for _ in range(trials):
        values = {k: round(float(rng.uniform(*r)), 3) for k, r in SEARCH_SPACE.items()}
        config = replace(base, **values)
        f1 = f1_of(scored, config).f1
        if f1 > best:
            best, best_config = f1, config
    print(f"tuned on {len(scored)} recordings: F1 {best:.3f} "
          f"{ {k: getattr(best_config, k) for k in SEARCH_SPACE} }", file=sys.stderr, flush=True)
    return best_config


def tune(recordings: list[Recording], trials: int, base: DetectorConfig) -> DetectorConfig:
    """Tune on ICBHI training recordings scored by ``base``'s weights."""
    return tune_on([score_recording(r, base) for r in recordings], trials, base)


def cross_validate(run: Path, recordings: list[Recording], base: DetectorConfig,
                   trials: int) -> tuple[IcbhiDetection, list[dict], DetectorConfig]:
    """Patient-grouped cross-validation of the fold models of ``run/folds.json``.

    Each fold's model scores only its held-out patients. With ``trials``, fold k's
    peak-picking settings are tuned on the other folds' held-out scores (never on fold k's
    patients), starting from :func:`neutral`; the settings tuned on all held-out scores are
    returned for shipping. The summary's ``by_breath_rate`` splits it by the annotated
    cycles' breath rate (:func:`rate_bands`).
    """
    try:
        folds = json.loads((run / "folds.json").read_text())["folds"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{run / 'folds.json'}: no cross-validation run there "
                        "(train one with steth-detector-train --cv)") from exc
    if not folds:
        raise DataError(f"{run / 'folds.json'} lists no folds (train the run again with "
                        "steth-detector-train --cv)")
    scored: list[list[Scored]] = []
    for fold in folds:
        held_out = set(fold["held_out_patients"])
        weights = replace(base, weights=Path(fold["weights"]))
        scored.append([score_recording(r, weights) for r in recordings if r.patient in held_out])
    results: list[RecordingMatch] = []
    per_fold = []
    fps = FeatureConfig().frames_per_second
    for k, fold in enumerate(folds):
        config = replace(base, weights=Path(fold["weights"]))
        if trials:
            others = [s for j, group in enumerate(scored) if j != k for s in group]
            config = tune_on(others, trials, neutral(config))
        fold_results = [match_icbhi(cycle_intervals(pick_cycles(s, config), fps), s.rec)
                        for s in scored[k]]
        results += fold_results
        per_fold.append({"weights": fold["weights"],
                         "held_out_patients": sorted(fold["held_out_patients"]),
                         "f1": summarise_icbhi(fold_results).f1,
                         "settings": {name: getattr(config, name) for name in SEARCH_SPACE}})
    pooled = (tune_on([s for group in scored for s in group], trials, neutral(base))
              if trials else base)
    return summarise_icbhi(results), per_fold, pooled


def cpu_per_frame(recordings: list[Recording], config: DetectorConfig, block: int = 2) -> float:
    """CPU seconds per frame of the streaming detector fed ``block`` frames per push (the
    pipeline pushes about two frames per 256-sample device chunk)."""
    features = FeatureConfig()
    frames_done, cpu = 0, 0.0
    for rec in recordings:
        frames = cached_features(rec, features)
        detector = BreathCycleDetector(features, config)
        start = time.process_time()
        for i in range(0, frames.shape[0], block):
            detector.push(frames[i:i + block])
        cpu += time.process_time() - start
        frames_done += frames.shape[0]
    return cpu / max(1, frames_done)


MATCHING_RULE = ("one-to-one greedy pairing by decreasing IoU; ICBHI: a pair counts at IoU >= "
                 "0.5 (precision, recall, F1, median |onset|/|offset| error of pairs); "
                 "SPRSound test: recall of annotated events at IoU >= 0.3, and share of "
                 "detected time outside every annotation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-detect-eval",
        description="Score the streaming breath-cycle detector on ICBHI cycles (F1 at IoU "
                    ">= 0.5) and SPRSound test events (recall at IoU >= 0.3).")
    parser.add_argument("--data", type=Path, default=default_data_root())
    parser.add_argument("--weights", type=Path, default=None,
                        help="detector weights (.npz; default: the committed ones)")
    parser.add_argument("--cv", type=Path, default=None, metavar="RUN",
                        help="ICBHI score by patient-grouped cross-validation: the fold models "
                             "of `steth-detector-train --cv` (RUN/folds.json)")
    parser.add_argument("--sprsound-limit", type=int, default=0,
                        help="first N SPRSound test recordings (0 = all)")
    parser.add_argument("--no-sprsound", action="store_true", help="skip SPRSound test")
    parser.add_argument("--tune", type=int, default=0, metavar="TRIALS",
                        help="random-search the peak-picking settings on ICBHI training "
                             "recordings first (with --cv: on each fold's training patients)")
    args = parser.parse_args(argv)
    for option, value in (("--sprsound-limit", args.sprsound_limit), ("--tune", args.tune)):
        if value < 0:
            print(f"steth-detect-eval: {option} cannot be negative ({value}); 0 means "
                  + ("all recordings" if option == "--sprsound-limit" else "no tuning"),
                  file=sys.stderr)
            return 2
    config = DetectorConfig(weights=args.weights)
    report: dict = {"matching_rule": MATCHING_RULE}
    try:
        icbhi_recs = load_icbhi(args.data, "train")
        if not icbhi_recs:
            # Every ICBHI figure below would be a meaningless 0.0.
            raise DataError(f"{args.data}: no ICBHI training recordings with audio (the "
                            "split file's train names need their .wav/.flac); pass the "
                            "--data root that holds them")
        if args.cv is not None:
            cv, per_fold, pooled = cross_validate(args.cv, icbhi_recs, config, args.tune)
            report["icbhi_train_patient_cv"] = asdict(cv)
            report["folds"] = per_fold
            if args.tune:
                report["settings_tuned_on_all_held_out_scores"] = {
                    k: getattr(pooled, k) for k in SEARCH_SPACE}
            config = replace(config, weights=Path(per_fold[0]["weights"]))
        else:
            if args.tune:
                config = tune(icbhi_recs, args.tune, config)
            # The shipped weights were trained on these recordings: an in-sample fit.
            report["icbhi_train_all_data_fit"] = asdict(score_icbhi(icbhi_recs, config))
            if not args.no_sprsound:
                spr_recs = load_sprsound(args.data, "test")
                if args.sprsound_limit:
                    spr_recs = spr_recs[:args.sprsound_limit]
                report["sprsound_test"] = score_sprsound(spr_recs, config)
        detector = BreathCycleDetector(FeatureConfig(), config)
    except (DataError, DetectorWeightsError) as exc:
        print(f"steth-detect-eval: {exc}", file=sys.stderr)
        return 2
    report["detector"] = {k: str(v) if isinstance(v, Path) else v
                          for k, v in asdict(config).items()}
    report["decision_delay_s"] = detector.decision_delay_s
    report["macs_per_frame"] = detector.net.macs_per_frame
    if args.cv is None:
        per_frame = cpu_per_frame(icbhi_recs[:10], config)
        report["cpu_us_per_frame"] = round(per_frame * 1e6, 1)
        report["cpu_share_of_real_time"] = round(per_frame * detector.fps, 5)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
