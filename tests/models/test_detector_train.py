"""Breath-cycle detector training (models/detector_train.py): the offline teacher and the
causal student each lower their loss on a few real recordings within seconds; the teacher
sees the future and the student never does; the rate-band report counts what it should."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from steth.models.datasets import load_icbhi, load_sprsound
from steth.models.detect_eval import RecordingMatch, rate_bands
from steth.models.detector_train import (
    DetectorTrainConfig,
    TorchBoundaryNet,
    example_loss,
    make_example,
    new_net,
    pseudo_label,
    teacher_peaks,
    train_net,
)
from tests.conftest import note_loaded, require

# A seconds-long recipe: small nets, short crops, few steps, one thread.
TINY = DetectorTrainConfig(channels=8, teacher_channels=8, dilations=(1, 2, 4, 8), steps=60,
                           teacher_steps=60, batch_size=4, crop_frames=300, lr=0.01,
                           lookahead_frames=10, teacher=True)


@pytest.fixture(scope="module")
def few_examples(shared_data):
    torch.set_num_threads(1)
    icbhi = load_icbhi(shared_data, "train")[:3]
    spr = [r for r in load_sprsound(shared_data, "train") if r.events][:4]
    require(len(icbhi) == 3 and len(spr) == 4, "ICBHI / SPRSound training audio not found")
    note_loaded("icbhi", len(icbhi))
    note_loaded("sprsound_train", len(spr))
    return [make_example(r, TINY) for r in icbhi], [make_example(r, TINY) for r in spr]


def test_teacher_training_lowers_its_loss(few_examples):
    icbhi, spr = few_examples
    cfg = TINY.teacher_config()
    assert not cfg.causal and cfg.lookahead_frames == 0
    before = example_loss(new_net(cfg), icbhi + spr, cfg)
    teacher = train_net(icbhi, spr, cfg, log=lambda _: None)
    after = example_loss(teacher, icbhi + spr, cfg)
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("pseudo", ["soft", "peaks"])
def test_student_training_on_pseudo_labels_lowers_its_loss(few_examples, pseudo):
    icbhi, spr = few_examples
    cfg = replace(TINY, pseudo=pseudo, pseudo_threshold=0.3)
    teacher = train_net(icbhi, spr, cfg.teacher_config(), log=lambda _: None)
    labelled = pseudo_label(teacher, spr, cfg)
    # Every frame of a pseudo-labelled recording counts; the labels are the teacher's.
    assert all(ex.mask.all() and ex.y.shape == ex.x.shape[:1] for ex in labelled)
    assert all(float(ex.y.min()) >= 0.0 and float(ex.y.max()) <= 1.0 for ex in labelled)
    before = example_loss(new_net(cfg), icbhi + labelled, cfg)
    student = train_net(icbhi, labelled, cfg, log=lambda _: None)
    after = example_loss(student, icbhi + labelled, cfg)
    assert after < 0.8 * before, (before, after)


def test_student_is_causal_and_teacher_sees_the_future():
    torch.manual_seed(0)
    x = torch.randn(1, 200, 64)
    later = x.clone()
    later[:, 150:] += 5.0  # change only the future of frame 149
    for causal in (True, False):
        net = TorchBoundaryNet(64, 8, (1, 2, 4), causal=causal).eval()
        with torch.no_grad():
            a, b = net(x)[0, :150], net(later)[0, :150]
        assert torch.equal(a, b) == causal


def test_teacher_peaks_keep_the_larger_of_close_peaks():
    cfg = DetectorTrainConfig(pseudo_threshold=0.5)
    p = np.zeros(400)
    p[[50, 60, 200, 330]] = [0.6, 0.9, 0.7, 0.4]  # 60 beats 50 (10 frames apart); 330 < 0.5
    bumps = teacher_peaks(p, cfg)
    peaks = [i for i in range(1, 399) if bumps[i] == 1.0]
    assert peaks == [60, 200]


def test_rate_bands_count_pairs_by_the_annotated_rate_and_misses_by_their_own():
    # Cycles of 6 s (10/min), 4 s (15/min), 2.5 s (24/min) and 1.5 s (40/min).
    result = RecordingMatch(annotated=4, detected=4, onset_errors=[0.1, 0.2],
                            offset_errors=[0.3, 0.4], truth_rates=[10.0, 15.0, 24.0, 40.0],
                            matched_rates=[15.0, 24.0], unmatched_rates=[40.0, 50.0])
    bands = rate_bands([result])
    assert bands["<12"]["annotated"] == 1 and bands["<12"]["f1"] == 0.0
    assert bands["12-20"]["f1"] == 1.0 and bands["12-20"]["median_onset_error_s"] == 0.1
    assert bands["20-30"]["median_offset_error_s"] == 0.4
    assert bands[">30"]["unpaired_detections"] == 2 and bands[">30"]["recall"] == 0.0
