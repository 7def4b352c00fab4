"""Out-of-fold record verdicts: the groups keep a patient together, an out-of-fold run leaves
exactly its group out of training, and the verdict is fitted on out-of-fold records and
chosen on validation records."""

from __future__ import annotations

from pathlib import Path

from steth.edge.labels import CycleFinding
from steth.models.data import out_of_fold_groups
from steth.models.datasets import Recording
from steth.models.train import TrainConfig, out_of_fold_recordings, training_recordings
from steth.models.verdict_oof import choose_out_of_fold, main
from tests.conftest import REPO_ROOT

RECIPE = REPO_ROOT / "models" / "configs" / "breathnet.toml"


def rec(i: int, patient: str) -> Recording:
    return Recording("sprsound", f"r{i}", Path(f"/nonexistent/r{i}.wav"), patient, "train",
                     "Normal")


def test_a_patients_recordings_share_one_group():
    recordings = [rec(i, f"p{i % 7}") for i in range(40)]
    groups = out_of_fold_groups(recordings, 3, seed=1)
    by_patient: dict[str, set[int]] = {}
    for r, g in zip(recordings, groups, strict=True):
        by_patient.setdefault(r.patient, set()).add(g)
    assert all(len(g) == 1 for g in by_patient.values())
    assert set(groups) == {0, 1, 2}


def test_an_out_of_fold_run_leaves_out_exactly_its_group(shared_data):
    cfg = TrainConfig.from_toml(RECIPE)
    cfg.max_recordings = 120
    full_train, full_val = training_recordings(cfg, shared_data)
    left_out: set[str] = set()
    for fold in range(3):
        cfg.oof_fold = fold
        train, val = training_recordings(cfg, shared_data)
        held = out_of_fold_recordings(cfg, shared_data)
        assert [r.key for r in val] == [r.key for r in full_val]  # one validation split
        assert {r.key for r in train} | {r.key for r in held} == {r.key for r in full_train}
        assert not {r.patient for r in train} & {r.patient for r in held}
        left_out |= {r.key for r in held}
    assert left_out == {r.key for r in full_train}


def findings(p_crackle: float, n: int = 6) -> list[CycleFinding]:
    return [CycleFinding(True, False, False, p_crackle, 0.05)] * n


def test_the_verdict_is_fitted_out_of_fold_and_chosen_on_validation():
    # Every cycle is flagged, so only the likelihoods tell DAS from Normal: the counting
    # rule cannot, and validation says so.
    oof = [findings(0.42), findings(0.9)] * 15
    oof_labels = ["Normal", "DAS"] * 15
    validation = [findings(0.43), findings(0.88)] * 5
    validation_labels = ["Normal", "DAS"] * 5
    choice = choose_out_of_fold(oof, oof_labels, validation, validation_labels)
    assert choice.kind == "learned" and choice.rule.learned is not None
    assert choice.validation["learned"]["mean"] == 1.0 > choice.validation["rule"]["mean"]
    assert (choice.oof_records, choice.validation_records) == (30, 10)
    # When validation cannot tell them apart, the simpler counting rule is kept.
    counted = [[CycleFinding(True, False)] * 5 + [CycleFinding(False, False)] * 4,
               [CycleFinding(False, False)] * 9] * 15
    counted_labels = ["DAS", "Normal"] * 15
    choice = choose_out_of_fold(counted, counted_labels, counted[:10], counted_labels[:10])
    assert choice.kind == "rule" and choice.rule.learned is None


def test_an_untrained_fold_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STETH_CACHE", str(tmp_path))
    model = str(REPO_ROOT / "edge" / "assets" / "breathnet.int8.onnx")
    code = main([str(RECIPE), "--seed", "1", "--model", model])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("steth-verdict-oof: ")
    assert "not trained yet" in err and "--oof-fold 0" in err
    # The shipped model was validated with seed 1: another seed's split is refused.
    assert main([str(RECIPE), "--seed", "7", "--model", model]) == 2
    assert "pass its --seed" in capsys.readouterr().err
