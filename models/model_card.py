"""Generate a model card from a model's manifest and its saved benchmark results
(``steth-model-card``).

Every number in the card comes from a file: the manifest (thresholds, calibration, verdict
rule, training set-up, hashes) and the JSON written by ``steth-bench --json`` for each signal
condition (clean, front-end, 12-bit, ADPCM, ±12 dB), plus optional files named on the command
line: a seeds summary, ``steth-bench --json`` results with per-device rows (``--devices``) and
``steth-lodo --report --json`` summaries (``--lodo``). A section whose file was not given is
replaced by a line naming the option that adds it. The card also records the score of a
fixed, unselected slice of the test set, measured when the card is generated, so a test can
hold the committed model to its own card.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from steth.edge.features import FeatureConfig
from steth.edge.infer import ModelError
from steth.edge.manifest import ManifestError, load_manifest
from steth.edge.normalise import NormConfig
from steth.models import TRAINING_OUTPUTS
from steth.models.benchmark import DEVICE_COLUMNS, device_cells
from steth.models.datasets import DataError, default_data_root
from steth.models.folds import ALL_ICBHI, fold_name, icbhi_use

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
DATA_NAMES = {"sprsound": "SPRSound test", "icbhi": "ICBHI"}
SPRSOUND_ONLY_FOLD = fold_name(ALL_ICBHI)


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


@dataclass(frozen=True)
class CardExtras:
    """The optional sections' inputs, each read from files named on the command line."""

    devices: dict | None = None  # per_device_table() of the --devices files
    lodo: tuple[dict, ...] = ()  # lodo_result() per --lodo file, in the order given


def read_json(path: Path, option: str) -> dict:
    """The JSON object in ``path``.

    Raises
    ------
    DataError
        If the file cannot be read or is not a JSON object; the message names ``option``.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{option} {path}: cannot read it ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{option} {path}: not a JSON object")
    return data


def parsed(path: Path, option: str, what: str, parse: Callable[[dict], dict]) -> dict:
    """``parse`` applied to the JSON in ``path``; a missing or mistyped field is a
    :class:`DataError` saying which kind of result the file should have been."""
    data = read_json(path, option)
    try:
        return parse(data)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(f"{option} {path}: not a {what} result "
                        f"({type(exc).__name__}: {exc})") from None


def score_row(row: dict, **extra: object) -> dict:
    """A per-device row (``benchmark.device_rows``) with its numbers checked, plus ``extra``
    fields (the data shown, the fold)."""
    ci = row.get("ci95")
    return {"dataset": str(row["dataset"]), "device": str(row["device"]),
            "patients": int(row["patients"]), "cycles": int(row["cycles"]),
            "se": float(row["se"]), "sp": float(row["sp"]), "score": float(row["score"]),
            "ci95": None if ci is None else [float(ci[0]), float(ci[1])],
            "all_normal_score": float(row["all_normal_score"]), **extra}


def icbhi_in_sample(meta: dict) -> bool:
    """Whether a ``steth-bench`` result's ICBHI recordings are ones the model trained on."""
    # A result that does not say is taken as in-sample on the training half, so recordings
    # the model may have trained on are never shown as unseen.
    return bool(meta.get("icbhi_in_sample", meta.get("icbhi_split", "test") == "train"))


def bench_source(report: dict) -> dict:
    """One ``steth-bench --json`` result: what it scored and its per-device rows, each with
    the data it came from and whether the model trained on it."""
    meta = report["meta"]
    half = str(meta.get("icbhi_split", "test"))
    in_sample = icbhi_in_sample(meta)
    rows = []
    for row in report["per_device"]:
        icbhi = row["dataset"] == "icbhi"
        data = f"ICBHI {half}" if icbhi else DATA_NAMES.get(row["dataset"], row["dataset"])
        rows.append(score_row(row, data=data, in_sample=icbhi and in_sample))
    if not rows:
        raise ValueError("it has no per-device rows")
    return {"model": str(meta["model"]), "version": str(meta["version"]),
            "precision": str(meta["precision"]), "condition": str(meta.get("condition", "clean")),
            "icbhi_split": half, "icbhi_in_sample": in_sample, "rows": rows}


