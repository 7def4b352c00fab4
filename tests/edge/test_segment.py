"""Breath-cycle detector (edge/segment.py): synthetic breaths, streaming invariance, decision
delay, the weights file and its manifest, and real recordings above measured floors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from steth.edge.assets import default_detector_path
from steth.edge.features import FeatureConfig, recording_features
from steth.edge.manifest import sha256_file
from steth.edge.segment import (
    MANIFEST_SUFFIX,
    BoundaryPicker,
    BreathCycleDetector,
    Cycle,
    DetectorConfig,
    DetectorWeightsError,
    detect_cycles,
    load_weights,
)
from tests.conftest import note_loaded, require
from tests.edge.test_pipeline import synthetic_breathing  # boundaries at k * period

RATE = 8000
FPS = FeatureConfig().frames_per_second


# ---------------------------------------------------------------- synthetic breaths


@pytest.mark.parametrize("period", [2.0, 3.0, 4.0])
def test_synthetic_boundaries_found_within_tolerance(period):
    frames = recording_features(synthetic_breathing(period, 10, seed=int(period)), RATE)
    cycles = BreathCycleDetector().push(frames)
    assert cycles and not any(c.forced for c in cycles)
    assert [c.first for c in cycles[1:]] == [c.last for c in cycles[:-1]]
    found = np.array([(c.first + 1) / FPS for c in cycles[:1]]
                     + [(c.last + 1) / FPS for c in cycles])
    true = np.arange(0, 10) * period  # inspiration onsets (the stream starts with one)
    error = np.abs(found[:, None] - true[None, :])
    # At least 7 of the 10 found within 0.25 s. Until the scores show a rhythm the picker
    # allows any gap of min_period_s, so expiration onsets may be taken early on (at 3 s
    # breathing two are, in the first 5 s); from the fifth boundary on, nothing but true
    # boundaries.
    assert np.count_nonzero(error.min(axis=0) <= 0.25) >= 7, (found, true)
    assert np.all(error.min(axis=1)[4:] <= 0.25), (found, true)


# ---------------------------------------------------------------- streaming


def push_in_random_blocks(detector: BreathCycleDetector, frames: np.ndarray,
                          seed: int) -> list[tuple[Cycle, int]]:
    """(cycle, frames pushed when it came out) for random block sizes 1..60."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < frames.shape[0]:
        n = int(rng.integers(1, 60))
        out += [(c, i + n) for c in detector.push(frames[i:i + n])]
        i += n
    return out


def test_block_size_invariance_and_bounded_decision_delay():
    frames = recording_features(synthetic_breathing(2.5, 12, seed=1), RATE)
    whole = BreathCycleDetector().push(frames)
    assert len(whole) >= 8
    detector = BreathCycleDetector()
    for seed in range(3):
        detector.reset()
        pieces = push_in_random_blocks(detector, frames, seed)
        assert [c for c, _ in pieces] == whole
    delay_frames = round(detector.decision_delay_s * FPS)
    assert detector.decision_delay_s <= 0.5  # the stated bound (lookahead + peak check)
    # Frame by frame: each cycle comes out as soon as the delay after its boundary frame has
    # passed (frame `last` plus lookahead + peak check), never later.
    detector.reset()
    seen = 0
    for t in range(frames.shape[0]):
        for cycle in detector.push(frames[t:t + 1]):
            assert not cycle.forced and t - cycle.last == delay_frames
            seen += 1
    assert seen == len(whole)


def test_reset_forgets_the_past():
    frames = recording_features(synthetic_breathing(3.0, 6, seed=2), RATE)
    detector = BreathCycleDetector()
    first = detector.push(frames)
    detector.reset()
    assert detector.push(frames) == first


def test_finish_closes_the_open_cycle_at_the_last_frame():
    frames = recording_features(synthetic_breathing(3.0, 6, seed=3), RATE)
    detector = BreathCycleDetector()
    pushed = detector.push(frames)
    tail = detector.finish()
    assert tail == [Cycle(pushed[-1].last, frames.shape[0] - 1, True)]
    assert detector.finish() == []  # nothing left open
    assert detect_cycles(frames) == pushed + tail


# ---------------------------------------------------------------- peak picking


def picker(**overrides) -> BoundaryPicker:
    config = DetectorConfig(**{"threshold": 0.5, "peak_frames": 3, "gap_fraction": 0.5,
                               "min_period_s": 1.0,
                               "max_cycle_s": 8.0, **overrides})
    return BoundaryPicker(config, FPS)


def bumps(n: int, at: list[int], height: float = 0.9) -> np.ndarray:
    scores = np.full(n, 0.05)
    for a in at:
        scores[a - 2:a + 3] = height * np.array([0.3, 0.6, 1.0, 0.6, 0.3])
    return scores


def test_picker_opens_at_the_first_boundary_and_closes_at_the_next():
    cycles = picker().push(bumps(800, [100, 300, 500]))
    assert cycles == [Cycle(100, 300), Cycle(300, 500)]


