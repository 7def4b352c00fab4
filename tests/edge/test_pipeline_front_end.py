"""The streaming pipeline with a channel-normalised model and a signal guard: cycles in the
normaliser's warm-up are settling (no finding, not in the record), the guard's state rides on
every cycle, and a new site restarts both."""

from __future__ import annotations

import threading

import numpy as np

from steth.edge.features import FeatureConfig
from steth.edge.guard import GuardModel
from steth.edge.infer import CycleModel
from steth.edge.normalise import NormConfig
from steth.edge.pipeline import Pipeline
from tests.edge.test_pipeline import RATE, chunks, device_info, synthetic_breathing
from tests.foundation.tiny_model import make_tiny_model

NORMALISED = FeatureConfig(norm=NormConfig(kind="mean", warmup_s=6.0))


def guard(threshold: float) -> dict:
    n = NORMALISED.n_mels
    return GuardModel(np.zeros(n), np.eye(n), threshold, 1.0).to_dict()


def run(model: CycleModel, audio: np.ndarray, new_site_at_s: float | None = None
        ) -> list[dict]:
    out: list[dict] = []
    lock = threading.Lock()

    def emit(event: dict) -> None:
        with lock:
            out.append(event)

    pipe = Pipeline(model, emit, simulated=False, transport="test", offline=True)
    pipe.handle(device_info(), 0.0)
    now = 0.0
    for chunk in chunks(audio):
        if new_site_at_s is not None and abs(chunk.start_index / RATE - new_site_at_s) < 0.016:
            pipe.new_site()
        now += chunk.samples.size / RATE
        pipe.handle(chunk, now)
    pipe.finish(now)
    pipe.close(timeout=None)
    return out


def cycles_of(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "cycle"]


def test_warm_up_cycles_are_settling_and_stay_out_of_the_record(tmp_path):
    model = CycleModel(make_tiny_model(tmp_path, config=NORMALISED,
                                       extra={"guard": guard(1e9)}))
    events = run(model, synthetic_breathing(2.5, 12))
    cycles = cycles_of(events)
    assert len(cycles) >= 6
    settling = [c for c in cycles if c["quality"]["settling"]]
    settled = [c for c in cycles if not c["quality"]["settling"]]
    assert settling and settled
    # Settling means the cycle's middle lies inside the first 6 s of the stream.
    assert all((c["start"] + c["end"]) / 2 < 6.0 * RATE + 0.05 * RATE for c in settling)
    assert all((c["start"] + c["end"]) / 2 >= 6.0 * RATE - 0.05 * RATE for c in settled)
    verdicts = [e for e in events if e["type"] == "verdict"]
    assert verdicts[-1]["cycles"] == len(settled)
    # A huge threshold: decided (after 1 s of audio) and never unfamiliar.
    assert all(c["quality"]["unfamiliar"] is False for c in settled)
    assert all(c["quality"]["signal_distance"] is not None for c in settled)


def test_the_guard_state_reaches_every_cycle_and_a_new_site_restarts_it(tmp_path):
    model = CycleModel(make_tiny_model(tmp_path, config=NORMALISED,
                                       extra={"guard": guard(1e-6)}))
    events = run(model, synthetic_breathing(2.5, 16), new_site_at_s=20.0)
    cycles = cycles_of(events)
    # (a cycle closed just after the reset carries the restarted guard: not yet decided)
    before = [c for c in cycles if c["start"] >= 7.0 * RATE and c["end"] <= 19.0 * RATE]
    after_reset = [c for c in cycles if 20.0 * RATE <= c["start"] < 23.0 * RATE]
    later = [c for c in cycles if c["start"] >= 27.0 * RATE]
    assert before and after_reset and later
    assert all(c["quality"]["unfamiliar"] is True for c in before)  # a tiny threshold
    assert all(c["quality"]["settling"] for c in after_reset)
    assert not any(c["quality"]["settling"] for c in before + later)
    assert all(c["quality"]["unfamiliar"] is True for c in later)


def test_the_shipped_feature_config_never_settles(tmp_path):
    model = CycleModel(make_tiny_model(tmp_path))
    cycles = cycles_of(run(model, synthetic_breathing(2.5, 6)))
    assert cycles and not any(c["quality"]["settling"] for c in cycles)
    assert all(c["quality"]["unfamiliar"] is None for c in cycles)