def per_device_table(paths: Sequence[Path]) -> dict | None:
    """The ``--devices`` files' rows in one table, each naming its file (1-based).

    A row repeated unchanged by a later file (the SPRSound row of a combined run on either
    ICBHI half) is kept once. None when no file was given.
    """
    if not paths:
        return None
    sources, rows, seen = [], [], []
    for number, path in enumerate(paths, start=1):
        source = parsed(path, "--devices", "steth-bench --json", bench_source)
        for row in source.pop("rows"):
            if row not in seen:
                seen.append(row)
                rows.append({**row, "source": number})
        sources.append({"file": str(path), **source})
    return {"sources": sources, "rows": rows}


def icbhi_population(devices: dict | None) -> str:
    """The ICBHI part of the training population, counted from the ``--devices`` rows."""
    rows = [r for r in (devices or {}).get("rows", []) if r.get("dataset") == "icbhi"]
    if not rows:
        return ("ICBHI: mostly adults; its stethoscopes are listed when the card is made "
                "with `--devices` (a `steth-bench --icbhi-split train --json` result).")
    names = ", ".join(sorted(str(r["device"]) for r in rows))
    return (f"ICBHI: mostly adults, {sum(int(r['patients']) for r in rows)} patient-device "
            f"pairs and {sum(int(r['cycles']) for r in rows)} cycles on {len(rows)} "
            f"stethoscopes ({names}).")


def icbhi_role_text(config: dict, devices: dict | None) -> str:
    """What the ICBHI recordings were to this model: training data, judges of the choices,
    or nothing (then every ICBHI score of it is out-of-sample)."""
    use = icbhi_use(config)
    if use == "none":
        return ("No ICBHI recording (adults, three other stethoscopes) trained or chose "
                "anything: weights and choices come from children on one stethoscope, and "
                "every ICBHI score of this model is out-of-sample.")
    if use == "choices":
        return (f"{icbhi_population(devices)} They chose the checkpoint and calibration; the "
                "weights learnt from the children alone.")
    return (f"{icbhi_population(devices)} Adults are therefore a small minority of the "
            "training data.")


def optional_float(entry: dict, key: str) -> float | None:
    value = entry.get(key)
    return None if value is None else float(value)


def fold_guard(entry: dict) -> dict:
    """One fold's guard check from a ``steth-lodo`` summary (models/lodo.py)."""
    fold = str(entry["fold"])
    return {"fold": fold, "threshold": float(entry["threshold"]),
            "held_out_fire_rate": float(entry["held_out_fire_rate"]),
            "held_out_recordings": int(entry["held_out_recordings"]),
            "sprsound_test_fire_rate": float(entry["sprsound_test_fire_rate"]),
            "sprsound_test_recordings": int(entry["sprsound_test_recordings"]),
            "validation_fire_rate": optional_float(entry, "validation_fire_rate"),
            "target_fire_rate": optional_float(entry, "target_fire_rate"),
            "by_flag": {str(r["device"]): score_row(r, fold=fold)
                        for r in entry.get("score_by_flag", [])}}


def lodo_result(data: dict) -> dict:
    """A ``steth-lodo --report --json`` summary: recipe, budget, fold rows, pooled row, mean
    over device folds and the folds' guards. The budget is None when the file has none."""
    pooled = data.get("pooled")
    epochs = data.get("epochs")
    return {"recipe": str(data["recipe"]), "version": data.get("version"),
            "seed": data.get("seed"), "epochs": None if epochs is None else int(epochs),
            "folds": [score_row(r, fold=str(r["fold"])) for r in data["folds"]],
            "pooled": None if pooled is None else score_row(pooled, fold="pooled"),
            "mean_device_score": optional_float(data, "mean_device_score"),
            "sprsound_only_mean": optional_float(data, "sprsound_only_mean_device_score"),
            "missing_folds": [str(f) for f in data.get("missing_folds", [])],
            "guard": [fold_guard(g) for g in data.get("guard", [])]}


