"""The fast path (audio gathered into blocks before the front end) emits what the plain
path emits on real recordings: the same cycles, findings and quality, probabilities within
1e-6, the same verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from steth.edge.decode import AudioChunk
from steth.edge.loading import load_model
from steth.edge.pipeline import FAST_BLOCK_S, Pipeline
from steth.edge.protocol import DeviceInfo

WIRED_FRAME = 160  # samples per wired device frame (docs/protocol.md)
RECORDINGS = ["157_1b1_Al_sc_Meditron", "40801342_4.0_1_p2_898"]


def read(shared_data, name: str) -> tuple[np.ndarray, int]:
    import soundfile as sf
    from scipy.signal import resample_poly

    folder = (shared_data / "icbhi2017" / "audio" if "_sc_" in name or "_mc_" in name
              else shared_data / "sprsound2022" / "test" / "audio")
    path = next(folder.glob(f"{name}.*"))
    audio, rate = sf.read(path, dtype="float64")
    if rate != 8000:  # the device's rate: ICBHI audio is resampled as a replay would be
        audio, rate = resample_poly(audio, 8000, rate), 8000
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16), rate


def stream(model, pcm: np.ndarray, rate: int, block_s: float) -> list[dict]:
    events: list[dict] = []
    index = [0]
    pipe = Pipeline(model, events.append, simulated=False, transport="file", offline=True,
                    block_s=block_s, clock=lambda: 1.8e9 + index[0] / rate)
    pipe.handle(DeviceInfo(device_id=1, fw_major=1, fw_minor=0, fw_patch=0, sensor_type=0,
                           sample_rate_hz=rate, bit_depth=16, gain=1, codec=0, link=0,
                           frame_samples=WIRED_FRAME), 0.0)
    for start in range(0, pcm.size, WIRED_FRAME):
        index[0] = min(pcm.size, start + WIRED_FRAME)
        pipe.handle(AudioChunk(start, pcm[start:start + WIRED_FRAME], rate), start / rate)
    pipe.finish(pcm.size / rate)
    pipe.close(timeout=None)
    return events


KEYS = ("start", "end", "finding", "subtype", "wall_start")


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.mark.parametrize("name", RECORDINGS)
def test_fast_path_events_equal_the_plain_path(shared_data, model, name):
    pcm, rate = read(shared_data, name)
    plain = stream(model, pcm, rate, 0.0)
    fast = stream(model, pcm, rate, FAST_BLOCK_S)
    plain_cycles = [e for e in plain if e["type"] == "cycle"]
    fast_cycles = [e for e in fast if e["type"] == "cycle"]
    assert len(plain_cycles) >= 2
    assert [[c[k] for k in KEYS] for c in fast_cycles] == \
        [[c[k] for k in KEYS] for c in plain_cycles]
    assert [c["quality"] for c in fast_cycles] == [c["quality"] for c in plain_cycles]
    for a, b in zip(fast_cycles, plain_cycles, strict=True):
        assert abs(a["p_crackle"] - b["p_crackle"]) <= 1e-6
        assert abs(a["p_wheeze"] - b["p_wheeze"]) <= 1e-6
    verdicts = [[(e["verdict"], e["cycles"]) for e in run if e["type"] == "verdict"]
                for run in (plain, fast)]
    assert verdicts[0] == verdicts[1]


def test_a_stalled_source_does_not_hold_a_partial_block(model):
    events: list[dict] = []
    pipe = Pipeline(model, events.append, simulated=False, transport="serial",
                    block_s=FAST_BLOCK_S)
    try:
        pipe.handle(DeviceInfo(device_id=1, fw_major=1, fw_minor=0, fw_patch=0,
                               sensor_type=0, sample_rate_hz=8000, bit_depth=12, gain=1,
                               codec=0, link=0, frame_samples=WIRED_FRAME), 0.0)
        pipe.handle(AudioChunk(0, np.zeros(WIRED_FRAME, np.int16), 8000), 0.0)
        assert pipe.pending and pipe.extractor is not None
        frames_before = pipe.extractor.frames_out
        pipe.tick(2 * FAST_BLOCK_S + 0.01)
        assert not pipe.pending and pipe.extractor.frames_out > frames_before
    finally:
        pipe.close()
