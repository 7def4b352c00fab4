"""``steth-stream-eval --split icbhi``: pairing, the three ICBHI Scores, in-sample labels,
fold-model errors, and a short real replay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from steth.models.datasets import Event, Recording, load_audio, load_icbhi
from steth.models.stream_eval import (
    KINDS,
    CyclePairs,
    RecordingResult,
    detector_in_sample,
    icbhi_table,
    in_sample_label,
    main,
    pair_cycles,
    summarise_icbhi,
)
from tests.conftest import note_loaded

# Four annotated cycles; the Wheeze one is never detected, and one detection lies past the
# annotations.
ANNOTATED = [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.0)]
LABELS = ["Normal", "Crackle", "Wheeze", "Normal"]
DETECTED = [(0.1, 2.0), (2.1, 4.1), (6.0, 8.0), (8.5, 10.0)]
FINDINGS = ["Normal", "Crackle", "Crackle", "Wheeze"]


def fake_rec(patient: str = "101", device: str = "Meditron", split: str = "train"
             ) -> Recording:
    name = f"{patient}_1b1_Al_sc_{device}"
    events = tuple(Event(s, e, label, label in ("Crackle", "Both"), label in ("Wheeze", "Both"))
                   for (s, e), label in zip(ANNOTATED, LABELS, strict=True))
    return Recording("icbhi", name, Path(f"/nonexistent/{name}.flac"), patient, split, None,
                     events, None, "Al", device)


def fake_result(in_sample: bool, fold: str | None = None) -> RecordingResult:
    pairs = pair_cycles(DETECTED, FINDINGS, ANNOTATED, LABELS)
    return RecordingResult(fake_rec(), pairs, list(zip(LABELS, LABELS, strict=True)), 4,
                           classifier={"in_sample": in_sample, "fold": fold},
                           detector={"in_sample": in_sample, "fold": None})


def test_pairs_are_one_to_one_at_iou_half_and_the_leftovers_are_kept():
    pairs = pair_cycles(DETECTED, FINDINGS, ANNOTATED, LABELS)
    assert pairs.paired == [("Normal", "Normal"), ("Crackle", "Crackle"), ("Normal", "Crackle")]
    assert pairs.missed == ["Wheeze"]
    assert pairs.unannotated == ["Wheeze"]
    # Two detections over one annotated cycle: only the better one pairs with it.
    twice = pair_cycles([(0.0, 1.9), (0.2, 2.0)], ["Crackle", "Normal"], [(0.0, 2.0)],
                        ["Normal"])
    assert twice.paired == [("Normal", "Crackle")] and twice.unannotated == ["Normal"]
    # IoU 0.45 is below the threshold.
    assert pair_cycles([(0.0, 0.9)], ["Normal"], [(0.0, 2.0)], ["Normal"]).missed == ["Normal"]


def test_an_undetected_wheeze_counts_as_normal_over_all_annotated_cycles():
    pairs = CyclePairs([("Crackle", "Crackle")], ["Wheeze"], [])
    assert pairs.all_annotated() == [("Crackle", "Crackle"), ("Wheeze", "Normal")]


def test_three_scores_and_the_json_summary_are_numeric():
    report = json.loads(json.dumps(summarise_icbhi([fake_result(in_sample=False)], n_boot=5)))
    summary = report["summary"]
    # paired: SP 1/2 (a Normal shown as Crackle), SE 1/1 -> 0.75
    # all annotated: the missed Wheeze is Normal -> SE 1/2, SP 1/2 -> 0.5
    # annotated boundaries: every cycle right -> 1.0
    assert summary["paired"] == pytest.approx(0.75)
    assert summary["all_annotated"] == pytest.approx(0.5)
    assert summary["annotated"] == pytest.approx(1.0)
    assert all(isinstance(summary[k], float) for k in KINDS)
    assert (summary["annotated_cycles"], summary["detected_cycles"],
            summary["paired_cycles"]) == (4, 4, 3)
    missed = report["overall"]["not_paired"]["annotated_never_detected"]
    extra = report["overall"]["not_paired"]["detected_without_annotation"]
    assert missed == {"count": 1, "by_class": {"Normal": 0, "Crackle": 0, "Wheeze": 1,
                                               "Both": 0}}
    assert extra["count"] == 1 and extra["by_finding"]["Wheeze"] == 1
    assert [d["device"] for d in report["per_device"]] == ["Meditron"]
    assert report["per_device"][0]["paired"]["score"] == pytest.approx(0.75)


def test_rows_scored_by_a_model_that_trained_on_them_say_in_sample():
    report = summarise_icbhi([fake_result(in_sample=True)], n_boot=5)
    assert report["summary"]["in_sample"] is True
    table = icbhi_table(report)
    score_rows = [line for line in table.splitlines() if "paired cycles" in line]
    assert score_rows and all("IN-SAMPLE" in line for line in score_rows)
    honest = icbhi_table(summarise_icbhi([fake_result(False, fold="without-Meditron")], 5))
    assert "IN-SAMPLE" not in honest and "held-out device" in honest
    assert in_sample_label([True, False, False], "x") == "1/3 IN-SAMPLE"


def test_detector_in_sample_follows_its_manifest(tmp_path):
    fold = tmp_path / "fold0.npz"
    (tmp_path / "fold0.npz.manifest.json").write_text(json.dumps(
        {"trained_on": {"held_out_patients": ["101"], "seed": 0}}))
    assert not detector_in_sample(fold, fake_rec("101"))
    assert detector_in_sample(fold, fake_rec("102"))
    assert detector_in_sample(None, fake_rec())  # the embedded final fit saw every one
    assert not detector_in_sample(None, fake_rec(split="test"))


def tiny_icbhi(root: Path) -> Path:
    """One ICBHI recording in the project's FLAC layout (1 s of silence)."""
    base = root / "icbhi2017"
    (base / "annotations").mkdir(parents=True)
    (base / "audio").mkdir()
    name = "101_1b1_Al_sc_Meditron"
    (base / "official_split.txt").write_text(f"{name}\ttrain\n")
    (base / "annotations" / f"{name}.txt").write_text("0.0 1.0 0 0\n")
    sf.write(base / "audio" / f"{name}.flac", np.zeros(4000, dtype=np.int16), 4000)
    return root


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_missing_fold_model_is_a_one_line_error_naming_the_command(tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.setenv("STETH_CACHE", str(tmp_path / "cache"))
    data = tiny_icbhi(tmp_path / "data")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('name = "never_trained"\n')
    assert main(["--split", "icbhi", "--data", str(data), "--lodo-config", str(recipe)]) == 2
    line = one_error_line(capsys)
    assert "fold model missing" in line and f"steth-lodo {recipe} --folds Meditron" in line
    assert main(["--split", "icbhi", "--data", str(data),
                 "--detector-cv", str(tmp_path / "no-run")]) == 2
    assert "steth-detector-train" in one_error_line(capsys)
    run = tmp_path / "cv-run"
    run.mkdir()
    (run / "folds.json").write_text(json.dumps({"folds": [
        {"weights": str(run / "fold0.npz"), "held_out_patients": ["101"]}]}))
    assert main(["--split", "icbhi", "--data", str(data), "--detector-cv", str(run)]) == 2
    line = one_error_line(capsys)
    assert "fold0.npz" in line and "steth-detector-train" in line
    assert main(["--split", "icbhi", "--data", str(data), "--detector-tune", "5"]) == 2
    assert "--detector-cv" in one_error_line(capsys)


def test_two_real_icbhi_recordings_replay_through_the_pipeline(shared_data, tmp_path, capsys):
    from steth.edge.assets import default_model_path
    from steth.edge.infer import CycleModel
    from steth.edge.pipeline import stream_events
    from steth.edge.segment import DetectorConfig

    recs = load_icbhi(shared_data, "train")[:2]
    note_loaded("icbhi", len(recs))
    out = tmp_path / "report.json"
    assert main(["--split", "icbhi", "--data", str(shared_data), "--limit", "2",
                 "--bootstrap", "5", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "IN-SAMPLE" in printed  # the shipped model trained on these recordings
    report = json.loads(out.read_text())
    assert all(isinstance(report["summary"][k], float) for k in KINDS)
    assert report["summary"]["annotated_cycles"] == sum(len(r.events) for r in recs)
    model = CycleModel(default_model_path())
    first = report["per_recording"][0]
    assert first["classifier"]["sha256"] == model.manifest.weights_sha256
    assert first["classifier"]["in_sample"] and first["detector"]["in_sample"]
    # A chosen detector config with the embedded weights replays as the default does.
    audio, rate = load_audio(recs[0].audio_path)
    from steth.edge.features import float_to_pcm16

    pcm = float_to_pcm16(audio)
    keys = ("start", "end", "finding", "p_crackle", "p_wheeze")
    ours = [[c[k] for k in keys] for c in stream_events(
        pcm, rate, model, detector=DetectorConfig()) if c["type"] == "cycle"]
    theirs = [[c[k] for k in keys] for c in stream_events(pcm, rate, model)
              if c["type"] == "cycle"]
    assert ours == theirs and ours