def test_picker_refractory_period_suppresses_close_peaks():
    # 40 frames (0.64 s) after a boundary is inside min_period_s = 1 s: ignored.
    cycles = picker().push(bumps(800, [100, 140, 300]))
    assert cycles == [Cycle(100, 300)]


def test_picker_ignores_peaks_below_threshold_and_forces_long_cycles():
    p = picker(max_cycle_s=4.0)
    cycles = p.push(bumps(800, [100, 200], height=0.4))
    max_cycle = round(4.0 * FPS)
    assert cycles == [Cycle(k * max_cycle, (k + 1) * max_cycle, True) for k in range(3)]


def test_picker_period_follows_recent_cycles():
    p = picker()
    p.push(bumps(1200, [100, 220, 340, 460, 580]))
    assert p.period_frames == pytest.approx(120)


# ---------------------------------------------------------------- weights file


def test_committed_weights_match_their_manifest():
    path = default_detector_path()
    manifest = json.loads(Path(str(path) + MANIFEST_SUFFIX).read_text())
    assert sha256_file(path) == manifest["weights_sha256"]
    assert manifest["feature_hash"] == FeatureConfig().hash()
    arrays, _ = load_weights(path, FeatureConfig())
    assert set(arrays) >= {"in_w", "in_b", "out_w", "out_b", "conv0_w"}


def copy_weights(tmp_path: Path) -> Path:
    src = default_detector_path()
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    shutil.copy(str(src) + MANIFEST_SUFFIX, str(dst) + MANIFEST_SUFFIX)
    return dst


def test_missing_weights_give_a_clear_error(tmp_path):
    with pytest.raises(DetectorWeightsError, match="detector weights not found"):
        BreathCycleDetector(config=DetectorConfig(weights=tmp_path / "nope.npz"))


def test_tampered_weights_fail_the_hash_check(tmp_path):
    path = copy_weights(tmp_path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DetectorWeightsError, match="does not match the manifest"):
        BreathCycleDetector(config=DetectorConfig(weights=path))


def test_weights_for_other_features_are_refused(tmp_path):
    path = copy_weights(tmp_path)
    with pytest.raises(DetectorWeightsError, match="retrain the detector"):
        BreathCycleDetector(FeatureConfig(n_mels=32), DetectorConfig(weights=path))


def test_mains_notch_setting_keeps_the_weights_valid():
    from dataclasses import replace

    base = FeatureConfig()
    notched = replace(base, filter=replace(base.filter, mains_hz=50.0))
    frames = recording_features(synthetic_breathing(3.0, 8, seed=4), RATE, notched)
    assert len(BreathCycleDetector(notched).push(frames)) >= 5


def test_missing_manifest_is_refused(tmp_path):
    path = copy_weights(tmp_path)
    Path(str(path) + MANIFEST_SUFFIX).unlink()
    with pytest.raises(DetectorWeightsError, match="cannot read the detector manifest"):
        BreathCycleDetector(config=DetectorConfig(weights=path))


