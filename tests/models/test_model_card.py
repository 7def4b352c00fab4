"""steth-model-card's optional sections: per device, leave-one-device-out, guard, front end
and per-class recalls, each from a file, and a plain line when that file was not given."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from steth.edge.features import FeatureConfig
from steth.edge.manifest import load_manifest
from steth.edge.normalise import NormConfig
from steth.models import model_card
from steth.models.model_card import card_json, card_markdown, read_extras
from tests.conftest import REPO_ROOT
from tests.foundation.tiny_model import make_tiny_model

LODO = REPO_ROOT / "docs" / "lodo"
CLEAN = REPO_ROOT / "models" / "exports" / "results" / "breathnet.int8.onnx.clean.json"
NORM = NormConfig(kind="mean", tau_s=6.0, warmup_s=1.5)
GUARD_FIT = {"training_recordings": 321, "sprsound_validation_recordings": 87,
             "validation_fire_rate": 4 / 87, "target_fire_rate": 0.05}


def device_row(dataset: str, device: str, score: float, patients: int = 3) -> dict:
    return {"dataset": dataset, "device": device, "patients": patients, "cycles": 40 + patients,
            "se": score - 0.05, "sp": score + 0.05, "as_": score, "hs": score, "score": score,
            "n_normal": 20, "n_abnormal": 20 + patients, "ci95": [score - 0.05, score + 0.05],
            "all_normal_score": 0.5, "abnormal_cycles": 20 + patients}


def task_entry(score: float) -> dict:
    return {"score": score, "all_normal_score": 0.25, "ci95": [score - 0.1, score + 0.1],
            "labels": ["Normal", "Adventitious"], "confusion": [[8, 2], [1, 3]],
            "per_class_recall": {"Normal": 0.8, "Adventitious": 0.75}}


def bench_report(half: str, in_sample: bool, icbhi_rows: list[dict]) -> dict:
    """A ``steth-bench --json`` result of the tiny model, with per-device rows."""
    tasks = {t: {s: task_entry(0.6) for s in ("inter", "intra", "combined")}
             for t in model_card.TASKS}
    return {"meta": {"model": "tiny-test-model", "version": "0.0.1", "precision": "fp32",
                     "split": "combined", "condition": "clean", "icbhi_split": half,
                     "icbhi_in_sample": in_sample, "file_bytes": 2048, "parameters": 10,
                     "cycle_ms_median": 0.1, "cycle_ms_p95": 0.2},
            "results": tasks,
            "per_device": [device_row("icbhi", d["device"], d["score"], d["patients"])
                           for d in icbhi_rows]
            + [device_row("sprsound", "Yunting-II", 0.81, 200)]}


TEST_HALF = bench_report("test", False, [{"device": "Meditron", "score": 0.42, "patients": 7}])
TRAIN_HALF = bench_report("train", True, [{"device": "AKGC417L", "score": 0.93, "patients": 4},
                                          {"device": "LittC2SE", "score": 0.88, "patients": 5}])


def write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def tiny_manifest(folder: Path, guard: bool = True) -> Path:
    """A tiny model whose manifest has what a card reads (and a guard unless told not)."""
    config = FeatureConfig(norm=NORM)
    extra: dict = {
        "input": {"name": "logmel", "shape": [1, 1, 128, config.n_mels], "dtype": "float32",
                  "layout": "batch, channel, frames, mels"},
        "calibration": {"calibrated": False, "method": "none", "temperature": {}},
        "training": {"data": "fixture", "validation": "fixture split"}}
    if guard:
        extra["guard"] = {"mean": [0.0] * config.n_mels,
                          "precision": np.eye(config.n_mels).tolist(), "threshold": 4.321,
                          "min_seconds": 5.0}
        extra["guard_fit"] = GUARD_FIT
    return make_tiny_model(folder, config=config, extra=extra)


def card(tmp_path: Path, devices: list[Path] = (), lodo: list[Path] = (), guard: bool = True
         ) -> tuple[str, dict]:
    model = tiny_manifest(tmp_path, guard)
    manifest = load_manifest(model).data
    results = {"clean": TEST_HALF}
    extras = read_extras(list(devices), list(lodo))
    slice_scores = {"1-1": 0.5}
    return (card_markdown(manifest, results, slice_scores, None, extras),
            json.loads(json.dumps(card_json(manifest, results, slice_scores, extras))))


def table_line(first: str, row: dict) -> str:
    ci = row["ci95"]
    return (f"| {first} | {row['device']} | {row['patients']} | {row['cycles']} | "
            f"{row['se']:.3f} | {row['sp']:.3f} | {row['score']:.3f} | "
            f"{ci[0]:.3f}–{ci[1]:.3f} | {row['all_normal_score']:.3f} |")


def test_per_device_rows_are_the_files_and_rows_the_model_trained_on_are_in_sample(tmp_path):
    files = [write(tmp_path / "test.json", TEST_HALF), write(tmp_path / "train.json", TRAIN_HALF)]
    text, data = card(tmp_path, devices=files)
    for report, data_name in ((TEST_HALF, "ICBHI test [1]"),
                              (TRAIN_HALF, "ICBHI train (in-sample) [2]")):
        for row in report["per_device"]:
            if row["dataset"] == "icbhi":
                assert table_line(data_name, row) in text
    sprsound = TEST_HALF["per_device"][-1]
    assert text.count(table_line("SPRSound test [1]", sprsound)) == 1  # same row in both
    assert "SPRSound test [2]" not in text
    rows = data["per_device"]["rows"]
    assert len(rows) == 4
    assert {r["device"] for r in rows if r["in_sample"]} == {"AKGC417L", "LittC2SE"}
    by_device = {r["device"]: r for r in rows}
    for row in TEST_HALF["per_device"] + TRAIN_HALF["per_device"]:
        for key in ("patients", "cycles", "se", "sp", "score", "ci95", "all_normal_score"):
            assert by_device[row["device"]][key] == row[key]
    assert [s["icbhi_in_sample"] for s in data["per_device"]["sources"]] == [False, True]


def test_a_bench_result_of_another_model_says_so(tmp_path):
    other = json.loads(json.dumps(TEST_HALF))
    other["meta"]["version"] = "9.9.9"
    text, _ = card(tmp_path, devices=[write(tmp_path / "other.json", other)])
    assert "tiny-test-model 9.9.9 fp32 (not this card's model: tiny-test-model 0.0.1 fp32)" in text


def test_lodo_tables_are_the_summaries_with_recipe_budget_pooled_and_mean(tmp_path):
    paths = [LODO / "a0_logmel.json", LODO / "a2_mean_device.json",
             LODO / "a7_device_select.json"]
    text, data = card(tmp_path, lodo=paths)
    for path, result in zip(paths, data["lodo"], strict=True):
        summary = json.loads(path.read_text())
        heading = (f"### {summary['recipe']} {summary['version']}, seed {summary['seed']}, "
                   f"training budget {summary['epochs']} epochs")
        assert heading in text
        for row in summary["folds"]:
            assert table_line(row["fold"], row) in text
        assert table_line("pooled", summary["pooled"]) in text
        assert f"{summary['mean_device_score']:.3f}" in text
        assert result["mean_device_score"] == summary["mean_device_score"]
        assert result["epochs"] == summary["epochs"]
        assert [r["score"] for r in result["folds"]] == [r["score"] for r in summary["folds"]]
        assert result["pooled"]["ci95"] == summary["pooled"]["ci95"]
        alone = summary.get("sprsound_only_mean_device_score")
        assert result["sprsound_only_mean"] == alone
        comparison_row = next(line for line in text.splitlines()
                              if line.startswith(f"| {summary['recipe']} "))
        # the SPRSound-only fold's mean closes the recipe's comparison row ("-" in old files)
        assert comparison_row.endswith("| - |" if alone is None else f"| {alone:.3f} |")
    # the comparison has one line per recipe, in the order given
    assert text.index("| lodo_a0_logmel 0.2.0") < text.index("| lodo_a2_mean_device 0.2.0")


def test_a_lodo_summary_without_its_budget_says_it_is_not_recorded(tmp_path):
    summary = json.loads((LODO / "a1_mean.json").read_text())
    del summary["epochs"]
    text, data = card(tmp_path, lodo=[write(tmp_path / "a1.json", summary)])
    assert "training budget not recorded in the file" in text
    assert data["lodo"][0]["epochs"] is None
    assert "Folds not run yet: all-icbhi." in text  # a1 was run without the SPRSound fold


def test_guard_section_has_the_manifest_threshold_fit_and_each_folds_firing(tmp_path):
    path = LODO / "a2_mean_device.json"
    text, data = card(tmp_path, lodo=[path])
    assert "Threshold 4.321" in text and "once 5 s of audio" in text
    assert ("on 87 SPRSound validation recordings to fire on at most 5% of them: it fires on "
            "4.6% (within the target)") in text
    assert "321 training recordings" in text
    assert data["guard"]["threshold"] == 4.321 and data["guard"]["fit"] == GUARD_FIT
    summary = json.loads(path.read_text())
    for fold, entry in zip(summary["guard"], data["guard"]["folds"], strict=True):
        flags = {r["device"]: r for r in fold["score_by_flag"]}
        cells = [f"{fold['held_out_fire_rate']:.0%} of {fold['held_out_recordings']}",
                 f"{fold['sprsound_test_fire_rate']:.1%} of {fold['sprsound_test_recordings']}",
                 f"{fold['validation_fire_rate']:.1%} (≤ {fold['target_fire_rate']:.0%})",
                 f"{flags['flagged']['score']:.3f} ({flags['flagged']['cycles']})",
                 (f"{flags['not flagged']['score']:.3f} ({flags['not flagged']['cycles']})"
                  if "not flagged" in flags else "-")]
        assert (f"| {summary['recipe']} | {fold['fold']} | {fold['threshold']:.2f} | "
                + " | ".join(cells) + " |") in text
        assert entry["held_out_fire_rate"] == fold["held_out_fire_rate"]
        assert entry["by_flag"]["flagged"]["score"] == flags["flagged"]["score"]


def test_a_model_without_a_guard_says_so(tmp_path):
    text, data = card(tmp_path, guard=False)
    assert "manifest has no `guard` section" in text
    assert data["guard"]["threshold"] is None


def test_the_front_end_normalisation_is_the_manifests(tmp_path):
    text, data = card(tmp_path)
    assert ("Channel normalisation `mean`: a causal per-band running mean (time constant 6 s) "
            "subtracted from the log-mel; output in the first 1.5 s") in text
    assert data["front_end"]["norm"] == NORM.to_dict()


def test_per_class_recalls_are_the_benchmarks_confusion_rows():
    clean = json.loads(CLEAN.read_text())
    recalls = model_card.class_recalls(clean)
    assert set(recalls) == {t for t, s in clean["results"].items() if "combined" in s}
    for task, classes in recalls.items():
        entry = clean["results"][task]["combined"]
        derived = {label: c["recall"] for label, c in classes.items()}
        assert derived == pytest.approx(entry["per_class_recall"])
        assert [c["n"] for c in classes.values()] == [sum(r) for r in entry["confusion"]]
    text = "\n".join(model_card.metrics_section(clean))
    normal = recalls["1-2"]["Normal"]
    assert f"| 1-2: event, 7 classes | Normal | {normal['n']} | {normal['recall']:.2f} |" in text


def test_missing_options_leave_a_line_naming_the_option(tmp_path):
    text, data = card(tmp_path)
    assert "Not in this card: `--devices FILE` with a `steth-bench --json` result" in text
    assert "Not in this card: `--lodo FILE` with a `steth-lodo RECIPE --report --json`" in text
    assert "Firing rates on held-out devices: not in this card; `--lodo FILE`" in text
    assert data["per_device"] is None and data["lodo"] is None


def run_card(tmp_path: Path, monkeypatch, *options: str) -> tuple[int, Path]:
    """``steth-model-card`` on the tiny model, without measuring the slice."""
    model = tiny_manifest(tmp_path)
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    write(model_card.results_path(results, model, "clean"), TEST_HALF)
    monkeypatch.setattr(model_card, "measure_slice", lambda *_: {"1-1": 0.5})
    out = tmp_path / "cards"
    out.mkdir(exist_ok=True)
    return model_card.main([str(model), "--results", str(results), "--out", str(out),
                            *options]), out


def test_the_command_writes_every_section_to_both_files(tmp_path, monkeypatch):
    devices = write(tmp_path / "train.json", TRAIN_HALF)
    code, out = run_card(tmp_path, monkeypatch, "--devices", str(devices), "--lodo",
                         str(LODO / "a0_logmel.json"), "--lodo", str(LODO / "a2_mean_device.json"))
    assert code == 0
    text = (out / "tiny.card.md").read_text()
    data = json.loads((out / "tiny.card.json").read_text())
    assert "ICBHI train (in-sample)" in text and "### lodo_a2_mean_device" in text
    assert [r["recipe"] for r in data["lodo"]] == ["lodo_a0_logmel", "lodo_a2_mean_device"]
    assert len(data["per_device"]["rows"]) == 3


@pytest.mark.parametrize("option", ["--devices", "--lodo"])
@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]", "wrong kind"])
def test_an_unreadable_file_is_a_one_line_error(tmp_path, monkeypatch, capsys, option, content):
    path = tmp_path / "given.json"
    if content == "wrong kind":  # a LODO summary given as a bench result, and the reverse
        source = json.loads(CLEAN.read_text()) if option == "--lodo" else json.loads(
            (LODO / "a0_logmel.json").read_text())
        write(path, source)
    elif content is not None:
        path.write_text(content)
    code, out = run_card(tmp_path, monkeypatch, option, str(path))
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith(f"steth-model-card: {option} {path}")
    assert not (out / "tiny.card.md").exists()


def test_the_icbhi_population_is_counted_from_the_device_rows_not_written_in():
    from steth.models.model_card import icbhi_population

    rows = [{"dataset": "icbhi", "device": "Meditron", "patients": 7, "cycles": 288},
            {"dataset": "icbhi", "device": "AKGC417L", "patients": 3, "cycles": 82},
            {"dataset": "sprsound", "device": "Yunting", "patients": 300, "cycles": 9000}]
    text = icbhi_population({"rows": rows})
    assert "10 patient-device pairs and 370 cycles on 2 stethoscopes (AKGC417L, Meditron)" \
        in text
    assert "--devices" in icbhi_population(None)


def test_the_card_says_what_icbhi_was_to_the_model():
    from steth.models.model_card import icbhi_role_text

    rows = {"rows": [{"dataset": "icbhi", "device": "Meditron", "patients": 7, "cycles": 288}]}
    trained = icbhi_role_text({"use_icbhi": True}, rows)
    assert "7 patient-device pairs" in trained and "small minority of the training" in trained
    chose = icbhi_role_text({"use_icbhi": True, "icbhi_role": "select",
                             "hold_out_device": "LittC2SE"}, rows)
    assert "chose the checkpoint" in chose and "minority" not in chose
    for config in ({"use_icbhi": False},
                   {"use_icbhi": True, "icbhi_role": "select", "hold_out_device": "*"}):
        text = icbhi_role_text(config, rows)
        assert "out-of-sample" in text and "patient-device pairs" not in text


def test_the_card_names_the_record_verdicts_form_and_its_choice():
    from steth.models.model_card import verdict_line
    learned = {"min_cycles": 1, "min_fraction": 0.0, "poor_quality_fraction": 0.5,
               "min_good_cycles": 1,
               "learned": {"crackle": [-1, 0.5, 0.25, 2], "wheeze": [-2, 0, 3, 1],
                           "poor": [-6, 4, 1.5], "max_cycles": 15}}
    fit = {"records": 285, "on": "detected cycles",
           "validation_scores": {"2-1": 0.734, "2-2": 0.646},
           "choice": {"kind": "learned", "folds": 5,
                      "cross_validated": {"rule": {"mean": 0.606}, "learned": {"mean": 0.668}}}}
    line = verdict_line(learned, fit)
    assert "learned" in line and "crackle -1.000, +0.500, +0.250, +2.000" in line
    assert "capped at 15" in line and "285 records, detected cycles" in line
    assert "counting rule 0.606, learned 0.668" in line
    fit["choice"] = {"kind": "rule", "validation_records": 288,
                     "validation": {"rule": {"mean": 0.7}, "learned": {"mean": 0.65}}}
    assert "on 288 validation records (mean of 2-1 and 2-2: counting rule 0.700" in (
        verdict_line(learned, fit))
    counting = {"min_cycles": 2, "min_fraction": 0.0, "poor_quality_fraction": 0.9,
                "min_good_cycles": 1}
    assert verdict_line(counting, {}).startswith("- Record verdict: counting rule")