def read_extras(devices: Sequence[Path], lodo: Sequence[Path]) -> CardExtras:
    """Every optional file, read before anything is measured (a bad one fails fast)."""
    return CardExtras(
        devices=per_device_table(devices),
        lodo=tuple({"file": str(p), **parsed(p, "--lodo", "steth-lodo --report --json",
                                              lodo_result)} for p in lodo))


def class_recalls(clean: dict) -> dict[str, dict[str, dict]]:
    """Per task, each true class's count and recall, from the clean result's confusion
    matrices (rows: true class); a class with no items has recall None."""
    found: dict[str, dict[str, dict]] = {}
    results = clean["results"]
    for task in sorted(results, key=lambda t: TASKS.index(t) if t in TASKS else len(TASKS)):
        subsets = results[task]
        entry = subsets.get("combined") or subsets.get("icbhi")  # icbhi-test has one subset
        if not entry or "confusion" not in entry or "labels" not in entry:
            continue
        found[task] = {}
        for i, (label, row) in enumerate(zip(entry["labels"], entry["confusion"], strict=True)):
            n = sum(row)
            found[task][label] = {"n": n, "recall": row[i] / n if n else None}
    return found


def norm_config(manifest: dict) -> NormConfig:
    return FeatureConfig.from_dict(manifest["feature_config"]).norm


def guard_summary(manifest: dict, lodo: Sequence[dict]) -> dict:
    """The card JSON's guard: the manifest's threshold and fit, and each fold's check."""
    section = manifest.get("guard")
    return {"threshold": None if section is None else section["threshold"],
            "min_seconds": None if section is None else section["min_seconds"],
            "fit": manifest.get("guard_fit"),
            "folds": [{"recipe": r["recipe"], **g} for r in lodo for g in r["guard"]]}


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
    return [*lines, "", *class_recall_section(class_recalls(clean), clean["meta"])]


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


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def omitted(title: str, option: str, source: str) -> list[str]:
    """The line that stands in for a section whose file was not given."""
    return [f"## {title}", "", f"Not in this card: `{option}` with {source} adds it."]


def recall_task_name(task: str, meta: dict) -> str:
    if task != "icbhi-test":
        return f"{task}: {TASK_NAMES.get(task, task)}"
    half = meta.get("icbhi_split", "test")
    in_sample = " (in-sample)" if icbhi_in_sample(meta) else ""
    return f"ICBHI {half} recordings, 4 classes{in_sample}"


def class_recall_section(recalls: dict[str, dict[str, dict]], meta: dict) -> list[str]:
    if not recalls:
        return ["Per-class recall: the clean benchmark result has no confusion matrices."]
    rows = [[recall_task_name(task, meta) if i == 0 else "", label, str(c["n"]),
             "-" if c["recall"] is None else f"{c['recall']:.2f}"]
            for task, classes in recalls.items() for i, (label, c) in enumerate(classes.items())]
    return ["Per-class recall (combined test set; n = test items of that true class; from the "
            "benchmark's confusion matrices):", "", *md_table(("task", "class", "n", "recall"),
                                                               rows)]


def same_model(source: dict, manifest: dict) -> bool:
    return (source["model"], source["version"], source["precision"]) == (
        manifest["name"], manifest["version"], manifest["precision"])