def test_eval_cli_reports_bad_weights_in_one_line(tmp_path, capsys, shared_data):
    from steth.models.detect_eval import main

    assert main(["--data", str(shared_data), "--weights", str(tmp_path / "x.npz"),
                 "--no-sprsound"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("steth-detect-eval:") and "not found" in err and "\n" not in err


# ---------------------------------------------------------------- network and tracker


def reference_logits(arrays: dict[str, np.ndarray], dilations: list[int],
                     x: np.ndarray) -> np.ndarray:
    """The causal dilated stack written out frame by frame (zeros before the start)."""
    h = np.maximum(x @ arrays["in_w"].T + arrays["in_b"], 0.0)
    for k, d in enumerate(dilations):
        w, b = arrays[f"conv{k}_w"], arrays[f"conv{k}_b"]
        past = np.concatenate([np.zeros((2 * d, h.shape[1])), h])
        y = np.stack([w[:, :, 0] @ past[t] + w[:, :, 1] @ past[t + d] + w[:, :, 2] @ past[t + 2 * d]
                      for t in range(h.shape[0])])
        h = h + np.maximum(y + b, 0.0)
    return h @ arrays["out_w"] + arrays["out_b"].reshape(-1)[0]


def test_the_streaming_network_is_the_stack_in_any_blocks_and_after_a_reset():
    from steth.edge.segment import BLOCK_ROWS, BoundaryNet

    rng = np.random.default_rng(7)
    dilations = [1, 2, 4, 8]
    c, m = 6, 10
    arrays = {"in_w": rng.normal(size=(c, m)), "in_b": rng.normal(size=c),
              "out_w": rng.normal(size=c), "out_b": rng.normal(size=1)}
    for k in range(len(dilations)):
        arrays[f"conv{k}_w"] = rng.normal(size=(c, c, 3)) / 3
        arrays[f"conv{k}_b"] = rng.normal(size=c)
    net = BoundaryNet(arrays, {"dilations": dilations, "lookahead_frames": 3,
                               "norm_tau_frames": 100.0})
    x = rng.normal(size=(3 * BLOCK_ROWS + 100, m))
    expected = reference_logits(arrays, dilations, x)
    # Small blocks move the history back; one longer than the buffers makes them grow.
    for sizes in ([1, 6, 7, 2], [5, 2 * BLOCK_ROWS, 7]):
        net.reset()
        got, i, k = [], 0, 0
        while i < x.shape[0]:
            n = sizes[k % len(sizes)]
            got.append(net.push(x[i:i + n]))
            i, k = i + n, k + 1
        np.testing.assert_allclose(np.concatenate(got), expected, rtol=0, atol=1e-9)


def test_the_period_tracker_correlates_each_lag_as_the_plain_ring_does():
    from steth.edge.segment import PeriodTracker

    min_lag, max_lag, tau, floor = 3, 40, 200.0, 0.3
    tracker = PeriodTracker(min_lag, max_lag, tau, floor, 0.7)
    lags = np.arange(min_lag, max_lag + 1)
    ring, acf, pos = np.zeros(max_lag + 1), np.zeros(lags.size), 0
    decay = float(np.exp(-1.0 / tau))
    scores = np.random.default_rng(8).uniform(0.0, 1.0, 500)
    for t, score in enumerate(scores.tolist()):
        tracker.push(score)
        pos = (pos + 1) % ring.size
        ring[pos] = x = max(0.0, score - floor)
        acf *= decay
        acf += x * ring[(pos - lags) % ring.size]
        if t % 37 == 0:  # reading the period brings the lazily decayed sums up to date
            tracker.period()
            np.testing.assert_allclose(tracker.acf, acf, rtol=1e-9, atol=0)


# ---------------------------------------------------------------- torch twin


def test_numpy_network_matches_its_torch_twin():
    try:
        import torch
    except ImportError:
        require(False, "torch (the train extra) is not installed")
    from steth.edge.segment import BoundaryNet
    from steth.models.detector_train import TorchBoundaryNet

    torch.manual_seed(0)
    net = TorchBoundaryNet(64, 8, (1, 2, 4))
    arrays = {k: v.astype(np.float64) for k, v in net.numpy_arrays().items()}
    numpy_net = BoundaryNet(arrays, {"dilations": [1, 2, 4], "lookahead_frames": 5,
                                     "norm_tau_frames": 100.0})
    x = np.random.default_rng(0).standard_normal((200, 64)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)[None])[0].numpy()
    got = np.concatenate([numpy_net.push(x[:37].astype(np.float64)),
                          numpy_net.push(x[37:].astype(np.float64))])
    assert np.allclose(got, expected, atol=1e-4)


# ---------------------------------------------------------------- real recordings


# Floors = the value measured on the same slice with the committed weights, minus a margin.
# The committed weights were trained on all 43 ICBHI training recordings, so the ICBHI slice
# is an in-sample check (the honest number is the patient-grouped cross-validation quoted
# in the closing note); the SPRSound test slice was never used for training or tuning.
ICBHI_SLICE_F1_FLOOR = 0.60  # measured 0.640 (in-sample; 0.1.0: 0.701, trained without
# augmentation it fitted these recordings more closely, yet cross-validated worse)
SPRSOUND_SLICE_RECALL_FLOOR = 0.85  # measured 0.957 (0.1.0: 0.838)
SPRSOUND_SLICE_OUTSIDE_CEILING = 0.70  # measured 0.625 (about 60 % of the audio is unannotated)


def test_icbhi_slice_above_floor(shared_data):
    from steth.models.datasets import load_icbhi
    from steth.models.detect_eval import score_icbhi

    recordings = load_icbhi(shared_data, "train")
    require(len(recordings) >= 40, "ICBHI training audio (43 recordings) not found")
    chosen = recordings[::8]  # 6 recordings, 5 patients, 3 devices
    note_loaded("icbhi", len(chosen))
    result = score_icbhi(chosen, DetectorConfig())
    print(f"ICBHI slice ({len(chosen)} recordings): F1 {result.f1:.3f}, P {result.precision:.3f}"
          f", R {result.recall:.3f}")
    assert result.f1 >= ICBHI_SLICE_F1_FLOOR


def test_sprsound_test_slice_above_floor(shared_data):
    from steth.models.datasets import load_sprsound
    from steth.models.detect_eval import score_sprsound

    recordings = [r for r in load_sprsound(shared_data, "test") if r.events][:40]
    require(len(recordings) == 40, "SPRSound test recordings not found")
    note_loaded("sprsound_test", len(recordings))
    result = score_sprsound(recordings, DetectorConfig())
    print(f"SPRSound test slice: recall@0.3 {result['recall_iou_0.3']:.3f}, "
          f"outside {result['share_outside_annotations']:.3f}")
    assert result["recall_iou_0.3"] >= SPRSOUND_SLICE_RECALL_FLOOR
    assert result["share_outside_annotations"] <= SPRSOUND_SLICE_OUTSIDE_CEILING
