"""Distillation from teacher ensembles (models/distill.py, the soft-target loss in
models/train.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from steth.edge.infer import sigmoid
from steth.models.data import IGNORE, Sample
from steth.models.datasets import DataError
from steth.models.distill import (
    REPORT_FILE,
    SOFT_TARGETS_FILE,
    check_same_split,
    distill,
    ensemble,
    greedy_ensemble,
    soft_targets_from,
    softened,
)
from steth.models.train import (
    distillation_loss,
    loss_fn,
    run_dir,
    soft_target_terms,
    train,
)

from .test_training import tiny_config

N, SUBTYPES = 8, 7


def logits(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"findings": rng.normal(size=(N, 2)), "subtype": rng.normal(size=(N, SUBTYPES)),
            "quality": rng.normal(size=N)}


def student_outputs(seed: int) -> tuple[torch.Tensor, ...]:
    z = logits(seed)
    return (torch.tensor(z["findings"], dtype=torch.float32),
            torch.tensor(z["subtype"], dtype=torch.float32),
            torch.tensor(z["quality"][:, None], dtype=torch.float32))


def labelled_batch(soft) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(5)
    batch = {"findings": torch.tensor(rng.integers(0, 2, size=(N, 2)), dtype=torch.float32),
             "subtype": torch.tensor(rng.integers(0, SUBTYPES, size=N), dtype=torch.long),
             "poor": torch.tensor(rng.integers(0, 2, size=N), dtype=torch.float32)}
    batch.update(soft.rows(np.arange(N)))
    return batch


def test_at_temperature_one_with_one_teacher_each_head_is_cross_entropy_against_it():
    teacher = logits(1)
    soft = soft_targets_from([teacher], temperature=1.0, soft_weight=1.0)
    out = student_outputs(2)
    batch = labelled_batch(soft)
    terms = soft_target_terms(out, batch, 1.0)
    p_find = torch.tensor(sigmoid(teacher["findings"]), dtype=torch.float32)
    p_qual = torch.tensor(sigmoid(teacher["quality"]), dtype=torch.float32)
    p_sub = torch.softmax(torch.tensor(teacher["subtype"], dtype=torch.float32), dim=1)
    assert terms["findings"].item() == pytest.approx(
        F.binary_cross_entropy_with_logits(out[0], p_find).item(), rel=1e-6)
    assert terms["quality"].item() == pytest.approx(
        F.binary_cross_entropy_with_logits(out[2][:, 0], p_qual).item(), rel=1e-6)
    assert terms["subtype"].item() == pytest.approx(F.cross_entropy(out[1], p_sub).item(),
                                                    rel=1e-6)
    # With the hard-label weight 0 the loss is the heads' terms, weighted as the shared loss.
    cfg = tiny_config()
    sub_w = torch.ones(SUBTYPES)
    whole = distillation_loss(out, batch, cfg, sub_w, soft)
    expected = terms["findings"] + cfg.subtype_weight * terms["subtype"] + terms["quality"]
    assert whole.item() == pytest.approx(expected.item(), rel=1e-6)


def test_with_the_teacher_weight_zero_the_loss_is_the_label_loss():
    soft = soft_targets_from([logits(1)], temperature=2.0, soft_weight=0.0)
    out, batch, cfg = student_outputs(2), labelled_batch(soft), tiny_config()
    sub_w = torch.ones(SUBTYPES)
    assert distillation_loss(out, batch, cfg, sub_w, soft).item() == pytest.approx(
        loss_fn(out, batch, cfg, sub_w).item(), rel=1e-6)


def test_a_higher_temperature_softens_the_targets_and_the_ensemble_is_the_mean():
    a, b = logits(1), logits(3)
    sharp = soft_targets_from([a], 1.0, 1.0)
    soft = soft_targets_from([a], 4.0, 1.0)
    assert np.all(np.abs(soft.findings - 0.5) <= np.abs(sharp.findings - 0.5) + 1e-7)
    assert soft.subtype.max() < sharp.subtype.max()
    both = soft_targets_from([a, b], 2.0, 1.0)
    mean = ensemble([softened(a, 2.0), softened(b, 2.0)])
    np.testing.assert_allclose(both.findings, mean["findings"], rtol=1e-6)
    np.testing.assert_allclose(both.subtype.sum(axis=1), 1.0, rtol=1e-6)


def sample(subtype: int) -> Sample:
    return Sample(0, 0, 10, IGNORE, IGNORE, subtype, 0)


def member(flags: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Probabilities calling each cycle's crackle/wheeze as given, subtype to match."""
    findings = np.array([[0.9 if c else 0.1, 0.9 if w else 0.1] for c, w in flags])
    subtype = np.zeros((len(flags), SUBTYPES))
    for i, (c, w) in enumerate(flags):
        subtype[i, 5 if c else 2 if w else 0] = 1.0  # Fine Crackle / Wheeze / Normal
    return {"findings": findings, "subtype": subtype, "quality": np.full(len(flags), 0.1)}


