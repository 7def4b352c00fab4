"""Child process for the kill -9 test: records a known signal in real time until killed.

Usage: python record_child.py ROOT SEED

Prints ``session <dir>`` once, then ``sent <end_index> <monotonic>`` after every chunk the
recorder accepted (so the parent knows what had been handed over when it killed us).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from steth.edge import events as ev
from steth.host.recorder import Recorder

RATE = 8000
CHUNK = 160  # 20 ms, one protocol frame
GAP_AT = 8000  # device index where 800 samples go missing (zero-filled by the recorder)
GAP_LEN = 800


def known_signal(start: int, n: int) -> np.ndarray:
    """A deterministic, index-addressed int16 signal (every sample differs from its neighbours)."""
    index = np.arange(start, start + n, dtype=np.uint64)
    mixed = (index * np.uint64(2654435761) + np.uint64(12345)) % np.uint64(65536)
    return (mixed.astype(np.int64) - 32768).astype(np.int16)


def main() -> int:
    root, seed = sys.argv[1], int(sys.argv[2])
    recorder = Recorder(root, patient=f"kill{seed}", operator="test", sites="p1,p2",
                        fsync_s=0.5)
    print(f"session {recorder.session_dir}", flush=True)
    recorder.on_event(ev.make_hello(
        device_id="SIM-KILL", firmware="1.0", nominal_rate_hz=RATE, adc_bits=12,
        model_name="test", model_version="0", model_hash="sha256:00", calibrated=False,
        transport="simulate", simulated=True, clock_synchronised=False))
    index, cycle_start, cycle_id = 0, 0, 0
    next_time = time.monotonic()
    while True:
        if index == GAP_AT:
            recorder.on_event(ev.make_gap(expected_index=index, received_index=index + GAP_LEN,
                                          lost_samples=GAP_LEN, reason="sequence",
                                          simulated=True))
            index += GAP_LEN
        recorder.on_audio(index, known_signal(index, CHUNK), RATE)
        index += CHUNK
        print(f"sent {index} {time.monotonic():.4f}", flush=True)
        if index - cycle_start >= RATE:  # a 1 s "cycle" so CSV rows accumulate
            recorder.on_event(ev.make_cycle(
                cycle_id=cycle_id, start=cycle_start, end=index, rate_hz=RATE,
                wall_start=time.time() - 1.0, finding="Crackle" if cycle_id % 2 else "Normal",
                p_crackle=0.8, p_wheeze=0.1, subtype="Fine Crackle, \"coarse\"?",
                simulated=True))
            cycle_id += 1
            cycle_start = index
        next_time += CHUNK / RATE
        time.sleep(max(0.0, next_time - time.monotonic()))


if __name__ == "__main__":
    raise SystemExit(main())
