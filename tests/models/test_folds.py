"""Leave-one-device-out folds and the per-device report (ICBHI Score per stethoscope)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from steth.edge.infer import CycleModel
from steth.models.benchmark import Collected, device_rows, recording_device, score
from steth.models.datasets import Event, Recording, load_icbhi
from steth.models.folds import ALL_ICBHI, build_folds, fold_training_recordings
from tests.foundation.tiny_model import make_tiny_model


def rec(patient: str, device: str, index: int = 1) -> Recording:
    name = f"{patient}_{index}b1_Al_sc_{device}"
    return Recording("icbhi", name, Path(f"/nonexistent/{name}.flac"), patient, "train", None,
                     (Event(0.0, 1.0, "Normal", False, False),), None, "Al", device)


def test_a_patient_with_any_recording_on_the_held_out_device_never_trains_in_that_fold():
    # Patient 226 is recorded with two stethoscopes, as in the ICBHI recordings here.
    recs = [rec("101", "Meditron"), rec("226", "Meditron"), rec("226", "LittC2SE", 2),
            rec("300", "LittC2SE"), rec("400", "AKGC417L")]
    folds = {f.held_out: f for f in build_folds(recs)}
    assert set(folds) == {"AKGC417L", "LittC2SE", "Meditron", ALL_ICBHI}
    litt = folds["LittC2SE"]
    assert {r.patient for r in litt.train} == {"101", "400"}  # 226's Meditron take is out too
    assert {r.rec_id for r in litt.test} == {"226_2b1_Al_sc_LittC2SE", "300_1b1_Al_sc_LittC2SE"}
    assert {r.patient for r in folds["AKGC417L"].train} == {"101", "226", "300"}
    assert folds[ALL_ICBHI].train == () and len(folds[ALL_ICBHI].test) == len(recs)
    assert fold_training_recordings(recs, "") == recs


def test_folds_on_the_real_recordings_keep_held_out_patients_out_of_training(shared_data):
    recs = load_icbhi(shared_data, "train")
    folds = build_folds(recs)
    assert [f.held_out for f in folds] == ["AKGC417L", "LittC2SE", "Meditron", ALL_ICBHI]
    assert len({r.device for r in recs if r.patient == "226"}) == 2  # two stethoscopes
    for fold in folds[:-1]:
        scored = {r.patient for r in fold.test}
        assert scored and not scored & {r.patient for r in fold.train}
        assert all(r.device == fold.held_out for r in fold.test)
        users = {r.patient for r in recs if r.device == fold.held_out}
        assert not users & {r.patient for r in fold.train}
    assert sum(len(f.test) for f in folds[:-1]) == len(recs)


def test_device_rows_count_patients_cycles_and_the_all_normal_baseline():
    collected = Collected()
    meditron = rec("101", "Meditron")
    for true, pred in [("Normal", "Normal"), ("Normal", "Crackle"), ("Crackle", "Crackle"),
                       ("Wheeze", "Normal")]:
        collected.add_cycle(meditron, true, pred)
    collected.add_cycle(rec("102", "Meditron"), "Both", "Both")
    spr = Recording("sprsound", "x", Path("x.flac"), "p9", "test", "Normal")
    collected.add_cycle(spr, "Normal", "Normal")
    rows = {r["device"]: r for r in device_rows(collected.by_device, n_boot=20)}
    assert recording_device(spr) == "Yunting-II" and set(rows) == {"Meditron", "Yunting-II"}
    m = rows["Meditron"]
    assert (m["patients"], m["cycles"], m["abnormal_cycles"]) == (2, 5, 3)
    assert m["se"] == pytest.approx(2 / 3) and m["sp"] == pytest.approx(0.5)
    assert m["score"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert m["all_normal_score"] == pytest.approx(0.5)
    assert m["ci95"][0] <= m["score"] <= m["ci95"][1]


def test_the_benchmark_reports_every_icbhi_device_in_sample_when_asked(shared_data, tmp_path):
    model = CycleModel(make_tiny_model(tmp_path))
    report = score(model, shared_data, "icbhi", n_boot=10, show_progress=False,
                   icbhi_split="train")
    rows = {r["device"]: r for r in report["per_device"]}
    assert set(rows) == {"AKGC417L", "LittC2SE", "Meditron"}
    assert sum(r["cycles"] for r in rows.values()) == report["results"]["icbhi-test"][
        "icbhi"]["n"]
    assert rows["LittC2SE"]["patients"] == 5 and rows["Meditron"]["patients"] == 7
    assert report["meta"]["icbhi_split"] == "train" and report["meta"]["icbhi_in_sample"] is True
    # ICBHI cycles are timed like SPRSound events: one time per scored cycle.
    assert math.isfinite(report["meta"]["cycle_ms_median"])
    assert report["meta"]["cycle_ms_p95"] >= report["meta"]["cycle_ms_median"] > 0


def test_the_lodo_summary_names_the_sprsound_only_fold_in_its_guard_line(capsys):
    from steth.models.folds import ALL_ICBHI, fold_name
    from steth.models.lodo import print_summary

    name = fold_name(ALL_ICBHI)

    row = {"device": "Meditron", "patients": 7, "cycles": 288, "se": 0.3, "sp": 0.7,
           "score": 0.5, "ci95": [0.4, 0.6], "all_normal_score": 0.5}
    guard = {"fold": name, "held_out_fire_rate": 1.0, "held_out_recordings": 43,
             "sprsound_test_fire_rate": 0.041, "validation_fire_rate": 0.048,
             "score_by_flag": [{"device": "flagged", "score": 0.509, "cycles": 442}]}
    print_summary({"recipe": "breathnet", "version": "0.3.0", "seed": 0, "epochs": 20,
                   "folds": [{"fold": name, **row}], "pooled": None, "guard": [guard],
                   "mean_device_score": None, "sprsound_only_mean_device_score": 0.5,
                   "missing_folds": []})
    out = capsys.readouterr().out
    assert "guard [all-icbhi]: fires on 100% of 43" in out
    assert "all-icbhi fold (SPRSound only), mean over devices 0.500" in out
