"""Streaming evaluation (``steth-stream-eval``): SPRSound test recordings replayed through
the whole edge pipeline with no annotated boundaries.

Each recording is pushed as 256-sample device chunks into :class:`edge.pipeline.Pipeline`
(the DSP, the breath-cycle detector, the model and the record rule exactly as on the Pi).

- Record level (tasks 2-1, 2-2): the last streamed ``verdict`` event of the recording; a
  recording in which no cycle was found gets the rule's verdict for zero cycles (Poor
  Quality). ``--verdict-rule`` also scores the same streamed cycles with another record
  rule: one read from a file, or ``detected-validation``, the rule fitted (with
  ``steth-export``'s grid and objective) on the cycles the pipeline detects in the model's
  own SPRSound validation records, instead of on tiled windows as the manifest's rule is.
- Event level (tasks 1-1, 1-2), matching rule: each annotated event is given the finding of
  the detected cycle that overlaps it longest; an event that no detected cycle overlaps is
  scored as predicted Normal (a miss). The 7-class label is the cycle's subtype, or Normal /
  Wheeze+Crackle for Normal / Both findings.

``--split icbhi`` replays ICBHI recordings (the test half when its audio is present, as in an
official download; otherwise the training half, e.g. the 43 recordings of the shared data
folder) and pairs detected with annotated cycles by ``steth-detect-eval``'s rule (one-to-one,
greedy by decreasing IoU, a pair counts at IoU >= 0.5). It reports three ICBHI Scores: of the
paired cycles' findings; of every annotated cycle, one left unpaired counting as predicted
Normal; and of the same classifier on the annotated boundaries (``steth-bench``'s scoring) -
with what was left unpaired on each side, overall and per stethoscope. A model that trained
on a recording scores it in-sample and the table says so; ``--lodo-config`` scores each
recording with the leave-one-device-out fold model that never heard its stethoscope and
``--detector-cv`` with the detector fold that never saw its patient.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from steth.edge.assets import default_model_path
from steth.edge.features import FeatureConfig, float_to_pcm16
from steth.edge.findings import finding_of_cycle_event
from steth.edge.infer import CycleModel, ModelError
from steth.edge.labels import FOUR_CLASSES, POOR_QUALITY, CycleFinding, VerdictRule, record_verdict
from steth.edge.pipeline import stream_events
from steth.edge.segment import DetectorConfig, DetectorWeightsError
from steth.models.benchmark import (
    Collected,
    device_rows,
    recording_device,
    score_icbhi,
    summarise,
    trained_on_icbhi_train,
)
from steth.models.datasets import (
    DataError,
    Recording,
    default_data_root,
    load_audio,
    load_icbhi,
    load_sprsound,
)
from steth.models.detect_eval import SEARCH_SPACE, Interval, match
from steth.models.metrics import to_task_label
from steth.models.verdict_fit import (
    CV_FOLDS,
    choose_verdict,
    fit_verdict_rule,
    manifest_validation_split,
    record_task_scores,
    validation_records,
)

if TYPE_CHECKING:  # the training code (and torch) loads only for --lodo-config
    from steth.models.train import TrainConfig


def stream_recording(model: CycleModel, rec: Recording,
                     detector: DetectorConfig | None = None) -> list[dict]:
    """All events the pipeline emits for one recording.

    Parameters
    ----------
    model : CycleModel
        The classifier.
    rec : Recording
        The recording, replayed at its native rate.
    detector : DetectorConfig, optional
        Another breath-cycle detector (e.g. a cross-validation fold's weights); the
        embedded one when omitted (:func:`edge.pipeline.stream_events`).
    """
    audio, rate = load_audio(rec.audio_path)
    return stream_events(float_to_pcm16(audio), rate, model, detector=detector)


def event_label(cycle: dict) -> str:
    if cycle["subtype"]:
        return cycle["subtype"]
    return {"Normal": "Normal", "Both": "Wheeze+Crackle"}.get(cycle["finding"], "Normal")


def score_events(rec: Recording, cycles: list[dict], rate: float) -> list[tuple[str, str]]:
    pairs = []
    for event in rec.events:
        best, best_overlap = None, 0.0
        for c in cycles:
            overlap = min(event.end, c["end"] / rate) - max(event.start, c["start"] / rate)
            if overlap > best_overlap:
                best, best_overlap = c, overlap
        pairs.append((event.label, event_label(best) if best else "Normal"))
    return pairs


@dataclass(frozen=True)
class StreamedRecord:
    """What the pipeline showed for one recording: its cycle events and its last verdict."""

    rec: Recording
    cycles: list[dict]
    verdict: str  # the last streamed verdict (the manifest's rule), Poor Quality if none
    detector: dict = field(default_factory=dict)  # the hello's name, version, weights hash

    @property
    def findings(self) -> list[CycleFinding]:
        """The cycles as the edge's record rule counts them (settling ones left out)."""
        return [f for f in map(finding_of_cycle_event, self.cycles) if f is not None]


def stream_record(model: CycleModel, rec: Recording) -> StreamedRecord:
    """Replay one recording (:func:`stream_recording`) and keep what the record needs."""
    out = stream_recording(model, rec)
    verdicts = [e for e in out if e["type"] == "verdict"]
    hello = next((e for e in out if e["type"] == "hello"), {})
    return StreamedRecord(rec, [e for e in out if e["type"] == "cycle"],
                          verdicts[-1]["verdict"] if verdicts else POOR_QUALITY,
                          hello.get("detector", {}))


def add_record_tasks(collected: Collected, rec: Recording, verdict: str) -> None:
    """Tasks 2-2 and 2-1 of one record's verdict."""
    assert rec.record_label is not None
    subset = rec.subset or "?"
    collected.add("2-2", subset, rec.patient, rec.record_label, verdict)
    collected.add("2-1", subset, rec.patient, to_task_label("2-1", rec.record_label),
                  to_task_label("2-1", verdict))


def evaluate(model: CycleModel, recordings: list[Recording], n_boot: int = 200,
             rule: VerdictRule | None = None) -> dict:
    """Streamed scores per task and subset, summarised exactly as the benchmark does.

    With ``rule``, ``results_rule`` holds the record tasks of the same streamed cycles
    under that rule (the verdict the edge would show with it in the manifest).
    """
    collected, with_rule = Collected(), Collected()
    n_cycles, detector = 0, {}
    for rec in recordings:
        streamed = stream_record(model, rec)
        n_cycles += len(streamed.cycles)
        detector = streamed.detector
        add_record_tasks(collected, rec, streamed.verdict)
        if rule is not None:
            add_record_tasks(with_rule, rec, record_verdict(streamed.findings, rule).label)
        subset = rec.subset or "?"
        for true, pred in score_events(rec, streamed.cycles, 8000.0):
            collected.add("1-2", subset, rec.patient, true, pred)
            collected.add("1-1", subset, rec.patient, to_task_label("1-1", true),
                          to_task_label("1-1", pred))
    # The weights hash does not cover the peak picking, so its settings are reported too.
    settings = {k: str(v) if isinstance(v, Path) else v
                for k, v in asdict(DetectorConfig()).items()}
    report = {"recordings": len(recordings), "detected_cycles": n_cycles,
              "detector": {**detector, "settings": settings},
              "results": summarise(collected, n_boot)}
    if rule is not None:
        report["results_rule"] = summarise(with_rule, n_boot)
    return report


# ------------------------------------------------------------- record rule on detected cycles

DETECTED_VALIDATION = "detected-validation"
CHOSEN_VALIDATION = "chosen-validation"


@dataclass(frozen=True)
class DetectedRuleFit:
    """The record verdict fitted on the detected cycles of a run's validation records."""

    rule: VerdictRule
    scores: dict[str, float]  # validation 2-1, 2-2 and mean of the fitted verdict
    manifest_rule_scores: dict[str, float]  # the same records under the manifest's rule
    records: tuple[str, ...]  # keys of the validation recordings streamed
    val_fraction: float
    seed: int
    choice: dict | None = None  # with a choice: both forms' cross-validated scores

    def to_dict(self) -> dict:
        fit = {"on": "cycles the streaming pipeline detects in the patient-disjoint "
                     "validation split of SPRSound train (record labels)",
               "objective": "mean of BioCAS Scores of tasks 2-1 and 2-2",
               "val_fraction": self.val_fraction, "seed": self.seed,
               "records": len(self.records), "validation_scores": self.scores,
               "manifest_rule_validation_scores": self.manifest_rule_scores}
        if self.choice is not None:
            fit["choice"] = self.choice
        return {"rule": self.rule.to_dict(), "fit": fit}


def detected_validation_findings(model: CycleModel, data_root: Path, val_fraction: float,
                                 seed: int) -> tuple[list[Recording], list[list[CycleFinding]]]:
    """A run's validation records and, per record, the cycles the edge's record would count
    when the record is replayed through the pipeline. No test recording is read."""
    records = validation_records(data_root, val_fraction, seed)
    if any(r.split != "train" for r in records):
        raise DataError("a validation record outside SPRSound train: refusing to fit on it")
    return records, [stream_record(model, r).findings for r in records]


def fit_rule_on_detected_validation(model: CycleModel, data_root: Path, val_fraction: float,
                                    seed: int, *, choose: bool = False) -> DetectedRuleFit:
    """Fit the record verdict on what the bedside sees: detected cycles, not tiled windows.

    Each validation recording (:func:`verdict_fit.validation_records`, the split
    ``steth-export`` fits the manifest's verdict on) is replayed through the pipeline as the
    test recordings are. Without ``choose`` the grid of :func:`verdict_fit.fit_verdict_rule`
    is searched; with it, the counting rule and the learned verdict are cross-validated
    over the validation patients and the better one is refitted on them all
    (:func:`verdict_fit.choose_verdict`).
    """
    records, findings = detected_validation_findings(model, data_root, val_fraction, seed)
    labels = [str(r.record_label) for r in records]
    choice = None
    if choose:
        chosen = choose_verdict(findings, labels, [r.patient for r in records])
        rule, scores = chosen.rule, chosen.fitted_scores
        choice = {"kind": chosen.kind, "cross_validated": chosen.cv_scores,
                  "folds": CV_FOLDS}
    else:
        rule, scores = fit_verdict_rule(findings, labels)
    return DetectedRuleFit(rule, scores,
                           record_task_scores(findings, labels, model.manifest.verdict_rule),
                           tuple(r.key for r in records), val_fraction, seed, choice)


def load_rule(path: Path) -> VerdictRule:
    """A record rule from a JSON file: its fields, a manifest (``verdict_rule``) or a report
    of this command (``verdict_rule_fit.rule``)."""
    try:
        data = json.loads(path.read_text())
        if "verdict_rule_fit" in data:
            data = data["verdict_rule_fit"]["rule"]
        elif "verdict_rule" in data:
            data = data["verdict_rule"]
        return VerdictRule(**data)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: no record rule there ({exc})") from exc


def _score_ci(entry: dict) -> str:
    return (f"{entry['score']:.3f} ({_ci(entry)})" if entry.get("ci95")
            else f"{entry['score']:.3f}")


def record_rule_table(tiled: dict, streamed: dict, with_rule: dict, rule_title: str) -> str:
    """Markdown: the combined record tasks tiled, streamed, and streamed under ``rule_title``
    (score with its 95 % patient-bootstrap interval; streamed - tiled in points)."""
    rows = [f"| record task | tiled | streamed (manifest rule) | streamed ({rule_title}) |",
            "|---|---|---|---|"]
    for task in ("2-1", "2-2"):
        ref = tiled.get(task, {}).get("combined")
        cells = [_score_ci(ref) if ref else "-"]
        for results in (streamed, with_rule):
            entry = results[task]["combined"]
            gap = f", {100 * (entry['score'] - ref['score']):+.1f} pts" if ref else ""
            cells.append(_score_ci(entry) + gap)
        rows.append(f"| {task} (combined) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def record_summary(report: dict, tiled: dict) -> dict:
    """The numeric ``summary``: combined 2-1 and 2-2 per way of forming the verdict."""
    ways = {"tiled": tiled, "streamed_manifest_rule": report["results"],
            "streamed_rule": report.get("results_rule", {})}
    summary: dict = {"recordings": report["recordings"],
                     "detected_cycles": report["detected_cycles"]}
    for task in ("2-1", "2-2"):
        summary[task] = {way: float(results[task]["combined"]["score"])
                         for way, results in ways.items() if task in results}
    return summary


# ---------------------------------------------------------------------------- ICBHI

ICBHI_IOU = 0.5  # steth-detect-eval's ICBHI pairing threshold
ICBHI_MATCHING_RULE = ("detected and annotated cycles paired one-to-one, greedily by "
                       "decreasing IoU; a pair counts at IoU >= 0.5 (steth-detect-eval's "
                       "ICBHI rule)")
KINDS = ("paired", "all_annotated", "annotated")
KIND_TITLES = {"paired": "paired cycles (streamed finding)",
               "all_annotated": "all annotated (unpaired = Normal)",
               "annotated": "annotated boundaries (steth-bench)"}
ALL_DEVICES = "all devices"
SETTINGS_FROM = {
    True: "tuned on the other detector folds' held-out scores (steth-detect-eval --tune)",
    False: "shipped (steth-detect-eval --cv --tune 60 on the held-out scores of all the "
           "ICBHI training recordings)"}


@dataclass
class CyclePairs:
    """One recording's annotated and detected cycles, paired one-to-one.

    Attributes
    ----------
    paired : list of (str, str)
        (annotated class, finding shown on its detected cycle) of each pair.
    missed : list of str
        Classes of the annotated cycles no detected cycle was paired with.
    unannotated : list of str
        Findings shown on the detected cycles paired with no annotated cycle.
    paired_detected : list of int
        The detected cycle of each pair (its index in the detected list).
    """

    paired: list[tuple[str, str]]
    missed: list[str]
    unannotated: list[str]
    paired_detected: list[int] = field(default_factory=list)

    def all_annotated(self) -> list[tuple[str, str]]:
        """Every annotated cycle; one never detected counts as predicted Normal, which is
        what a clinician watching the screen is left with for it."""
        return self.paired + [(label, "Normal") for label in self.missed]


def pair_cycles(detected: Sequence[Interval], findings: Sequence[str],
                annotated: Sequence[Interval], labels: Sequence[str]) -> CyclePairs:
    """Pair detected cycles (with their findings) and annotated ones (with their classes).

    Parameters
    ----------
    detected, annotated : sequences of (start s, end s)
        The cycles on each side.
    findings, labels : sequences of str
        The finding of each detected cycle, the class of each annotated one.
    """
    pairs = sorted(match(list(detected), list(annotated), ICBHI_IOU), key=lambda p: p[1])
    used_detected = {i for i, _ in pairs}
    used_annotated = {j for _, j in pairs}
    return CyclePairs([(labels[j], findings[i]) for i, j in pairs],
                      [label for j, label in enumerate(labels) if j not in used_annotated],
                      [f for i, f in enumerate(findings) if i not in used_detected],
                      [i for i, _ in pairs])


@dataclass
class RecordingResult:
    """What one ICBHI recording gave, and which models scored it."""

    rec: Recording
    pairs: CyclePairs
    annotated: list[tuple[str, str]]  # (class, finding) on the annotated boundaries
    detected: int
    paired_settling: int = 0  # paired cycles in the normaliser's warm-up (no finding on screen)
    paired_poor: int = 0  # paired cycles of poor quality (their finding is not in the verdict)
    classifier: dict = field(default_factory=dict)  # file, sha256, fold, in_sample
    detector: dict = field(default_factory=dict)  # name, version, hash, fold, in_sample


@dataclass(frozen=True)
class Scorer:
    """The classifier and detector chosen for one recording."""

    model_path: Path
    classifier_fold: str | None  # the held-out device of a leave-one-device-out fold
    classifier_in_sample: bool | None  # None: steth-bench's rule on the model's manifest
    detector: DetectorConfig | None  # None: the embedded detector
    detector_fold: int | None
    detector_in_sample: bool
    detector_tuned: bool = False  # peak picking tuned without this fold's patients


def detector_in_sample(weights: Path | None, rec: Recording) -> bool:
    """Whether the detector trained on ``rec``, read from its manifest's training record.

    A cross-validation fold lists the patients it never saw; the final fit (the embedded
    weights) trained on every ICBHI training recording. No detector trains on the test half.
    """
    from steth.edge.assets import default_detector_path
    from steth.edge.segment import MANIFEST_SUFFIX

    where = Path(str(weights or default_detector_path()) + MANIFEST_SUFFIX)
    try:
        trained_on = json.loads(where.read_text()).get("trained_on", {})
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise DataError(f"{where}: cannot read the detector manifest ({exc})") from exc
    if rec.split != "train":
        return False
    if "held_out_patients" in trained_on:
        return rec.patient not in trained_on["held_out_patients"]
    return bool(trained_on.get("icbhi_train_recordings", 1))


def detector_folds(run: Path) -> list[tuple[Path, frozenset[str]]]:
    """(weights, held-out patients) of each fold of ``steth-detector-train --cv``."""
    where = run / "folds.json"
    try:
        folds = [(Path(f["weights"]), frozenset(f["held_out_patients"]))
                 for f in json.loads(where.read_text())["folds"]]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{where}: no detector cross-validation run there (make it with "
                        f"steth-detector-train models/configs/detector.toml --cv --out {run})"
                        ) from exc
    for weights, _ in folds:
        if not weights.is_file():
            raise DataError(f"{weights}: detector fold weights missing (make them with "
                            f"steth-detector-train models/configs/detector.toml --cv "
                            f"--out {run})")
    return folds


def detector_fold_for(rec: Recording, folds: list[tuple[Path, frozenset[str]]],
                      run: Path) -> tuple[int, Path]:
    """The index and weights of the detector fold that holds out ``rec``'s patient."""
    for k, (weights, held_out) in enumerate(folds):
        if rec.patient in held_out:
            return k, weights
    raise DataError(f"{rec.rec_id}: patient {rec.patient} is held out by no fold of "
                    f"{run / 'folds.json'} (its folds cover the ICBHI training half)")


def lodo_model_for(cfg: TrainConfig, config_path: Path, rec: Recording,
                   folds: dict) -> tuple[Path, bool]:
    """The int8 model of the fold of recipe ``cfg`` that never heard ``rec``'s stethoscope,
    and whether that fold trained on ``rec``'s patient (never, in the training half)."""
    from steth.models.train import fold_config, fold_model

    fold = folds.get(rec.device)
    if fold is None:
        raise DataError(f"{rec.rec_id}: no leave-one-device-out fold holds out {rec.device} "
                        "(the ICBHI training half has no recording from it)")
    path = fold_model(fold_config(cfg, fold))
    if not path.is_file():
        raise DataError(f"{path}: fold model missing (make it with steth-lodo {config_path} "
                        f"--folds {rec.device})")
    return path, rec.patient in {r.patient for r in fold.train}


def plan_scorers(recordings: list[Recording], model_path: Path, data_root: Path, *,
                 lodo_config: Path | None = None, detector_cv: Path | None = None,
                 detector_tune: int = 0) -> list[Scorer]:
    """Which classifier and detector score each recording, checked before any streaming.

    With ``detector_tune`` trials, each detector fold's peak-picking settings are tuned on
    the other folds' held-out scores (``steth-detect-eval --cv RUN --tune``); otherwise
    every fold uses the shipped settings.

    Raises
    ------
    DataError
        A fold model or file is missing; the message names the command that makes it.
    """
    folds: dict = {}
    cfg = None
    if lodo_config is not None:
        from steth.models.folds import build_folds
        from steth.models.train import TrainConfig

        try:
            cfg = TrainConfig.from_toml(lodo_config)
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"{lodo_config}: cannot read the leave-one-device-out recipe "
                            f"({exc})") from exc
        folds = {f.held_out: f for f in build_folds(load_icbhi(data_root, "train"))}
    det_folds = detector_folds(detector_cv) if detector_cv is not None else []
    settings: dict[str, dict] = {}
    if detector_cv is not None and detector_tune:
        from steth.models.detect_eval import cross_validate

        _, per_fold, _ = cross_validate(detector_cv, load_icbhi(data_root, "train"),
                                        DetectorConfig(), detector_tune)
        settings = {str(Path(fold["weights"])): fold["settings"] for fold in per_fold}
    plan = []
    for rec in recordings:
        path, fold, classifier_in = model_path, None, None
        if cfg is not None and lodo_config is not None:
            path, classifier_in = lodo_model_for(cfg, lodo_config, rec, folds)
            fold = rec.device
        detector, det_fold = None, None
        if detector_cv is not None:
            det_fold, weights = detector_fold_for(rec, det_folds, detector_cv)
            detector = replace(DetectorConfig(weights=weights),
                               **settings.get(str(weights), {}))
        plan.append(Scorer(path, fold, classifier_in, detector, det_fold,
                           detector_in_sample(detector.weights if detector else None, rec),
                           bool(settings)))
    return plan


def score_recording(rec: Recording, model: CycleModel, scorer: Scorer) -> RecordingResult:
    """Stream one recording, pair its cycles, and score its annotated boundaries."""
    events = stream_recording(model, rec, scorer.detector)
    cycles = [e for e in events if e["type"] == "cycle"]
    hello = next(e for e in events if e["type"] == "hello")
    pairs = pair_cycles([(c["start"] / c["rate_hz"], c["end"] / c["rate_hz"]) for c in cycles],
                        [c["finding"] for c in cycles], [(e.start, e.end) for e in rec.events],
                        [e.label for e in rec.events])
    one = Collected()
    score_icbhi(model, [rec], one, lambda: None)
    annotated = [(true, pred) for group in one.by_device.values() for _, true, pred in group]
    weights = scorer.detector.weights if scorer.detector else None
    in_sample = scorer.classifier_in_sample
    if in_sample is None:
        in_sample = trained_on_icbhi_train(model, rec.split)
    paired = [cycles[i] for i in pairs.paired_detected]
    return RecordingResult(
        rec, pairs, annotated, len(cycles),
        sum(bool(c["quality"]["settling"]) for c in paired),
        sum(c["quality"]["status"] == "poor" for c in paired),
        classifier={"file": str(scorer.model_path), "sha256": model.manifest.weights_sha256,
                    "name": model.manifest.name, "version": model.manifest.version,
                    "fold": (f"without-{scorer.classifier_fold}"
                             if scorer.classifier_fold else None),
                    "in_sample": in_sample},
        detector={**hello["detector"], "weights": str(weights) if weights else "embedded",
                  "fold": scorer.detector_fold, "in_sample": scorer.detector_in_sample,
                  "settings": {k: getattr(scorer.detector or DetectorConfig(), k)
                               for k in SEARCH_SPACE},
                  "settings_from": SETTINGS_FROM[scorer.detector_tuned]})


def evaluate_icbhi(recordings: list[Recording], plan: list[Scorer], n_boot: int = 1000
                   ) -> dict:
    """Stream every recording with its planned models; :func:`summarise_icbhi`'s report."""
    models: dict[Path, CycleModel] = {}
    results = []
    for rec, scorer in zip(recordings, plan, strict=True):
        if scorer.model_path not in models:
            models[scorer.model_path] = CycleModel(
                scorer.model_path, expected_feature_hash=FeatureConfig().hash())
        results.append(score_recording(rec, models[scorer.model_path], scorer))
    return summarise_icbhi(results, n_boot)


def kind_items(result: RecordingResult, kind: str) -> list[tuple[str, str]]:
    """(annotated class, finding) of one recording's cycles scored as ``kind``."""
    if kind == "paired":
        return result.pairs.paired
    if kind == "all_annotated":
        return result.pairs.all_annotated()
    return result.annotated


def counts(labels: Sequence[str]) -> dict[str, int]:
    """Counts per 4-class name, every class listed."""
    tally = Counter(labels)
    return {name: tally.get(name, 0) for name in FOUR_CLASSES}


def in_sample_label(flags: Sequence[bool], honest: str) -> str:
    """``IN-SAMPLE`` when every recording was, ``k/n IN-SAMPLE`` when some, else ``honest``."""
    k = sum(flags)
    if k == 0:
        return honest
    return "IN-SAMPLE" if k == len(flags) else f"{k}/{len(flags)} IN-SAMPLE"


def group_summary(name: str, results: list[RecordingResult], n_boot: int) -> dict:
    """Three Scores, what was left unpaired and the in-sample labels of one device group."""
    rows = {}
    for kind in KINDS:
        items = [(f"icbhi:{r.rec.patient}", t, p) for r in results for t, p in kind_items(r, kind)]
        rows[kind] = device_rows({("icbhi", name): items}, n_boot)[0]
    missed = [m for r in results for m in r.pairs.missed]
    unannotated = [u for r in results for u in r.pairs.unannotated]
    classifier_honest = ("held-out device" if all(r.classifier.get("fold") for r in results)
                         else "not trained on it")
    detector_honest = ("held-out patients" if all(r.detector.get("fold") is not None
                                                   for r in results) else "not trained on it")
    return {"device": name, "recordings": len(results),
            "annotated_cycles": sum(len(r.rec.events) for r in results),
            "detected_cycles": sum(r.detected for r in results),
            "paired_cycles": sum(len(r.pairs.paired) for r in results),
            "paired_settling": sum(r.paired_settling for r in results),
            "paired_poor_quality": sum(r.paired_poor for r in results),
            **rows,
            "not_paired": {
                "annotated_never_detected": {"count": len(missed), "by_class": counts(missed)},
                "detected_without_annotation": {"count": len(unannotated),
                                                "by_finding": counts(unannotated)}},
            "classifier": in_sample_label([r.classifier["in_sample"] for r in results],
                                          classifier_honest),
            "detector": in_sample_label([r.detector["in_sample"] for r in results],
                                        detector_honest),
            "in_sample": any(r.classifier["in_sample"] or r.detector["in_sample"]
                             for r in results)}


def summarise_icbhi(results: list[RecordingResult], n_boot: int) -> dict:
    """The report: a numeric ``summary``, all devices, per device and per recording."""
    by_device: dict[str, list[RecordingResult]] = {}
    for r in results:
        by_device.setdefault(recording_device(r.rec), []).append(r)
    overall = group_summary(ALL_DEVICES, results, n_boot)
    halves = sorted({r.rec.split for r in results})
    return {
        "split": "icbhi", "icbhi_half": "+".join(halves), "matching_rule": ICBHI_MATCHING_RULE,
        "unpaired_annotated_counts_as": "Normal",
        "summary": {**{kind: float(overall[kind]["score"]) for kind in KINDS},
                    "recordings": overall["recordings"],
                    "annotated_cycles": overall["annotated_cycles"],
                    "detected_cycles": overall["detected_cycles"],
                    "paired_cycles": overall["paired_cycles"],
                    "in_sample": overall["in_sample"]},
        "overall": overall,
        "per_device": [group_summary(name, group, n_boot)
                       for name, group in sorted(by_device.items())],
        "per_recording": [{"recording": r.rec.rec_id, "device": recording_device(r.rec),
                           "patient": r.rec.patient, "half": r.rec.split,
                           "annotated_cycles": len(r.rec.events), "detected_cycles": r.detected,
                           "paired_cycles": len(r.pairs.paired),
                           "classifier": r.classifier, "detector": r.detector}
                          for r in results],
    }


def _ci(row: dict) -> str:
    ci = row.get("ci95")
    return f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "-"


def _class_counts(tally: dict[str, int]) -> str:
    return " / ".join(str(tally[name]) for name in FOUR_CLASSES)


def icbhi_table(report: dict) -> str:
    """Markdown: the three Scores per device group, then what was left unpaired."""
    groups = [report["overall"], *report["per_device"]]
    rows = ["| device | cycles | scored on | SE | SP | Score | 95% CI | classifier | detector |",
            "|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        for kind in KINDS:
            row = g[kind]
            detector = "-" if kind == "annotated" else g["detector"]
            rows.append(f"| {g['device']} | {row['cycles']} | {KIND_TITLES[kind]} | "
                        f"{row['se']:.3f} | {row['sp']:.3f} | {row['score']:.3f} | {_ci(row)} | "
                        f"{g['classifier']} | {detector} |")
    names = " / ".join(FOUR_CLASSES)
    rows += ["", f"| device | recordings | annotated | detected | paired (settling / poor) | "
                 f"annotated never paired ({names}) | detected without annotation, by "
                 f"finding ({names}) |",
             "|---|---|---|---|---|---|---|"]
    for g in groups:
        missed = g["not_paired"]["annotated_never_detected"]
        extra = g["not_paired"]["detected_without_annotation"]
        rows.append(f"| {g['device']} | {g['recordings']} | {g['annotated_cycles']} | "
                    f"{g['detected_cycles']} | {g['paired_cycles']} "
                    f"({g['paired_settling']} / {g['paired_poor_quality']}) | {missed['count']} "
                    f"({_class_counts(missed['by_class'])}) | {extra['count']} "
                    f"({_class_counts(extra['by_finding'])}) |")
    return "\n".join(rows)


def models_used(per_recording: list[dict]) -> list[str]:
    """One line per distinct classifier file and detector, with the recordings each scored."""
    lines = []
    for side, what in (("classifier", ("file", "sha256")), ("detector", ("weights", "hash"))):
        used: dict[tuple[str, str], int] = {}
        for r in per_recording:
            key = (r[side][what[0]], r[side][what[1]][:12])
            used[key] = used.get(key, 0) + 1
        for (where, digest), n in sorted(used.items()):
            lines.append(f"{side}: {where} (SHA-256 {digest}…) scored {n} recordings")
    settings = {r["detector"]["settings_from"] for r in per_recording}
    lines += [f"detector peak picking: {s}" for s in sorted(settings)]
    return lines


def icbhi_recordings(root: Path, half: str) -> list[Recording]:
    """The ICBHI recordings with audio of ``half``; ``auto``: the test half when its audio is
    there (an official download), otherwise the training half (the shared data folder)."""
    if half == "auto":
        recordings = load_icbhi(root, "test")
        if not recordings:
            recordings = load_icbhi(root, "train")
    else:
        recordings = load_icbhi(root, half)
    if not recordings:
        raise DataError(f"{root}: no ICBHI recordings with audio"
                        + ("" if half == "auto" else f" in the {half} half"))
    return recordings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-stream-eval",
        description="Replay test recordings through the whole edge pipeline (no annotated "
                    "boundaries) and score the streamed findings: SPRSound test (tasks and "
                    "verdicts) or ICBHI cycles paired at IoU >= 0.5 (--split icbhi).")
    parser.add_argument("model", type=Path, nargs="?", default=None,
                        help="model file with its manifest (default: the embedded one)")
    parser.add_argument("--split", choices=("sprsound", "icbhi"), default="sprsound",
                        help="SPRSound test (default) or ICBHI recordings")
    parser.add_argument("--data", type=Path, default=default_data_root(),
                        help="data root (default: $STETH_DATA or ../shared/data)")
    parser.add_argument("--limit", type=int, default=0, help="first N recordings only")
    parser.add_argument("--annotated", type=Path,
                        help="SPRSound: steth-bench --json results of the same model: print "
                             "the streamed scores next to the annotated-boundary ones")
    parser.add_argument("--icbhi-split", choices=("auto", "test", "train"), default="auto",
                        help="ICBHI half (default auto: test when its audio is there, else "
                             "train, which is IN-SAMPLE for a model trained on it)")
    parser.add_argument("--lodo-config", type=Path, metavar="CONFIG",
                        help="ICBHI: score each recording with the steth-lodo fold model of "
                             "CONFIG that never heard its stethoscope")
    parser.add_argument("--detector-cv", type=Path, metavar="RUN",
                        help="ICBHI: detect each recording's cycles with the "
                             "steth-detector-train --cv fold (RUN/folds.json) that never saw "
                             "its patient")
    parser.add_argument("--detector-tune", type=int, default=0, metavar="TRIALS",
                        help="with --detector-cv: tune each fold's peak picking on the other "
                             "folds' held-out scores first (default 0: shipped settings)")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="patient resamples of the 95%% intervals (default 1000)")
    parser.add_argument("--verdict-rule",
                        metavar=f"FILE|{DETECTED_VALIDATION}|{CHOSEN_VALIDATION}",
                        help="SPRSound: also score the streamed record verdicts with another "
                             "record rule: a JSON file (rule fields, a manifest, or a --json "
                             f"report of this command), or {DETECTED_VALIDATION}: fit it first "
                             "on the cycles detected in the model's SPRSound validation "
                             "records (its manifest's split; never a test record) with "
                             f"steth-export's grid; or {CHOSEN_VALIDATION}: on the same cycles, "
                             "cross-validate that rule against the learned verdict over the "
                             "validation patients and keep the better; prints tiled | "
                             "streamed | streamed with it (tiled needs --annotated)")
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args(argv)
    if args.split == "icbhi":
        if args.verdict_rule:
            parser.error("--verdict-rule applies to the SPRSound record tasks")
        return main_icbhi(args)
    if args.lodo_config or args.detector_cv or args.detector_tune:
        parser.error("--lodo-config, --detector-cv and --detector-tune apply to --split icbhi")
    if args.bootstrap < 0:
        parser.error(f"--bootstrap cannot be negative ({args.bootstrap})")
    return main_sprsound(args)