def per_device_section(devices: dict | None, manifest: dict) -> list[str]:
    title = "Per device (4-class cycle findings, ICBHI Score)"
    if devices is None:
        return omitted(title, "--devices FILE", "a `steth-bench --json` result (`--split "
                       "combined`; again with `--icbhi-split train` for the ICBHI training "
                       "recordings)")
    several = len(devices["sources"]) > 1
    shown = [{**r, "data": r["data"] + (" (in-sample)" if r["in_sample"] else "")
              + (f" [{r['source']}]" if several else "")} for r in devices["rows"]]
    lines = [f"## {title}", "",
             "One row per data set and stethoscope (`steth-bench`, models/benchmark.py): "
             "patients, cycles, sensitivity and specificity of the 4-class findings, the ICBHI "
             "Score with its patient-bootstrap 95 % interval, and the Score of answering Normal "
             "on every cycle. Rows marked in-sample are recordings the model trained on: they "
             "do not measure how it does on unseen patients or devices.", "",
             *md_table(("data", *DEVICE_COLUMNS), [device_cells(r, "data") for r in shown]),
             ""]
    for number, s in enumerate(devices["sources"], start=1):
        other = "" if same_model(s, manifest) else (
            f" (not this card's model: {manifest['name']} {manifest['version']} "
            f"{manifest['precision']})")
        lines.append(f"- {f'[{number}] ' if several else 'From '}`{s['file']}`: {s['model']} "
                     f"{s['version']} {s['precision']}{other}, condition {s['condition']}, "
                     f"ICBHI {s['icbhi_split']} half"
                     + (" (in-sample)." if s["icbhi_in_sample"] else "."))
    return lines


def recipe_label(result: dict) -> str:
    """Recipe, version, seed and training budget, as the summary file records them."""
    parts = [result["recipe"]] + ([str(result["version"])] if result["version"] else [])
    seed = f", seed {result['seed']}" if result["seed"] is not None else ""
    budget = (f"training budget {result['epochs']} epochs" if result["epochs"] is not None
              else "training budget not recorded in the file")
    return f"{' '.join(parts)}{seed}, {budget}"


def is_device_fold(row: dict) -> bool:
    return row["fold"] == fold_name(row["device"])


def lodo_comparison(results: Sequence[dict]) -> list[str]:
    """One line per recipe: its Score on each held-out device, the mean and the pool."""
    devices = sorted({r["device"] for res in results for r in res["folds"] if is_device_fold(r)})
    rows = []
    for res in results:
        by_device = {r["device"]: r for r in res["folds"] if is_device_fold(r)}
        pooled = res["pooled"]
        mean = res["mean_device_score"]
        alone = res.get("sprsound_only_mean")
        rows.append([recipe_label(res)]
                    + [f"{by_device[d]['score']:.3f}" if d in by_device else "not run"
                       for d in devices]
                    + ["-" if mean is None else f"{mean:.3f}",
                       "-" if pooled is None else _score(pooled),
                       "-" if alone is None else f"{alone:.3f}"])
    return ["Score on each held-out device, in the order the files were given; the last "
            f"column is the `{SPRSOUND_ONLY_FOLD}` fold's mean over the same devices, every "
            "one of them unseen:", "",
            *md_table(("recipe", *devices, "mean of devices", "pooled (95% CI)",
                       f"{SPRSOUND_ONLY_FOLD} fold, mean of devices"), rows)]


def lodo_recipe(result: dict) -> list[str]:
    rows = result["folds"] + ([result["pooled"]] if result["pooled"] else [])
    mean = result["mean_device_score"]
    lines = [f"### {recipe_label(result)}", "", f"From `{result['file']}`.", "",
             *md_table(("fold", "held-out device", *DEVICE_COLUMNS[1:]),
                       [device_cells(r, "fold") for r in rows]), "",
             "Mean over held-out devices (device folds): "
             + ("not recorded." if mean is None else f"{mean:.3f}.")]
    if result["missing_folds"]:
        lines.append(f"Folds not run yet: {', '.join(result['missing_folds'])}.")
    return lines


