"""The record rule fitted on detected cycles (``steth-stream-eval --verdict-rule
detected-validation``): it streams only the run's validation records, counts the cycles as
the edge's record does, and picks the grid rule with the best record score."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from steth.edge import events as ev
from steth.edge.assets import ASSETS_DIR
from steth.edge.features import FeatureConfig
from steth.edge.infer import CycleModel
from steth.edge.labels import CycleFinding, VerdictRule, record_verdict
from steth.models import stream_eval
from steth.models.datasets import Recording, load_sprsound
from steth.models.stream_eval import (
    fit_rule_on_detected_validation,
    load_rule,
    main,
    record_rule_table,
    stream_record,
)
from steth.models.verdict_fit import (
    fit_verdict_rule,
    manifest_validation_split,
    record_task_scores,
    rule_grid,
    validation_records,
)
from tests.conftest import note_loaded

MODEL = ASSETS_DIR / "breathnet.int8.onnx"
MANIFEST_RULE = VerdictRule(min_cycles=2, poor_quality_fraction=0.9)


def cycle_event(finding: str, *, settling: bool = False, poor: bool = False) -> dict:
    return ev.make_cycle(cycle_id=0, start=0, end=16000, rate_hz=8000.0, wall_start=0.0,
                         finding=finding, p_crackle=0.0, p_wheeze=0.0,
                         quality="poor" if poor else "ok", settling=settling)


def fake_stream(events_of: dict[str, list[dict]], streamed: list[str]):
    """A stand-in for the pipeline replay: canned events, and a log of what was replayed."""
    def stream_recording(model, rec: Recording, detector=None) -> list[dict]:
        streamed.append(rec.key)
        return events_of.get(rec.key, [])
    return stream_recording


def fake_model(rule: VerdictRule = MANIFEST_RULE) -> SimpleNamespace:
    return SimpleNamespace(manifest=SimpleNamespace(verdict_rule=rule))


def test_the_detected_fit_replays_exactly_the_validation_records_and_no_test_record(
        shared_data, monkeypatch):
    streamed: list[str] = []
    monkeypatch.setattr(stream_eval, "stream_recording", fake_stream({}, streamed))
    val_fraction, seed = manifest_validation_split(CycleModel(MODEL).manifest.data)
    fit = fit_rule_on_detected_validation(fake_model(), shared_data, val_fraction, seed)
    validation = {r.key for r in validation_records(shared_data, val_fraction, seed)}
    test = {r.key for r in load_sprsound(shared_data, "test")}
    note_loaded("sprsound-test", len(test))
    assert sorted(streamed) == sorted(validation) == sorted(fit.records)
    assert not set(streamed) & test
    assert all(key.startswith("sprsound/train/") for key in streamed)


def test_the_manifest_split_is_the_one_the_manifest_rule_was_fit_on(shared_data):
    manifest = CycleModel(MODEL).manifest.data
    val_fraction, seed = manifest_validation_split(manifest)
    fitted_on = manifest["training"]["verdict_rule_fit"]["records"]
    assert len(validation_records(shared_data, val_fraction, seed)) == fitted_on


def synthetic_records() -> tuple[list[Recording], dict[str, list[dict]],
                                 list[list[CycleFinding]]]:
    """Normal and DAS records seen two ways.

    Tiled windows (about ten per record): a Normal record has one or two spurious crackle
    windows, a DAS record five. Detected cycles (three per record, after one settling
    cycle that shows a crackle): a Normal record has at most one crackle cycle, a DAS
    record two. "Three crackle windows" separates the tiled records and calls every
    detected DAS record Normal; "two crackle cycles" separates the detected ones only if
    the settling cycle is left out, as the edge's record leaves it out.
    """
    records, events_of, tiled = [], {}, []
    for i in range(20):
        for label in ("Normal", "DAS"):
            rec = Recording("sprsound", f"{label}{i}", Path(f"/nonexistent/{label}{i}.flac"),
                            f"p{i}", "train", label)
            crackles = (i % 2) if label == "Normal" else 2
            findings = ["Crackle"] * crackles + ["Normal"] * (3 - crackles)
            events_of[rec.key] = ([cycle_event("Crackle", settling=True)]
                                  + [cycle_event(f) for f in findings])
            windows = 1 + i % 2 if label == "Normal" else 5
            tiled.append([CycleFinding(True, False)] * windows
                         + [CycleFinding(False, False)] * (9 - windows))
            records.append(rec)
    return records, events_of, tiled


def test_on_detected_cycles_the_fit_picks_another_rule_than_on_tiled_windows(monkeypatch):
    records, events_of, tiled = synthetic_records()
    labels = [str(r.record_label) for r in records]
    tiled_rule, tiled_scores = fit_verdict_rule(tiled, labels)
    assert tiled_scores["mean"] == 1.0 and tiled_rule.min_cycles >= 3

    streamed: list[str] = []
    monkeypatch.setattr(stream_eval, "stream_recording", fake_stream(events_of, streamed))
    monkeypatch.setattr(stream_eval, "validation_records", lambda *_: records)
    fit = fit_rule_on_detected_validation(fake_model(tiled_rule), Path("/nonexistent"), 0.15, 1)

    detected = [stream_record(fake_model(), r).findings for r in records]
    best = max(record_task_scores(detected, labels, rule)["mean"] for rule in rule_grid())
    assert fit.scores["mean"] == pytest.approx(best) == pytest.approx(1.0)
    assert fit.rule != tiled_rule and fit.rule.min_cycles == 2
    assert fit.manifest_rule_scores["mean"] < 0.9  # the tiled rule misses every DAS record
    assert all(record_verdict(f, fit.rule).label == t
               for f, t in zip(detected, labels, strict=True))


def test_a_settling_or_poor_cycle_counts_as_the_edge_counts_it():
    rec = Recording("sprsound", "r", Path("/nonexistent/r.flac"), "p", "train", "Normal")
    events = [cycle_event("Crackle", settling=True), cycle_event("Wheeze", poor=True),
              cycle_event("Normal")]
    stream = fake_stream({rec.key: events}, [])
    original = stream_eval.stream_recording
    try:
        stream_eval.stream_recording = stream
        findings = stream_record(fake_model(), rec).findings
    finally:
        stream_eval.stream_recording = original
    # The likelihoods travel too (the learned verdict reads them): 0.0 in these events.
    assert findings == [CycleFinding(False, True, True, 0.0, 0.0),
                        CycleFinding(False, False, False, 0.0, 0.0)]


def test_the_streamed_verdict_is_the_record_rule_over_the_counted_cycles(shared_data):
    """So a rule other than the manifest's gives what the edge would show with it."""
    model = CycleModel(MODEL, expected_feature_hash=FeatureConfig().hash())
    records = validation_records(shared_data, *manifest_validation_split(model.manifest.data))
    note_loaded("sprsound-train", 6)
    for rec in records[:6]:
        streamed = stream_record(model, rec)
        assert streamed.verdict == record_verdict(streamed.findings,
                                                  model.manifest.verdict_rule).label