def rule_for(arg: str, model: CycleModel, data_root: Path) -> tuple[VerdictRule, dict]:
    """The ``--verdict-rule`` rule and what to report of where it came from."""
    if arg not in (DETECTED_VALIDATION, CHOSEN_VALIDATION):
        rule = load_rule(Path(arg))
        return rule, {"rule": rule.to_dict(), "from": arg}
    fit = fit_rule_on_detected_validation(model, data_root,
                                          *manifest_validation_split(model.manifest.data),
                                          choose=arg == CHOSEN_VALIDATION)
    return fit.rule, fit.to_dict()


def main_sprsound(args: argparse.Namespace) -> int:
    """SPRSound test: stream, print the task table (and the record-rule table), write JSON."""
    try:
        model = CycleModel(args.model or default_model_path(),
                           expected_feature_hash=FeatureConfig().hash())
        recordings = load_sprsound(args.data, "test")
        annotated = json.loads(args.annotated.read_text())["results"] if args.annotated else {}
        rule, rule_fit = (rule_for(args.verdict_rule, model, args.data) if args.verdict_rule
                          else (None, None))
    except (ModelError, DataError, OSError, ValueError, KeyError) as exc:
        print(f"steth-stream-eval: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        recordings = recordings[:args.limit]
    report = evaluate(model, recordings, args.bootstrap, rule)
    report["model"] = {"file": str(args.model or default_model_path()),
                       "weights_sha256": model.manifest.data["weights_sha256"],
                       "version": model.manifest.version}
    report["manifest_rule"] = model.manifest.verdict_rule.to_dict()
    report["tiled_from"] = str(args.annotated) if args.annotated else None
    print(f"{report['recordings']} recordings, {report['detected_cycles']} detected cycles")
    print(comparison_table(report["results"], annotated))
    if rule is not None and rule_fit is not None:
        report["verdict_rule_fit"] = rule_fit
        title = {DETECTED_VALIDATION: "rule fitted on detected validation cycles",
                 CHOSEN_VALIDATION: "verdict chosen on detected validation cycles"
                 }.get(args.verdict_rule, f"rule of {args.verdict_rule}")
        print(f"manifest rule {report['manifest_rule']}; {title}: {rule.to_dict()}")
        if "fit" in rule_fit:
            fit = rule_fit["fit"]
            print(f"  fitted on {fit['records']} validation records: "
                  + _validation_line(fit["validation_scores"], "fitted rule") + "; "
                  + _validation_line(fit["manifest_rule_validation_scores"], "manifest rule"))
            if "choice" in fit:
                cv = fit["choice"]["cross_validated"]
                print(f"  {fit['choice']['folds']}-fold patient cross-validation: "
                      + _validation_line(cv["rule"], "counting rule") + "; "
                      + _validation_line(cv["learned"], "learned") + "; kept: "
                      + fit["choice"]["kind"])
        print(record_rule_table(annotated, report["results"], report["results_rule"], title))
    if args.json:
        report = {"summary": record_summary(report, annotated), **report}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _validation_line(scores: dict[str, float], name: str) -> str:
    return f"{name} 2-1 {scores['2-1']:.3f} 2-2 {scores['2-2']:.3f} mean {scores['mean']:.3f}"


def icbhi_option_problem(args: argparse.Namespace) -> str | None:
    """Options that cannot work together, found before any streaming."""
    if args.model is not None and args.lodo_config is not None:
        return "give a model file or --lodo-config, not both"
    if args.detector_tune and args.detector_cv is None:
        return "--detector-tune needs --detector-cv RUN (it tunes the fold detectors)"
    for option, value in (("--limit", args.limit), ("--bootstrap", args.bootstrap),
                          ("--detector-tune", args.detector_tune)):
        if value < 0:
            return f"{option} cannot be negative ({value})"
    if args.json is not None and not args.json.parent.is_dir():
        return f"--json {args.json}: folder {args.json.parent} does not exist"
    return None


def main_icbhi(args: argparse.Namespace) -> int:
    """``--split icbhi``: plan the models (failing early on a missing one), stream, print."""
    problem = icbhi_option_problem(args)
    if problem is not None:
        print(f"steth-stream-eval: {problem}", file=sys.stderr)
        return 2
    try:
        recordings = icbhi_recordings(args.data, args.icbhi_split)
        if args.limit:
            recordings = recordings[:args.limit]
        plan = plan_scorers(recordings, args.model or default_model_path(), args.data,
                            lodo_config=args.lodo_config, detector_cv=args.detector_cv,
                            detector_tune=args.detector_tune)
        report = evaluate_icbhi(recordings, plan, args.bootstrap)
    except (ModelError, DataError, DetectorWeightsError) as exc:
        print(f"steth-stream-eval: {exc}", file=sys.stderr)
        return 2
    s = report["summary"]
    print(f"ICBHI {report['icbhi_half']} half: {s['recordings']} recordings, "
          f"{s['annotated_cycles']} annotated cycles, {s['detected_cycles']} detected, "
          f"{s['paired_cycles']} paired ({report['matching_rule']})")
    print(icbhi_table(report))
    print("Paired cycles are scored by the finding their cycle event carries; settling: in the "
          "channel normaliser's warm-up (no finding on screen), poor: poor quality (left out "
          "of the verdict).")
    for line in models_used(report["per_recording"]):
        print(line)
    if s["in_sample"]:
        print("IN-SAMPLE: rows so marked were scored by a model that trained on those "
              "recordings (--lodo-config and --detector-cv give held-out folds)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def comparison_table(streamed: dict, annotated: dict) -> str:
    """Markdown rows: task, subset, streamed score, annotated-boundary score, difference."""
    rows = ["| task | subset | streamed | annotated boundaries | streamed - annotated |",
            "|---|---|---|---|---|"]
    for task in ("2-1", "2-2", "1-1", "1-2"):
        for subset, entry in streamed.get(task, {}).items():
            ref = annotated.get(task, {}).get(subset)
            cells = (f"{ref['score']:.3f} | {100 * (entry['score'] - ref['score']):+.1f} pts"
                     if ref else "- | -")
            rows.append(f"| {task} | {subset} | {entry['score']:.3f} | {cells} |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
