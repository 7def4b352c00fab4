"""Edge pipeline: events on synthetic breaths, gaps, stale detection, inference isolation.

The detector's own tests are in test_segment.py."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from steth.edge.decode import AudioChunk, Gap
from steth.edge.event_schema import validate
from steth.edge.features import FeatureConfig
from steth.edge.infer import CycleModel
from steth.edge.pipeline import Pipeline
from steth.edge.protocol import DeviceInfo
from tests.foundation.tiny_model import make_tiny_model

RATE = 8000


def synthetic_breathing(period_s: float, n_breaths: int, seed: int = 0) -> np.ndarray:
    """Band noise whose loudness follows inspiration (40 %) / expiration (35 %) / pause."""
    rng = np.random.default_rng(seed)
    n = int(period_s * RATE)
    t = np.arange(n) / n
    shape = np.where(t < 0.4, np.sin(np.pi * t / 0.4),
                     np.where(t < 0.75, 0.6 * np.sin(np.pi * (t - 0.4) / 0.35), 0.0))
    envelope = np.tile(shape, n_breaths) + 0.02
    return 0.2 * envelope * rng.standard_normal(envelope.size)


@pytest.fixture()
def tiny_model(tmp_path):
    return CycleModel(make_tiny_model(tmp_path), expected_feature_hash=FeatureConfig().hash())


def device_info(rate: int = RATE) -> DeviceInfo:
    return DeviceInfo(device_id=0x1234, fw_major=1, fw_minor=0, fw_patch=0, sensor_type=1,
                      sample_rate_hz=rate, bit_depth=16, gain=1, codec=0, link=0,
                      frame_samples=256)


def chunks(audio: np.ndarray, start: int = 0, size: int = 256):
    pcm = np.clip(audio * 32767, -32768, 32767).astype(np.int16)
    for i in range(0, pcm.size, size):
        yield AudioChunk(start + i, pcm[i:i + size], RATE)


def run_pipeline(model, audio, *, gap_at: int | None = None):
    out: list[dict] = []
    lock = threading.Lock()

    def emit(e: dict) -> None:
        with lock:
            out.append(e)

    pipe = Pipeline(model, emit, simulated=False, transport="test")
    pipe.handle(device_info(), 0.0)
    now = 0.0
    for chunk in chunks(audio):
        if gap_at is not None and chunk.start_index == gap_at:
            pipe.handle(Gap(gap_at, gap_at + 800, 800, "lost_frames"), now)
        now += chunk.samples.size / RATE
        pipe.handle(chunk, now)
        pipe.tick(now)
    pipe.close()
    return out


def test_pipeline_emits_valid_cycle_and_verdict_events(tiny_model):
    events = run_pipeline(tiny_model, synthetic_breathing(3.0, 8))
    assert all(validate(e) == [] for e in events), [validate(e) for e in events if validate(e)]
    cycles = [e for e in events if e["type"] == "cycle"]
    assert len(cycles) >= 5
    assert all(c["end"] > c["start"] for c in cycles)
    assert [c["start"] for c in cycles[1:]] == [c["end"] for c in cycles[:-1]]
    verdicts = [e for e in events if e["type"] == "verdict"]
    assert verdicts[-1]["cycles"] == len(cycles)
    assert not any(e.get("simulated") for e in events)


def test_gap_is_reported_and_never_stitched(tiny_model):
    events = run_pipeline(tiny_model, synthetic_breathing(3.0, 8), gap_at=256 * 200)
    gaps = [e for e in events if e["type"] == "gap"]
    assert len(gaps) == 1
    cycles = [e for e in events if e["type"] == "cycle"]
    assert not any(c["start"] < 256 * 200 < c["end"] for c in cycles)


def test_stale_reported_within_two_seconds_and_recovery(tiny_model):
    out: list[dict] = []
    pipe = Pipeline(tiny_model, out.append, simulated=True, transport="test")
    pipe.handle(device_info(), 0.0)
    pipe.handle(next(chunks(np.zeros(256))), 10.0)
    pipe.tick(11.9)
    assert not [e for e in out if e["type"] == "stale"]
    pipe.tick(12.0)
    stale = [e for e in out if e["type"] == "stale"]
    assert stale and stale[0]["state"] == "stale" and stale[0]["simulated"] is True
    pipe.handle(AudioChunk(256, np.zeros(256, np.int16), RATE), 13.0)
    assert [e["state"] for e in out if e["type"] == "stale"] == ["stale", "recovered"]
    pipe.close()


class GatedModel:
    """Wraps a model so no prediction finishes until the test opens the gate.

    A gate instead of a sleep keeps the test independent of machine load: if the I/O path
    waited for the model, feeding would block until the gate's safety timeout.
    """

    def __init__(self, model: CycleModel, timeout: float = 30.0) -> None:
        self._model = model
        self.gate = threading.Event()
        self.timeout = timeout
        self.timed_out = False

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def predict_cycle(self, frames):
        if not self.gate.wait(self.timeout):
            self.timed_out = True
        return self._model.predict_cycle(frames)


def test_slow_model_does_not_stall_the_io_thread(tiny_model):
    audio = synthetic_breathing(2.0, 10)
    out: list[dict] = []
    model = GatedModel(tiny_model)
    pipe = Pipeline(model, out.append, simulated=False,  # type: ignore[arg-type]
                    transport="test")
    pipe.handle(device_info(), 0.0)
    for chunk in chunks(audio):
        pipe.handle(chunk, 0.0)
    # All 20 s of audio went in while the model had finished nothing.
    finished_while_feeding = len([e for e in out if e["type"] == "cycle"])
    queued = pipe.worker.jobs.qsize()
    model.gate.set()
    pipe.close(timeout=30)
    n_cycles = len([e for e in out if e["type"] == "cycle"])
    assert not model.timed_out
    assert finished_while_feeding == 0 and queued >= 5
    assert n_cycles >= 6 and pipe.worker.dropped == 0


def test_the_frame_ring_keeps_the_newest_frames_across_its_wrap():
    from steth.edge.pipeline import FrameRing

    ring = FrameRing(10, 2)
    frames = np.arange(34.0).reshape(17, 2)
    for first, last, clipped in ((0, 4, 1), (4, 9, 2), (9, 13, 3), (13, 17, 4)):
        ring.append(frames[first:last], clipped, float(last))
    assert ring.holds(7, 17) and not ring.holds(6, 17)
    taken, clipped, power = ring.take(7, 17)
    assert np.array_equal(taken, frames[7:17])
    assert clipped == 3 + 4  # counted once per append, at its first frame
    assert power == pytest.approx((2 * 9 + 4 * 13 + 4 * 17) / 10)