def lodo_section(results: Sequence[dict]) -> list[str]:
    title = "Leave-one-device-out (stethoscopes never heard in training)"
    if not results:
        return omitted(title, "--lodo FILE", "a `steth-lodo RECIPE --report --json` summary "
                       "(repeat the option to compare recipes)")
    lines = [f"## {title}", "",
             "Fold models trained with the named recipe, not this card's model file "
             "(`steth-lodo`, models/lodo.py). A device fold trains on SPRSound train plus the "
             "ICBHI patients who never used the held-out device and scores that device's "
             f"cycles; the `{SPRSOUND_ONLY_FOLD}` fold trains on SPRSound alone and scores "
             "every ICBHI recording. Checkpoint, temperatures, thresholds and guard come from "
             "each fold's own validation split. The pooled row pools the device folds' "
             "held-out cycles; the mean is over device folds."]
    if len(results) > 1:
        lines += ["", *lodo_comparison(results)]
    for result in results:
        lines += ["", *lodo_recipe(result)]
    return lines


def manifest_guard_lines(manifest: dict) -> list[str]:
    section = manifest.get("guard")
    if section is None:
        return ["- This model's manifest has no `guard` section: the edge runs no "
                "unfamiliar-signal guard with it."]
    lines = [f"- Threshold {section['threshold']:.3f} (distance), decided once "
             f"{section['min_seconds']:g} s of audio have been heard."]
    fit = manifest.get("guard_fit")
    if not fit:
        return [*lines, "- The manifest records no `guard_fit`: the validation firing rate "
                        "it was set at is not known."]
    rate, target = fit["validation_fire_rate"], fit["target_fire_rate"]
    return [*lines, f"- Fitted on {fit['training_recordings']} training recordings; threshold "
                    f"set on {fit['sprsound_validation_recordings']} SPRSound validation "
                    f"recordings to fire on at most {target:.0%} of them: it fires on "
                    f"{rate:.1%} ({'within' if rate <= target else 'above'} the target)."]


def flag_cell(by_flag: dict[str, dict], group: str) -> str:
    row = by_flag.get(group)
    return "-" if row is None else f"{row['score']:.3f} ({row['cycles']})"


def lodo_guard_lines(lodo: Sequence[dict]) -> list[str]:
    if not lodo:
        return ["Firing rates on held-out devices: not in this card; `--lodo FILE` with a "
                "`steth-lodo RECIPE --report --json` summary adds them."]
    rows = []
    for result in lodo:
        for g in result["guard"]:
            val = g["validation_fire_rate"]
            target = g["target_fire_rate"]
            rows.append([result["recipe"], g["fold"], f"{g['threshold']:.2f}",
                         f"{g['held_out_fire_rate']:.0%} of {g['held_out_recordings']}",
                         f"{g['sprsound_test_fire_rate']:.1%} of "
                         f"{g['sprsound_test_recordings']}",
                         "not recorded" if val is None else f"{val:.1%}"
                         + ("" if target is None else f" (≤ {target:.0%})"),
                         flag_cell(g["by_flag"], "flagged"),
                         flag_cell(g["by_flag"], "not flagged")])
    if not rows:
        return ["Firing rates on held-out devices: the `--lodo` summaries record no guard."]
    return ["Each leave-one-device-out fold fits its own guard on its own training data (not "
            "this model's guard). Share of recordings it flags, and the ICBHI Score of the "
            "held-out cycles in flagged and unflagged recordings (cycles):", "",
            *md_table(("recipe", "fold", "threshold", "held-out flagged", "SPRSound test "
                       "flagged", "SPRSound validation flagged", "Score flagged",
                       "Score not flagged"), rows)]


def guard_section(manifest: dict, lodo: Sequence[dict]) -> list[str]:
    return ["## Unfamiliar-signal guard", "",
            "The guard measures how far a stream's long-term spectrum shape lies from the "
            "training recordings' (Mahalanobis distance; edge/guard.py, fitted by "
            "models/guard_fit.py) and, past its threshold, says the findings are less "
            "reliable. It never means Poor Quality.", "",
            *manifest_guard_lines(manifest), "", *lodo_guard_lines(lodo)]


