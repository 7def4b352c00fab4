"""Metrics against values computed by hand."""

from __future__ import annotations

import pytest

from steth.models.metrics import (
    all_normal_baseline,
    biocas_scores,
    confusion_matrix,
    detection_recall_precision,
    expected_calibration_error,
    icbhi_scores,
    patient_bootstrap_ci,
    per_class_recall,
    task_scores,
    to_task_label,
)


def test_icbhi_score_by_hand():
    true = ["Normal"] * 4 + ["Crackle"] * 2 + ["Wheeze", "Both"]
    pred = ["Normal", "Normal", "Normal", "Crackle", "Crackle", "Both", "Wheeze", "Crackle"]
    s = icbhi_scores(true, pred)
    # Sp = 3/4; Se = (Crackle hit 1 + Wheeze hit 1 + Both miss) / 4 = 2/4
    assert s.sp == pytest.approx(0.75)
    assert s.se == pytest.approx(0.5)
    assert s.score == pytest.approx(0.625)


def test_biocas_task_1_2_by_hand():
    true = ["Normal", "Normal", "Fine Crackle", "Wheeze", "Rhonchi"]
    pred = ["Normal", "Wheeze", "Coarse Crackle", "Wheeze", "Rhonchi"]
    s = task_scores("1-2", true, pred)
    se, sp = 2 / 3, 1 / 2
    hs = 2 * se * sp / (se + sp)
    assert (s.se, s.sp) == (pytest.approx(se), pytest.approx(sp))
    assert s.hs == pytest.approx(hs)
    assert s.score == pytest.approx(((se + sp) / 2 + hs) / 2)


def test_task_1_1_counts_any_adventitious_as_a_hit():
    true = [to_task_label("1-1", x) for x in ("Fine Crackle", "Normal")]
    pred = [to_task_label("1-1", x) for x in ("Wheeze", "Normal")]
    assert task_scores("1-1", true, pred).score == pytest.approx(1.0)


def test_record_tasks_exclude_poor_quality_truth_but_punish_poor_predictions():
    true = ["Normal", "CAS", "Poor Quality", "DAS"]
    pred = ["Poor Quality", "CAS", "Normal", "DAS"]
    s = task_scores("2-2", true, pred)
    assert (s.n_normal, s.n_abnormal) == (1, 2)
    assert s.sp == 0.0 and s.se == 1.0
    assert s.hs == 0.0
    assert s.score == pytest.approx(0.25)
    s21 = task_scores("2-1", [to_task_label("2-1", t) for t in true],
                      [to_task_label("2-1", p) for p in pred])
    assert s21.se == 1.0


def test_hs_is_zero_when_se_and_sp_are_zero():
    s = biocas_scores(["Normal", "CAS"], ["CAS", "Normal"])
    assert (s.se, s.sp, s.hs, s.score) == (0.0, 0.0, 0.0, 0.0)


def test_all_normal_baselines():
    assert all_normal_baseline("icbhi", ["Normal", "Crackle", "Wheeze"]).score == 0.5
    assert all_normal_baseline("1-2", ["Normal", "Fine Crackle"]).score == 0.25
    assert all_normal_baseline("2-2", ["Normal", "CAS", "Poor Quality"]).score == 0.25


def test_confusion_recall_and_detection():
    labels = ("Normal", "Crackle")
    true, pred = ["Normal", "Normal", "Crackle"], ["Normal", "Crackle", "Crackle"]
    assert confusion_matrix(true, pred, labels).tolist() == [[1, 1], [0, 1]]
    assert per_class_recall(true, pred, labels) == {"Normal": 0.5, "Crackle": 1.0}
    r, p = detection_recall_precision(["Poor Quality", "Normal"], ["Poor Quality"] * 2,
                                      "Poor Quality")
    assert (r, p) == (1.0, 0.5)


def test_patient_bootstrap_interval_brackets_the_estimate_and_is_degenerate_when_perfect():
    true = ["Normal", "Crackle"] * 10
    pred = ["Normal", "Normal"] * 10
    patients = [str(i // 2) for i in range(20)]
    low, high = patient_bootstrap_ci(lambda t, p: icbhi_scores(t, p).score, true, pred,
                                     patients, n_boot=200)
    assert low == high == 0.5
    pred = ["Normal", "Crackle"] * 5 + ["Crackle", "Normal"] * 5
    low, high = patient_bootstrap_ci(lambda t, p: icbhi_scores(t, p).score, true, pred,
                                     patients, n_boot=200)
    assert low < 0.5 < high


def test_ece_by_hand():
    # bin 0.1-0.2 holds p=0.15 twice with one positive: |0.5-0.15| weighted 2/4;
    # bin 0.9-1.0 holds p=0.95 twice with two positives: |1-0.95| weighted 2/4.
    ece = expected_calibration_error([0.15, 0.15, 0.95, 0.95], [1, 0, 1, 1])
    assert ece == pytest.approx(0.5 * 0.35 + 0.5 * 0.05)
