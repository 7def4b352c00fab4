"""Streaming evaluation (``steth-stream-eval``): SPRSound test recordings replayed through
the whole edge pipeline with no annotated boundaries.

Each recording is pushed as 256-sample device chunks into :class:`edge.pipeline.Pipeline`
(the DSP, the breath-cycle detector, the model and the record rule exactly as on the Pi).

- Record level (tasks 2-1, 2-2): the last streamed ``verdict`` event of the recording; a
  recording in which no cycle was found gets the rule's verdict for zero cycles (Poor
  Quality).
- Event level (tasks 1-1, 1-2), matching rule: each annotated event is given the finding of
  the detected cycle that overlaps it longest; an event that no detected cycle overlaps is
  scored as predicted Normal (a miss). The 7-class label is the cycle's subtype, or Normal /
  Wheeze+Crackle for Normal / Both findings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from steth.edge.features import FeatureConfig, float_to_pcm16
from steth.edge.infer import CycleModel, ModelError
from steth.edge.labels import POOR_QUALITY
from steth.edge.pipeline import stream_events
from steth.models.benchmark import Collected, summarise
from steth.models.datasets import DataError, Recording, default_data_root, load_audio, load_sprsound
from steth.models.metrics import to_task_label


def stream_recording(model: CycleModel, rec: Recording) -> list[dict]:
    """All events the pipeline emits for one recording."""
    audio, rate = load_audio(rec.audio_path)
    return stream_events(float_to_pcm16(audio), rate, model)


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


def evaluate(model: CycleModel, recordings: list[Recording], n_boot: int = 200) -> dict:
    """Streamed scores per task and subset, summarised exactly as the benchmark does."""
    collected = Collected()
    n_cycles = 0
    for rec in recordings:
        out = stream_recording(model, rec)
        cycles = [e for e in out if e["type"] == "cycle"]
        n_cycles += len(cycles)
        verdicts = [e for e in out if e["type"] == "verdict"]
        verdict = verdicts[-1]["verdict"] if verdicts else POOR_QUALITY
        assert rec.record_label is not None
        subset = rec.subset or "?"
        collected.add("2-2", subset, rec.patient, rec.record_label, verdict)
        collected.add("2-1", subset, rec.patient, to_task_label("2-1", rec.record_label),
                      to_task_label("2-1", verdict))
        for true, pred in score_events(rec, cycles, 8000.0):
            collected.add("1-2", subset, rec.patient, true, pred)
            collected.add("1-1", subset, rec.patient, to_task_label("1-1", true),
                          to_task_label("1-1", pred))
    return {"recordings": len(recordings), "detected_cycles": n_cycles,
            "results": summarise(collected, n_boot)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-stream-eval",
        description="Replay SPRSound test recordings through the whole edge pipeline (no "
                    "annotated boundaries) and score the streamed findings and verdicts.")
    parser.add_argument("model", type=Path, help="model file with its manifest")
    parser.add_argument("--data", type=Path, default=default_data_root())
    parser.add_argument("--limit", type=int, default=0, help="first N recordings only")
    parser.add_argument("--annotated", type=Path,
                        help="steth-bench --json results of the same model: print the streamed "
                             "scores next to the annotated-boundary ones")
    parser.add_argument("--json", type=Path, help="write the full report here")
    args = parser.parse_args(argv)
    try:
        model = CycleModel(args.model, expected_feature_hash=FeatureConfig().hash())
        recordings = load_sprsound(args.data, "test")
        annotated = json.loads(args.annotated.read_text())["results"] if args.annotated else {}
    except (ModelError, DataError, OSError, ValueError, KeyError) as exc:
        print(f"steth-stream-eval: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        recordings = recordings[:args.limit]
    report = evaluate(model, recordings)
    print(f"{report['recordings']} recordings, {report['detected_cycles']} detected cycles")
    print(comparison_table(report["results"], annotated))
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