def front_end_line(norm: NormConfig) -> str:
    """The classifier's channel normalisation, from the manifest's feature config."""
    settling = (f"output in the first {norm.warmup_s:g} s after the start or a reset is "
                "marked settling (edge/normalise.py)")
    if norm.kind == "mean":
        return (f"- Channel normalisation `mean`: a causal per-band running mean (time "
                f"constant {norm.tau_s:g} s) subtracted from the log-mel; {settling}.")
    if norm.kind == "pcen":
        return (f"- Channel normalisation `pcen`: per-channel energy normalisation (alpha "
                f"{norm.pcen_alpha:g}, delta {norm.pcen_delta:g}, r {norm.pcen_r:g}) against a "
                f"per-band running mean (time constant {norm.tau_s:g} s); {settling}.")
    return ("- Channel normalisation: none (the feature config has no `norm`); the classifier "
            "reads the log-mel as computed.")


def verdict_line(rule: dict, fit: dict) -> str:
    """The record verdict: its form and parameters, and what it was fitted and chosen on."""
    learned = rule.get("learned")
    if learned:
        parts = "; ".join(f"{part} " + ", ".join(f"{v:+.3f}" for v in learned[part])
                          for part in ("crackle", "wheeze", "poor"))
        cap = learned.get("max_cycles")
        text = (f"- Record verdict: learned (edge/labels.py `LearnedVerdict`; bias, then one "
                f"weight per feature): {parts}; at least {rule['min_good_cycles']} good "
                "cycle(s)" + (f"; cycle count capped at {cap}" if cap else ""))
    else:
        text = f"- Record verdict: counting rule {rule}"
    if not fit:
        return text + "."
    text += (f". Fitted on {fit['records']} records, "
             f"{fit.get('on', 'tiled windows')} (in-sample there: 2-1 "
             f"{fit['validation_scores']['2-1']:.3f}, 2-2 "
             f"{fit['validation_scores']['2-2']:.3f})")
    choice = fit.get("choice") or {}
    if "cross_validated" in choice:
        cv = choice["cross_validated"]
        text += (f"; chosen over the other form by {choice['folds']}-fold patient "
                 f"cross-validation (mean of 2-1 and 2-2: counting rule "
                 f"{cv['rule']['mean']:.3f}, learned {cv['learned']['mean']:.3f})")
    elif "validation" in choice:
        val = choice["validation"]
        text += (f"; chosen over the other form on {choice['validation_records']} "
                 f"validation records (mean of 2-1 and 2-2: counting rule "
                 f"{val['rule']['mean']:.3f}, learned {val['learned']['mean']:.3f})")
    return text + "."