def test_a_rule_is_read_from_its_fields_a_manifest_or_a_report(tmp_path):
    rule = VerdictRule(min_cycles=1, min_fraction=0.3, poor_quality_fraction=0.7)
    for name, data in (("fields", rule.to_dict()), ("manifest", {"verdict_rule": rule.to_dict()}),
                       ("report", {"verdict_rule_fit": {"rule": rule.to_dict()}})):
        (tmp_path / name).write_text(json.dumps(data))
        assert load_rule(tmp_path / name) == rule


def test_the_record_rule_table_shows_each_way_with_its_gap_to_tiled():
    def results(score: float) -> dict:
        return {t: {"combined": {"score": score, "ci95": [score - 0.05, score + 0.05]}}
                for t in ("2-1", "2-2")}
    table = record_rule_table(results(0.60), results(0.57), results(0.59), "fitted")
    assert "| record task | tiled | streamed (manifest rule) | streamed (fitted) |" in table
    assert "| 2-1 (combined) | 0.600 (0.550–0.650) | 0.570 (0.520–0.620), -3.0 pts | " \
           "0.590 (0.540–0.640), -1.0 pts |" in table


def test_verdict_rule_is_refused_for_icbhi(capsys):
    with pytest.raises(SystemExit):
        main(["--split", "icbhi", "--verdict-rule", "detected-validation"])
    assert "--verdict-rule applies to the SPRSound" in capsys.readouterr().err


def test_with_a_choice_both_forms_are_cross_validated_on_the_detected_cycles(monkeypatch):
    records, events_of, _ = synthetic_records()
    monkeypatch.setattr(stream_eval, "stream_recording", fake_stream(events_of, []))
    monkeypatch.setattr(stream_eval, "validation_records", lambda *_: records)
    fit = fit_rule_on_detected_validation(fake_model(), Path("/nonexistent"), 0.15, 1,
                                          choose=True)
    assert fit.choice is not None
    cv = fit.choice["cross_validated"]
    assert set(cv) == {"rule", "learned"} and fit.choice["folds"] == 5
    kept = "learned" if cv["learned"]["mean"] > cv["rule"]["mean"] else "rule"
    assert fit.choice["kind"] == kept
    assert (fit.rule.learned is not None) == (kept == "learned")
    assert fit.to_dict()["fit"]["choice"] == fit.choice
    detected = [stream_record(fake_model(), r).findings for r in records]
    labels = [str(r.record_label) for r in records]
    assert record_task_scores(detected, labels, fit.rule)["mean"] == pytest.approx(
        fit.scores["mean"])
