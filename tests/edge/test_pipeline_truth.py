"""The pipeline reports what happened: breath rate only from good cycles, the device battery,
a sample rate far from nominal, and a new auscultation site starting the record over."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from steth.edge.decode import LinkStats, StatusReport
from steth.edge.event_schema import validate
from steth.edge.features import FeatureConfig
from steth.edge.infer import CycleModel
from steth.edge.pipeline import Pipeline
from steth.edge.protocol import Status
from tests.edge.test_pipeline import chunks, device_info, run_pipeline, synthetic_breathing
from tests.foundation.tiny_model import make_tiny_model


@pytest.fixture()
def tiny_model(tmp_path):
    return CycleModel(make_tiny_model(tmp_path), expected_feature_hash=FeatureConfig().hash())


def collecting() -> tuple[list[dict], object]:
    out: list[dict] = []
    lock = threading.Lock()

    def emit(event: dict) -> None:
        with lock:
            out.append(event)

    return out, emit


def stats(measured: float | None, nominal: int = 8000) -> LinkStats:
    return LinkStats(bytes=0, frames=0, crc_errors=0, gaps=0, resyncs=0, skipped_bytes=0,
                     measured_rate_hz=measured, nominal_rate_hz=nominal,
                     last_frame_monotonic=None, device_info=device_info(nominal))


def test_no_breath_rate_from_poor_cycles(tiny_model):
    events = run_pipeline(tiny_model, synthetic_breathing(3.0, 8) * 1e-4)  # no contact
    cycles = [e for e in events if e["type"] == "cycle"]
    assert cycles and all(c["quality"]["status"] == "poor" for c in cycles)
    assert [c["breath_rate_bpm"] for c in cycles] == [None] * len(cycles)
    assert all(e.get("breath_rate_bpm") is None for e in events if e["type"] == "level")


def test_breath_rate_from_good_cycles_is_their_median_rate(tiny_model):
    events = run_pipeline(tiny_model, synthetic_breathing(3.0, 10))
    cycles = [e for e in events if e["type"] == "cycle"]
    rates = [c["breath_rate_bpm"] for c in cycles if c["breath_rate_bpm"] is not None]
    assert rates and all(abs(rate - 20.0) < 1.5 for rate in rates)


def test_battery_from_status_frames_reaches_the_link_event(tiny_model):
    out, emit = collecting()
    pipe = Pipeline(tiny_model, emit, simulated=False, transport="test")
    pipe.handle(device_info(), 0.0)
    status = Status(battery_mv=3900, battery_pct=76, state_flags=1, clip_count=0,
                    adc_overruns=0, tx_drops=0)
    pipe.handle(StatusReport(status, 0, 0.5), 0.5)
    pipe.tick(1.0, stats(8000.0))
    pipe.close()
    links = [e for e in out if e["type"] == "link"]
    assert links and links[-1]["battery_pct"] == 76 and validate(links[-1]) == []


def test_a_sample_rate_far_from_nominal_is_a_warning_event(tiny_model):
    out, emit = collecting()
    pipe = Pipeline(tiny_model, emit, simulated=False, transport="test")
    pipe.handle(device_info(), 0.0)
    pipe.tick(1.0, stats(8100.0))  # +1.25 %: within the limit
    assert not [e for e in out if e["type"] == "status"]
    pipe.tick(2.0, stats(15012.0))
    pipe.tick(3.0, stats(15012.0))
    pipe.close()
    warnings = [e for e in out if e["type"] == "status"]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning", warnings
    assert warnings[0]["code"] == "sample_rate" and "+88 %" in warnings[0]["message"]


def test_a_new_site_starts_the_record_over(tiny_model):
    out, emit = collecting()
    pipe = Pipeline(tiny_model, emit, simulated=False, transport="test", offline=True)
    pipe.handle(device_info(), 0.0)
    audio = synthetic_breathing(3.0, 12)
    now = 0.0
    for chunk in chunks(audio):
        if chunk.start_index == 256 * 900:  # about 29 s in
            pipe.new_site()
        now += chunk.samples.size / 8000
        pipe.handle(chunk, now)
    pipe.close(timeout=30)
    site = next(i for i, e in enumerate(out) if e["type"] == "status"
                and e["code"] == "new_site")
    before = [e for e in out[:site] if e["type"] == "verdict"]
    after = [e for e in out[site:] if e["type"] == "verdict"]
    assert before and before[-1]["cycles"] >= 3
    assert after and after[0]["cycles"] == 1, after[:1]
    assert np.all([validate(e) == [] for e in out])