def card_markdown(manifest: dict, results: dict[str, dict], slice_scores: dict[str, float],
                  seeds: dict | None, extras: CardExtras | None = None) -> str:
    extras = extras or CardExtras()
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
        front_end_line(norm_config(manifest)),
        "- Outputs: crackle and wheeze probabilities (sigmoid; the 4 product classes Normal / "
        "Crackle / Wheeze / Both), a 7-way SPRSound event subtype, and a Poor Quality "
        "probability.",
        f"- Speed on this machine (one thread, ONNX Runtime): median "
        f"{meta['cycle_ms_median']:.2f} ms, p95 {meta['cycle_ms_p95']:.2f} ms per cycle.",
        "", "## Training data and population", "",
        f"- {training['data']}.",
        "- SPRSound: children aged 1 month to 18 years, one hospital, one electronic "
        f"stethoscope (Yunting model II), 8 kHz. "
        f"{icbhi_role_text(training.get('config', {}), extras.devices)}",
        f"- Model selection: {training['validation']}; nothing was selected on a test set.",
        "- Rare classes: the sampler draws samples with weight 1/sqrt(class frequency) and the "
        "subtype loss uses the same weights, so rare subtypes are seen more without being "
        "repeated to memorisation. The rarest subtypes have only a handful of test events "
        "(n in the per-class table below), so their recalls are uncertain.",
        "", "## Decision thresholds and calibration", "",
        f"- Thresholds: {manifest['thresholds']} (fit on validation for tasks 1-1 and 1-2).",
        f"- Calibration: {cal['method']}; temperatures {cal['temperature']}. Expected "
        f"calibration error of the findings on validation: {cal.get('ece_raw', float('nan')):.3f}"
        f" raw, {cal.get('ece_calibrated', float('nan')):.3f} calibrated. "
        + ("The product shows probabilities." if cal.get("calibrated") else
           "The product shows coarse levels only."),
        verdict_line(manifest["verdict_rule"], rule_fit),
        "", *metrics_section(results["clean"]), "",
        *per_device_section(extras.devices, manifest), "", *lodo_section(extras.lodo), "",
        *guard_section(manifest, extras.lodo), "", *robustness_section(results), "",
        *seeds_section(seeds), "",
        "## Fixed test slice (held by tests/models/test_exports.py)", "",
        f"First {SLICE_RECORDINGS} SPRSound test recordings (sorted ids), combined: "
        + ", ".join(f"{t} {s:.3f}" for t, s in slice_scores.items()) + ".",
        "", "## Known limits", "",
        "- Not yet validated on audio from our own sensor; see docs/device_validation.md.",
        "- Trained on one paediatric data set from one hospital and device; performance on "
        "adults, other chest pieces and other populations is unknown beyond "
        + ("the ICBHI recordings scored above, none of which it heard, "
           if icbhi_use(training.get("config", {})) == "none"
           else "the ICBHI recordings used in training ")
        + "and the leave-one-device-out folds above.",
        "- Rare subtypes (Stridor, Wheeze+Crackle, Coarse Crackle, Rhonchi) are poorly "
        "recognised; the product's 4-class finding is the supported output.",
        "- Poor Quality records are mostly not recognised as such (see the 2-2 confusion in "
        "the benchmark JSON); a separate signal-quality check in the edge pipeline flags "
        "clipping and contact loss.",
        "- The record rule was fit on tiled windows; the live product applies it to detected "
        "breath cycles, which differ (see steth-stream-eval).", ""]
    return "\n".join(lines)


def card_json(manifest: dict, results: dict[str, dict], slice_scores: dict[str, float],
              extras: CardExtras) -> dict:
    """The card's numbers for tests and tools; a section whose file was not given is None."""
    clean = results["clean"]
    return {
        "model": manifest["weights_file"], "weights_sha256": manifest["weights_sha256"],
        "slice": {"recordings": SLICE_RECORDINGS, "split": "combined",
                  "scores": slice_scores},
        "test_combined": {t: clean["results"][t]["combined"]["score"]
                          for t in TASKS if t in clean["results"]},
        "per_class_recall": class_recalls(clean),
        "front_end": {"norm": norm_config(manifest).to_dict()},
        "per_device": extras.devices,
        "lodo": list(extras.lodo) or None,
        "guard": guard_summary(manifest, extras.lodo),
    }


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
    parser.add_argument("--devices", type=Path, action="append", default=[], metavar="FILE",
                        help="a steth-bench --json result whose per-device rows go in the "
                             "card (repeatable, e.g. --split combined and --icbhi-split train)")
    parser.add_argument("--lodo", type=Path, action="append", default=[], metavar="FILE",
                        help="a steth-lodo --report --json summary (repeatable: recipes "
                             "compared in the order given)")
    parser.add_argument("--data", type=Path, default=default_data_root())
    args = parser.parse_args(argv)
    results_dir = args.results or TRAINING_OUTPUTS / "results"
    try:
        manifest = load_manifest(args.model, expected_feature_hash=FeatureConfig().hash()).data
        results = load_results(results_dir, args.model)
        seeds = json.loads(args.seeds.read_text()) if args.seeds else None
        extras = read_extras(args.devices, args.lodo)
        slice_scores = measure_slice(args.model, args.data)
    except (ModelError, ManifestError, DataError, OSError, ValueError) as exc:
        print(f"steth-model-card: {exc}", file=sys.stderr)
        return 2
    md_path, json_path = card_paths(args.model, args.out)
    md_path.write_text(card_markdown(manifest, results, slice_scores, seeds, extras))
    json_path.write_text(json.dumps(card_json(manifest, results, slice_scores, extras),
                                    indent=2) + "\n")
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