def test_the_ensemble_is_grown_on_validation_and_stops_when_nothing_helps():
    truth = [(0, 0), (1, 0), (0, 1), (0, 0), (1, 0), (0, 1)]
    val = dataclasses.make_dataclass("V", ["samples"])(
        [sample(0 if t == (0, 0) else 5 if t[0] else 2) for t in truth])
    right, wrong = member(truth), member([(1 - c, 1 - w) for c, w in truth])
    chosen, steps = greedy_ensemble({"right": right, "wrong": wrong, "copy": right}, val)
    assert chosen[0] in ("right", "copy") and "wrong" not in chosen
    assert steps[0]["validation_mean"] == pytest.approx(1.0)
    assert len(chosen) == len(steps)


def test_a_teacher_trained_on_another_split_is_refused():
    student = tiny_config(split_seed=0)
    check_same_split(student, dataclasses.replace(student, seed=3))  # seeds may differ
    with pytest.raises(DataError, match="not trained on the student's split"):
        check_same_split(student, dataclasses.replace(student, split_seed=1))
    with pytest.raises(DataError, match="not trained on the student's split"):
        check_same_split(student, dataclasses.replace(student, window=64))


def test_steth_train_refuses_a_distillation_recipe(shared_data):
    cfg = tiny_config(distill={"teachers": ["t.toml"]})
    with pytest.raises(DataError, match="steth-distill"):
        train(cfg, shared_data, progress=False)


def test_a_student_learns_from_a_trained_teacher_and_caches_its_soft_targets(
        shared_data, tmp_path, monkeypatch):
    monkeypatch.setattr("steth.models.train.default_cache_root", lambda: tmp_path)
    monkeypatch.setattr("steth.models.distill.default_cache_root", lambda: tmp_path)
    teacher_toml = tmp_path / "teacher.toml"
    teacher_toml.write_text(
        'name = "tiny-teacher"\nsplit_seed = 0\nepochs = 2\nbatch_size = 16\n'
        'max_samples_per_epoch = 64\nmax_recordings = 12\nthreads = 1\n'
        '[net]\nchannels = [8, 16]\n')
    teacher = tiny_config(name="tiny-teacher", split_seed=0)
    train(teacher, shared_data, progress=False)
    student = tiny_config(name="tiny-student", split_seed=0, seed=1, epochs=5, augment={},
                          distill={"teachers": [str(teacher_toml)], "teacher_seeds": [0],
                                   "temperature": 2.0, "soft_weight": 0.5})
    run = distill(student, shared_data, progress=False)
    report = json.loads((run / REPORT_FILE).read_text())
    assert report["ensemble"]["members"] == ["tiny-teacher seed 0"]
    assert report["teachers"][0]["validation"]["mean"] == pytest.approx(
        report["ensemble"]["validation"]["mean"])  # one member: the ensemble is the teacher
    (folder,) = (tmp_path / "soft_targets").iterdir()  # one set of teachers, one folder
    cached = np.load(folder / SOFT_TARGETS_FILE)
    assert cached["findings"].shape[1] == 2 and cached["subtype"].shape[1] == SUBTYPES
    assert np.allclose(cached["subtype"].sum(axis=1), 1.0, atol=1e-5)
    losses = [h["loss"] for h in json.loads((run / "history.json").read_text())]
    # The soft terms cannot fall below the targets' own entropy (times T²), so the loss
    # falls by less than the label loss alone would.
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.1, losses
    assert run == run_dir(student)
    # Another student of the same split finds the same teachers' targets instead of
    # remaking them.
    before = (folder / SOFT_TARGETS_FILE).stat().st_mtime_ns
    other = dataclasses.replace(student, name="tiny-student-2", epochs=1)
    distill(other, shared_data, progress=False)
    assert (folder / SOFT_TARGETS_FILE).stat().st_mtime_ns == before
    assert (run_dir(other) / REPORT_FILE).read_text() == (folder / REPORT_FILE).read_text()
