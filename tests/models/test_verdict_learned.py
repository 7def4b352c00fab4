"""The learned record verdict: its fit separates records that the flags alone cannot, its
cross-validation never scores a record with a verdict fitted on that patient, and the
choice between it and the counting rule follows the cross-validated scores."""

from __future__ import annotations

import numpy as np
import pytest

from steth.edge.labels import CycleFinding, VerdictRule, record_verdict
from steth.models.verdict_fit import (
    choose_verdict,
    cross_validated_verdicts,
    fit_learned_verdict,
    fit_verdict_rule,
    logistic_fit,
    patient_folds,
)


def cycle(p_crackle: float, *, flagged: bool = True, poor: bool = False) -> CycleFinding:
    return CycleFinding(flagged, False, poor, p_crackle, 0.05)


def likelihood_records(n: int = 30) -> tuple[list[list[CycleFinding]], list[str], list[str]]:
    """Every cycle is flagged Crackle, so counting flags cannot tell the records apart; the
    likelihoods can: DAS records sit near 0.9, Normal ones just over the threshold."""
    findings, labels, patients = [], [], []
    for i in range(n):
        findings.append([cycle(0.42 + 0.01 * (i % 3))] * 6)
        labels.append("Normal")
        findings.append([cycle(0.88 + 0.01 * (i % 3))] * 6)
        labels.append("DAS")
        patients += [f"n{i}", f"d{i}"]
    return findings, labels, patients


def test_logistic_fit_separates_and_lowers_the_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = x[:, 0] - 0.5 * x[:, 1] > 0.2
    coef = logistic_fit(x, y)
    predicted = coef[0] + x @ coef[1:] > 0
    assert (predicted == y).mean() > 0.9
    assert coef[1] > 0 > coef[2]


def test_logistic_fit_of_one_class_is_a_constant():
    x = np.ones((5, 3))
    assert np.array_equal(logistic_fit(x, np.zeros(5, bool))[1:], np.zeros(3))
    assert logistic_fit(x, np.zeros(5, bool))[0] < 0 < logistic_fit(x, np.ones(5, bool))[0]


def test_learned_verdict_uses_the_likelihoods_the_rule_cannot_see():
    findings, labels, _ = likelihood_records()
    _, rule_scores = fit_verdict_rule(findings, labels)
    learned, learned_scores = fit_learned_verdict(findings, labels)
    assert rule_scores["mean"] < 0.8  # same flags everywhere: one verdict for all
    assert learned.learned is not None
    assert learned.learned.max_cycles == 6  # the longest record it was fitted on
    assert learned_scores["2-1"] == 1.0 and learned_scores["2-2"] == 1.0
    assert [record_verdict(f, learned).label for f in findings] == labels


def test_learned_verdict_finds_poor_quality_records():
    findings, labels, _ = likelihood_records(20)
    for _ in range(8):  # records that are mostly poor cycles
        findings.append([cycle(0.1, flagged=False, poor=True)] * 5
                        + [cycle(0.1, flagged=False)])
        labels.append("Poor Quality")
    learned, _ = fit_learned_verdict(findings, labels)
    verdicts = [record_verdict(f, learned).label for f in findings]
    assert verdicts[-8:] == ["Poor Quality"] * 8
    assert "Poor Quality" not in verdicts[:-8]


def test_a_patients_records_share_one_fold():
    patients = ["a", "b", "a", "c", "b", "d", "e"]
    folds = patient_folds(patients, k=3)
    assert folds[0] == folds[2] and folds[1] == folds[4]
    assert set(folds) <= {0, 1, 2}


def test_cross_validation_fits_without_the_scored_patients():
    findings, labels, patients = likelihood_records(10)
    seen: list[set[int]] = []

    def spy(fit_findings, fit_labels):
        seen.append({id(f) for f in fit_findings})
        return VerdictRule(), {}

    cross_validated_verdicts(findings, labels, patients, spy, k=5)
    folds = patient_folds(patients, 5)
    assert len(seen) == 5
    for fold, fitted_on in enumerate(seen):
        held = {id(findings[i]) for i in np.flatnonzero(folds == fold)}
        assert held and not held & fitted_on


def test_choice_follows_cross_validation():
    findings, labels, patients = likelihood_records()
    choice = choose_verdict(findings, labels, patients)
    assert choice.kind == "learned"
    assert choice.cv_scores["learned"]["mean"] > choice.cv_scores["rule"]["mean"]
    # Flags that tell the records apart by count alone: the simpler rule is kept on a tie.
    counted = [[CycleFinding(True, False)] * (5 if t == "DAS" else 0)
               + [CycleFinding(False, False)] * 4 for t in labels]
    choice = choose_verdict(counted, labels, patients)
    assert choice.cv_scores["rule"]["mean"] == pytest.approx(1.0)
    assert choice.kind == "rule" and choice.rule.learned is None
