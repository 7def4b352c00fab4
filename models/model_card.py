"""Generate a model card from a model's manifest and its saved benchmark results
(``steth-model-card``).

Every number in the card comes from a file: the manifest (thresholds, calibration, verdict
rule, training set-up, hashes) and the JSON written by ``steth-bench --json`` for each signal
condition (clean, front-end, 12-bit, ADPCM, ±12 dB), plus an optional seeds summary. The card
also records the score of a fixed, unselected slice of the test set, measured when the card is
generated, so a test can hold the committed model to its own card.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from steth.edge.features import FeatureConfig
from steth.edge.infer import ModelError
from steth.edge.manifest import ManifestError, load_manifest
from steth.models import TRAINING_OUTPUTS
from steth.models.datasets import DataError, default_data_root

TASKS = ("1-1", "1-2", "2-1", "2-2", "icbhi")
TASK_NAMES = {"1-1": "event, Normal vs Adventitious", "1-2": "event, 7 classes",
              "2-1": "record, Normal/Adventitious/Poor", "2-2": "record, 5 classes",
              "icbhi": "ICBHI Score, events mapped to 4 classes"}
CONDITIONS = ("clean", "afe", "q12", "adpcm", "gain+12", "gain-12")
CONDITION_NAMES = {"clean": "as recorded", "afe": "analog front-end response (hardware/)",
                   "q12": "12-bit quantisation", "adpcm": "IMA-ADPCM round trip (BLE link)",
                   "gain+12": "+12 dB gain", "gain-12": "-12 dB gain"}
SLICE_RECORDINGS = 60  # the first 60 SPRSound test recordings, sorted by id: never selected
INTENDED_USE = ("Decision aid: reports crackle and wheeze findings per breath cycle to support "
                "a clinician's auscultation. It does not diagnose.")




def card_paths(model_path: Path, out_dir: Path = TRAINING_OUTPUTS) -> tuple[Path, Path]:
    stem = model_path.name.split(".")[0]
    return (out_dir / f"{stem}.card.md", out_dir / f"{stem}.card.json")


def results_path(results_dir: Path, model_path: Path, condition: str) -> Path:
    return results_dir / f"{model_path.name}.{condition}.json"


def load_results(results_dir: Path, model_path: Path) -> dict[str, dict]:
    found = {}
    for condition in CONDITIONS:
        path = results_path(results_dir, model_path, condition)
        if path.is_file():
            found[condition] = json.loads(path.read_text())
    if "clean" not in found:
        raise DataError(f"no clean benchmark results at "
                        f"{results_path(results_dir, model_path, 'clean')}: run steth-bench "
                        f"{model_path} --json <that path> first")
    return found


def measure_slice(model_path: Path, data_root: Path) -> dict[str, float]:
    from steth.models.benchmark import run

    report = run(model_path, data_root, "combined", limit=SLICE_RECORDINGS, n_boot=10,
                 show_progress=False)
    return {task: report["results"][task]["combined"]["score"] for task in TASKS
            if task in report["results"]}


def _score(entry: dict) -> str:
    lo, hi = entry.get("ci95") or (None, None)
    ci = f" ({lo:.3f}–{hi:.3f})" if lo is not None else ""
    return f"{entry['score']:.3f}{ci}"


def metrics_section(clean: dict) -> list[str]:
    lines = ["## Metrics (SPRSound 2022 official test set)", "",
             "Score = BioCAS Score (mean of the average and harmonic scores of sensitivity "
             "and specificity); 95 % intervals from a patient bootstrap. Event tasks use the "
             "annotated event boundaries; record tasks tile the whole recording into model "
             "windows and apply the record rule below, with no annotations.", "",
             "| task | inter | intra | combined (95 % CI) | all-Normal |",
             "|---|---|---|---|---|"]
    for task in TASKS:
        r = clean["results"].get(task)
        if not r:
            continue
        lines.append(f"| {task}: {TASK_NAMES[task]} | {r['inter']['score']:.3f} | "
                     f"{r['intra']['score']:.3f} | {_score(r['combined'])} | "
                     f"{r['combined']['all_normal_score']:.3f} |")
    sub = clean["results"].get("1-2", {}).get("combined")
    if sub:
        counts = [sum(row) for row in sub["confusion"]]
        lines += ["", "Per-class recall, task 1-2 (combined; n = test events):", "",
                  "| class | n | recall |", "|---|---|---|"]
        for label, n in zip(sub["labels"], counts, strict=True):
            recall = sub["per_class_recall"].get(label)
            lines.append(f"| {label} | {n} | {'-' if recall is None else f'{recall:.2f}'} |")
    return lines


def robustness_section(results: dict[str, dict]) -> list[str]:
    clean = results["clean"]["results"]
    lines = ["## Robustness to the product's signal chain", "",
             "The test audio passes through part of the chain first (`steth-bench "
             "--condition`, models/robustness.py). Change is against clean, in points of "
             "the combined BioCAS Score.", "",
             "| condition | 1-1 | 1-2 | 2-1 | 2-2 |", "|---|---|---|---|---|"]
    for condition in CONDITIONS:
        if condition not in results:
            lines.append(f"| {CONDITION_NAMES[condition]} | not measured | | | |")
            continue
        cells = []
        for task in ("1-1", "1-2", "2-1", "2-2"):
            score = results[condition]["results"][task]["combined"]["score"]
            delta = 100 * (score - clean[task]["combined"]["score"])
            cells.append(f"{score:.3f}" + ("" if condition == "clean" else f" ({delta:+.1f})"))
        lines.append(f"| {CONDITION_NAMES[condition]} | " + " | ".join(cells) + " |")
    return lines


def seeds_section(seeds: dict | None) -> list[str]:
    if not seeds:
        return ["## Seeds", "", "Only the committed seed was benchmarked."]
    lines = ["## Seeds (same recipe, different seeds)", "",
             f"{seeds['note']}", "", "| task | " + " | ".join(seeds["seeds"]) +
             " | mean ± std |", "|---|" + "---|" * (len(seeds["seeds"]) + 1)]
    if "validation_mean" in seeds:
        lines.append("| validation (mean of 1-1, 1-2; selects the seed) | " +
                     " | ".join(f"{v:.3f}" for v in seeds["validation_mean"]) + " | |")
    for task, values in seeds["scores"].items():
        mean = statistics.mean(values)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(f"| {task} | " + " | ".join(f"{v:.3f}" for v in values) +
                     f" | {mean:.3f} ± {std:.3f} |")
    return lines


def card_markdown(manifest: dict, results: dict[str, dict], slice_scores: dict[str, float],
                  seeds: dict | None) -> str:
    meta = results["clean"]["meta"]
    cal = manifest["calibration"]
    training = manifest["training"]
    rule_fit = training.get("verdict_rule_fit", {})
    lines = [
        f"# Model card: {manifest['name']} {manifest['version']} ({manifest['precision']})",
        "", "Generated by `steth-model-card` from the manifest and saved benchmark results; "
        "do not edit by hand.", "", f"**Intended use.** {INTENDED_USE}", "",
        "## Model", "",
        f"- File `{manifest['weights_file']}`, {meta['file_bytes'] / 1024:.0f} KiB, SHA-256 "
        f"`{manifest['weights_sha256'][:16]}…`; {meta['parameters']} parameters.",
        f"- Input: {manifest['input']['shape']} log-mel frames ({manifest['input']['layout']}), "
        f"feature config hash `{manifest['feature_hash']}`, {manifest['sample_rate']} Hz.",
        "- Outputs: crackle and wheeze probabilities (sigmoid; the 4 product classes Normal / "
        "Crackle / Wheeze / Both), a 7-way SPRSound event subtype, and a Poor Quality "
        "probability.",
        f"- Speed on this machine (one thread, ONNX Runtime): median "
        f"{meta['cycle_ms_median']:.2f} ms, p95 {meta['cycle_ms_p95']:.2f} ms per cycle.",
        "", "## Training data and population", "",
        f"- {training['data']}.",
        "- SPRSound: children aged 1 month to 18 years, one hospital, one electronic "
        "stethoscope (Yunting model II), 8 kHz. ICBHI: 43 recordings, mostly adults, four "
        "devices. Adults are therefore a small minority of the training data.",
        f"- Model selection: {training['validation']}; nothing was selected on a test set.",
        "- Rare classes: the sampler draws samples with weight 1/sqrt(class frequency) and the "
        "subtype loss uses the same weights, so rare subtypes are seen more without being "
        "repeated to memorisation. Stridor, Wheeze+Crackle and Rhonchi have only 2–17 test "
        "events, so their recalls below rest on a handful of events.",
        "", "## Decision thresholds and calibration", "",
        f"- Thresholds: {manifest['thresholds']} (fit on validation for tasks 1-1 and 1-2).",
        f"- Calibration: {cal['method']}; temperatures {cal['temperature']}. Expected "
        f"calibration error of the findings on validation: {cal.get('ece_raw', float('nan')):.3f}"
        f" raw, {cal.get('ece_calibrated', float('nan')):.3f} calibrated. "
        + ("The product shows probabilities." if cal.get("calibrated") else
           "The product shows coarse levels only."),
        f"- Record rule: {manifest['verdict_rule']}"
        + (f", fit on {rule_fit['records']} validation records "
           f"(validation 2-1 {rule_fit['validation_scores']['2-1']:.3f}, "
           f"2-2 {rule_fit['validation_scores']['2-2']:.3f})." if rule_fit else "."),
        "", *metrics_section(results["clean"]), "",
        *robustness_section(results), "", *seeds_section(seeds), "",
        "## Fixed test slice (held by tests/models/test_exports.py)", "",
        f"First {SLICE_RECORDINGS} SPRSound test recordings (sorted ids), combined: "
        + ", ".join(f"{t} {s:.3f}" for t, s in slice_scores.items()) + ".",
        "", "## Known limits", "",
        "- Not yet validated on audio from our own sensor; see docs/device_validation.md.",
        "- Trained on one paediatric data set from one hospital and device; performance on "
        "adults, other chest pieces and other populations is unknown beyond the 43 ICBHI "
        "recordings used in training.",
        "- Rare subtypes (Stridor, Wheeze+Crackle, Coarse Crackle, Rhonchi) are poorly "
        "recognised; the product's 4-class finding is the supported output.",
        "- Poor Quality records are mostly not recognised as such (see the 2-2 confusion in "
        "the benchmark JSON); a separate signal-quality check in the edge pipeline flags "
        "clipping and contact loss.",
        "- The record rule was fit on tiled windows; the live product applies it to detected "
        "breath cycles, which differ (see steth-stream-eval).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-model-card",
        description="Write <name>.card.md and .card.json (in models/exports by default) for "
                    "an exported model, from its manifest and the steth-bench JSON results.")
    parser.add_argument("model", type=Path, help="e.g. edge/assets/breathnet.int8.onnx")
    parser.add_argument("--results", type=Path, default=None,
                        help="folder of <model file>.<condition>.json from steth-bench "
                             "(default: models/exports/results)")
    parser.add_argument("--out", type=Path, default=TRAINING_OUTPUTS,
                        help="folder for the card (default: models/exports)")
    parser.add_argument("--seeds", type=Path, help="seeds summary JSON (optional)")
    parser.add_argument("--data", type=Path, default=default_data_root())
    args = parser.parse_args(argv)
    results_dir = args.results or TRAINING_OUTPUTS / "results"
    try:
        manifest = load_manifest(args.model, expected_feature_hash=FeatureConfig().hash()).data
        results = load_results(results_dir, args.model)
        seeds = json.loads(args.seeds.read_text()) if args.seeds else None
        slice_scores = measure_slice(args.model, args.data)
    except (ModelError, ManifestError, DataError, OSError, ValueError) as exc:
        print(f"steth-model-card: {exc}", file=sys.stderr)
        return 2
    md_path, json_path = card_paths(args.model, args.out)
    md_path.write_text(card_markdown(manifest, results, slice_scores, seeds))
    json_path.write_text(json.dumps({
        "model": manifest["weights_file"], "weights_sha256": manifest["weights_sha256"],
        "slice": {"recordings": SLICE_RECORDINGS, "split": "combined",
                  "scores": slice_scores},
        "test_combined": {t: results["clean"]["results"][t]["combined"]["score"]
                          for t in TASKS if t in results["clean"]["results"]},
    }, indent=2) + "\n")
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
