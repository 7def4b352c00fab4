"""The record-verdict rule fit: picks the rule that scores best on the given records, and
rewrites manifests without touching the weights or breaking their hashes."""

from __future__ import annotations

import shutil

from steth.edge.assets import ASSETS_DIR
from steth.edge.features import FeatureConfig
from steth.edge.labels import CycleFinding, VerdictRule, record_verdict
from steth.edge.manifest import load_manifest
from steth.models.verdict_fit import (
    apply_rule_to_manifests,
    fit_verdict_rule,
    record_task_scores,
    sibling_models,
)

EXPORTS = ASSETS_DIR

NORMAL_WINDOW = CycleFinding(False, False)
CRACKLE_WINDOW = CycleFinding(True, False)


def noisy_records() -> tuple[list[list[CycleFinding]], list[str]]:
    """Normal records with one or two spurious crackle windows; DAS records with many."""
    findings, labels = [], []
    for i in range(20):
        spurious = 1 + i % 2
        findings.append([CRACKLE_WINDOW] * spurious + [NORMAL_WINDOW] * 8)
        labels.append("Normal")
        findings.append([CRACKLE_WINDOW] * 5 + [NORMAL_WINDOW] * 4)
        labels.append("DAS")
    return findings, labels


def test_fit_rejects_spurious_windows_that_the_default_rule_counts():
    findings, labels = noisy_records()
    default = record_task_scores(findings, labels, VerdictRule())
    rule, scores = fit_verdict_rule(findings, labels)
    assert default["2-2"] < 0.75  # every Normal record is called DAS by "any window"
    assert scores["2-1"] == 1.0 and scores["2-2"] == 1.0
    assert 3 <= rule.min_cycles <= 5 or rule.min_fraction > 2 / 10
    assert all(record_verdict(f, rule).label == t for f, t in zip(findings, labels,
                                                                   strict=True))


def test_fit_needs_one_label_per_record():
    findings, labels = noisy_records()
    try:
        fit_verdict_rule(findings, labels[:-1])
    except ValueError as exc:
        assert "one findings list" in str(exc)
    else:
        raise AssertionError("mismatched lengths were accepted")


def test_rule_is_written_to_every_manifest_and_hashes_still_hold(tmp_path):
    for path in EXPORTS.glob("breathnet.*"):
        shutil.copy(path, tmp_path / path.name)
    models = sibling_models(tmp_path / "breathnet.int8.onnx")
    assert {p.name for p in models} >= {"breathnet.int8.onnx", "breathnet.fp32.onnx"}
    rule = VerdictRule(min_cycles=4, min_fraction=0.2, poor_quality_fraction=0.7)
    apply_rule_to_manifests(models, rule, {"2-1": 0.5, "2-2": 0.4, "mean": 0.45}, 7)
    for path in models:
        manifest = load_manifest(path, expected_feature_hash=FeatureConfig().hash())
        assert manifest.verdict_rule == rule
        assert manifest.data["training"]["verdict_rule_fit"]["records"] == 7
